"""Packing a chat conversation: messages become segments, the allocator packs them, messages come back.

The default chat policy (``chat_policy()``), on top of any ``Policy``:

- system and developer messages are pinned to the head;
- the first user message (the task) and the last user message are required; they and the system messages
  are cut (in the middle) only when they cannot fit whole, never dropped;
- an assistant message with tool calls and all its tool results form one group (kept or dropped together);
  each tool call is a segment of kind ``tool_call`` right after its message's (its arguments are counted
  only as far as a decision needs them, and are never cut);
- a conversation that fits comes back unchanged; otherwise oversized tool results are cut by their kind's
  truncation (``auto``) at the cap (a quarter of the budget);
- before whole turns go, the oldest tool results are replaced by a stub naming the tool and the tokens
  removed (the call stays valid), as few as make the difference;
- older history goes before newer (the allocator's tie-break among equal priorities).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ctxsched._core import ChatSegments, Decision, Packer, PackResult, Segment, Tokenizer, chat_segments
from ctxsched.exceptions import MessageFormatError
from ctxsched.formats.anthropic import AnthropicAccounting, from_anthropic, to_anthropic
from ctxsched.formats.openai import ChatAccounting, Message, parse
from ctxsched.policy import Policy

__all__ = ["PackedMessages", "chat_policy", "pack_messages"]

FORMATS = ("openai", "anthropic")
_PACKERS: dict[str, Packer] = {}
_PACKER_CACHE_SIZE = 8
#: Tests turn the Rust reading of conversations off to check that both paths pack alike.
_FAST_PATH = True


def chat_policy() -> Policy:
    """The default policy of ``pack_messages``.

    Tool results are capped at a quarter of the usable budget; system messages and the task are cut in the
    middle only if they cannot fit whole (they are never dropped).
    """
    return Policy(segment_caps={"tool_result": 0.25}, truncation={"system": "middle", "instruction": "middle"})


_DEFAULT_POLICY = chat_policy()


@dataclass(frozen=True)
class PackedMessages:
    """What ``pack_messages`` returns.

    Attributes:
        messages: the packed conversation, in the input's format (a list of messages; for Anthropic, the
            ``{"system", "messages"}`` dict): messages kept whole are the input's own objects; cut or stubbed
            ones are copies with only their content changed.
        tokens: the prompt's tokens by the format's accounting (reply priming included); at most the budget.
        result: the allocator's ``PackResult``: a decision per input message, and one per tool call (its
            arguments, a segment of kind ``tool_call``); ``decision(index)`` finds a message's.
        repairs: what was repaired in the input (with ``repair=True``), one sentence each.
        stubbed: indices of the input messages replaced by a stub.
        indices: for each message of ``messages``, its index in the input (OpenAI format).
        note: how the count was made when it is not exact (the Anthropic format's stand-in encoding).
    """

    messages: Any
    tokens: int
    result: PackResult
    repairs: list[str] = field(default_factory=list)
    stubbed: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    note: str | None = None

    def decision(self, index: int) -> Decision:
        """The decision about input message ``index`` (its content; its tool calls share its fate).

        Raises:
            KeyError: no such message (or a repair dropped it).
        """
        for decision in self.result.decisions:
            if decision.id.startswith(f"{index}:") and decision.kind != "tool_call":
                return decision
        raise KeyError(f"no decision about message {index}")

    def explain(self) -> str:
        """The repairs, the stubs and the allocator's decision log."""
        lines = [f"repaired: {repair}" for repair in self.repairs]
        lines += [f"stubbed: message {index} (its tool result replaced by a stub)" for index in self.stubbed]
        lines += [f"note: {self.note}"] if self.note else []
        return "\n".join([*lines, self.result.explain()])


def pack_messages(
    messages: Sequence[Any],
    budget: int,
    encoding: str = "o200k_base",
    policy: Policy | Mapping[str, Any] | None = None,
    format: str = "openai",
    *,
    accounting: ChatAccounting | None = None,
    anthropic: AnthropicAccounting | None = None,
    repair: bool = False,
) -> PackedMessages:
    """Pack a chat conversation into ``budget`` tokens; see the module docstring for the default policy.

    Args:
        messages: the conversation (OpenAI chat format: dicts with ``role``, ``content``, ``tool_calls``,
            ``tool_call_id``, ``name``; extra keys are kept).
        budget: the prompt's budget in tokens (the policy's ``reserve_output`` is kept free within it).
        encoding: a built-in encoding.
        policy: a ``Policy`` (or a dict) instead of ``chat_policy()``.
        format: ``"openai"``, or ``"anthropic"`` for ``{"system": ..., "messages": [...]}`` with content blocks.
        accounting: the per-message constants (``ChatAccounting``).
        anthropic: the Anthropic format's stand-in encoding and safety margin (``AnthropicAccounting``).
        repair: repair what can be repaired (a tool result with no call is dropped; a tool call with no result
            is removed from its message) and record it, instead of raising.

    Raises:
        MessageFormatError: a malformed message (the error names it), unless ``repair`` can fix it.
        BudgetError: the system messages, the task and the last user message do not fit, even cut.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, not {format!r}")
    if format == "anthropic":
        return _pack_anthropic(messages, budget, policy, accounting, anthropic or AnthropicAccounting(), repair)
    accounting = accounting or ChatAccounting()
    policy = (
        policy if isinstance(policy, Policy) else _DEFAULT_POLICY if policy is None else Policy.model_validate(policy)
    )
    tokenizer = Tokenizer(encoding)
    repairs: list[str] = []
    # Well-formed conversations of string contents are read in Rust; the rest (content parts, repairs, errors
    # that name the message) take the Python path, which makes the same segments.
    constants = (accounting.tokens_per_message, accounting.tokens_per_name, accounting.tokens_per_tool_call)
    fast = chat_segments(messages, tokenizer, *constants) if _FAST_PATH else None
    segments: ChatSegments | list[Segment]
    numbers: Sequence[int]
    if fast is not None:
        segments, owners, originals, numbers = fast, fast.owners, messages, range(len(messages))
    else:
        parsed = parse(messages, tokenizer, accounting)
        parsed, groups, names = _link_tool_results(parsed, repair, repairs, tokenizer, accounting)
        segments, owners = _segments(parsed, groups, names)
        originals, numbers = [message.original for message in parsed], [message.index for message in parsed]
    # A conversation that fits whole comes back whole: caps only apply when something has to give.
    packer = _packer(encoding, policy, accounting)
    room = budget - policy.reserve_output - accounting.reply_priming
    fits = room >= 0 and packer.total_up_to(segments, room) is not None
    result = packer.pack(segments, budget, caps=not fits)
    out, positions, stubbed = result.chat_messages(originals, owners)
    tokens = result.tokens + accounting.reply_priming
    indices = [numbers[position] for position in positions]
    return PackedMessages(out, tokens, result, repairs, sorted(numbers[position] for position in stubbed), indices)


def _pack_anthropic(
    conversation: Any,
    budget: int,
    policy: Policy | Mapping[str, Any] | None,
    accounting: ChatAccounting | None,
    anthropic: AnthropicAccounting,
    repair: bool,
) -> PackedMessages:
    units, origins = from_anthropic(conversation, anthropic)
    effective = int(budget / (1 + anthropic.margin))
    try:
        packed = pack_messages(
            units, effective, anthropic.stand_in, policy, "openai", accounting=accounting, repair=repair
        )
    except MessageFormatError as error:  # name the Anthropic message, not the unit
        if error.index is None or not 0 <= error.index < len(origins):
            raise
        raise MessageFormatError(origins[error.index].message, error.problem) from None
    out = to_anthropic(conversation, units, origins, packed.messages, packed.indices)
    note = (
        f"counted with {anthropic.stand_in} standing in for Claude's tokenizer (not public), and packed into "
        f"{effective} of the {budget} tokens: a {anthropic.margin:.0%} safety margin"
    )
    # Repairs name units ("message 7"); name the Anthropic message each came from.
    repairs = [
        re.sub(r"message (\d+)", lambda found: f"message {origins[int(found[1])].message}", repair)
        for repair in packed.repairs
    ]
    return replace(packed, messages=out, note=note, repairs=repairs)


def _link_tool_results(
    parsed: list[Message], repair: bool, repairs: list[str], tokenizer: Tokenizer, accounting: ChatAccounting
) -> tuple[list[Message], dict[int, str], dict[str, str]]:
    """Each tool result's group (its call's assistant message); orphans and unanswered calls raise or are fixed.

    Returns the messages kept, the group of each (by position) and each call id's tool name.
    """
    calls: dict[str, int] = {}
    names: dict[str, str] = {}
    answered: set[str] = set()
    kept: list[Message] = []
    for message in parsed:
        if message.role == "assistant":
            for call_id in message.tool_call_ids:
                calls[call_id] = message.index
                names[call_id] = message.tool_names[call_id]
        if message.role == "tool":
            call_id = message.original["tool_call_id"]
            if call_id not in calls or call_id in answered:
                problem = "answers no earlier tool call" if call_id not in calls else "answers a call already answered"
                if not repair:
                    raise MessageFormatError(message.index, f"is a tool result ({call_id!r}) that {problem}")
                repairs.append(f"dropped message {message.index}, a tool result ({call_id!r}) that {problem}")
                continue
            answered.add(call_id)
        kept.append(message)
    unanswered = [call_id for call_id in calls if call_id not in answered]
    if unanswered:
        if not repair:
            index = calls[unanswered[0]]
            raise MessageFormatError(index, f"has tool call {unanswered[0]!r} with no tool result after it")
        fixed = [_drop_calls(message, set(unanswered), repairs, tokenizer, accounting) for message in kept]
        kept = [message for message in fixed if message is not None]
    groups: dict[int, str] = {}
    group_of_call: dict[str, str] = {}
    for position, message in enumerate(kept):
        if message.role == "assistant" and message.tool_call_ids:
            groups[position] = f"turn-{message.index}"
            group_of_call.update({call_id: groups[position] for call_id in message.tool_call_ids})
        elif message.role == "tool":
            groups[position] = group_of_call[message.original["tool_call_id"]]
    return kept, groups, names


def _drop_calls(
    message: Message, unanswered: set[str], repairs: list[str], tokenizer: Tokenizer, accounting: ChatAccounting
) -> Message | None:
    dropped = [call_id for call_id in message.tool_call_ids if call_id in unanswered]
    if not dropped:
        return message
    calls = [call for call in message.original["tool_calls"] if call["id"] not in unanswered]
    original = {key: value for key, value in message.original.items() if key != "tool_calls"}
    if calls:
        original["tool_calls"] = calls
    elif not message.text:
        repairs.append(f"dropped message {message.index}: its only tool calls {dropped} have no results")
        return None
    repairs.append(f"removed tool calls {dropped} with no results from message {message.index}")
    (fixed,) = parse([original], tokenizer, accounting)
    fixed.index = message.index
    return fixed


def _segments(parsed: list[Message], groups: dict[int, str], names: dict[str, str]) -> tuple[list[Segment], list[int]]:
    """The segments of the messages, and for each the position of its message in ``parsed``."""
    users = [position for position, message in enumerate(parsed) if message.role == "user"]
    task, last_user = (users[0], users[-1]) if users else (-1, -1)
    segments = []
    owners = []
    for position, message in enumerate(parsed):
        role = message.role
        kind = {"system": "system", "developer": "system", "tool": "tool_result"}.get(role, "history")
        if position in (task, last_user):
            kind = "instruction"
        stub = None
        if role == "tool" and message.text:
            name = names.get(message.original["tool_call_id"], "tool")
            stub = f"[{name} output removed to fit the context window: {{n}} tokens]"
        segments.append(
            Segment(
                message.text or "",
                id=f"{message.index}:{role}",
                kind=kind,
                role=role,
                pin="head" if kind == "system" else None,
                required=position in (task, last_user),
                group=groups.get(position),
                truncate=None if message.text is not None else "none",
                overhead=message.overhead,
                stub=stub,
            )
        )
        owners.append(position)
        for number, (arguments, overhead) in enumerate(
            zip(message.tool_arguments, message.tool_overheads, strict=True)
        ):
            segments.append(
                Segment(
                    arguments,
                    id=f"{message.index}:call-{number}",
                    kind="tool_call",
                    role=role,
                    group=groups.get(position),
                    truncate="none",
                    overhead=overhead,
                )
            )
            owners.append(position)
    return segments, owners


def _packer(encoding: str, policy: Policy, accounting: ChatAccounting) -> Packer:
    """One packer (and count memo) per encoding, policy and accounting, so agent loops reuse counts."""
    # The default policy's key is known (policies are frozen): no JSON to build on every call.
    described = "default" if policy is _DEFAULT_POLICY else policy.model_dump(mode="json")
    key = json.dumps([encoding, described, accounting.reply_priming], sort_keys=True)
    packer = _PACKERS.get(key)
    if packer is None:
        if len(_PACKERS) >= _PACKER_CACHE_SIZE:
            _PACKERS.pop(next(iter(_PACKERS)))
        arguments = policy.core_arguments()
        # Messages are separate (nothing merges across them); the priming is counted once per prompt.
        arguments.update(separator="", joined=False, reserve_output=policy.reserve_output + accounting.reply_priming)
        packer = _PACKERS[key] = Packer(Tokenizer(encoding), **arguments)
    return packer
