"""Packing a chat conversation: read once in Rust, packed in one call, messages given back.

The default chat policy (``chat_policy()``), on top of any ``Policy``:

- system and developer messages are pinned to the head;
- the first user message (the task) and the last user message are required; they and the system messages
  are cut (in the middle) only when they cannot fit whole, never dropped;
- an assistant message with tool calls and all its tool results form one group (kept or dropped together);
  each tool call is a segment of kind ``tool_call`` right after its message's (its arguments are counted
  only as far as a decision needs them, and are never cut); a result answers the nearest earlier call with
  its id that is still unanswered, so ids may repeat across turns;
- the latest turn that made calls, when no user message came after it, is required: what of it cannot fit
  whole is cut (the assistant's text in the middle, a result by its strategy) before anything is dropped.
  Only if it cannot fit beside the system messages and the user's even cut is it packed like any other turn
  (``PackedMessages.note`` says so);
- a conversation that fits comes back unchanged; otherwise oversized tool results are cut by their kind's
  truncation (``auto``) at the cap (a quarter of the budget);
- before whole turns go, the oldest tool results are replaced by a stub naming the tool and the tokens
  removed (the call stays valid), as few as make the difference;
- older history goes before newer (the allocator's tie-break among equal priorities).

Tool definitions (``tools=``) are counted by OpenAI's cookbook recipe and reserved before packing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ctxsched._core import CacheReport, ChatSummaries, Decision, Packer, PackResult, Tokenizer, pack_chat
from ctxsched.exceptions import BudgetError
from ctxsched.formats.anthropic import AnthropicAccounting
from ctxsched.formats.openai import ChatAccounting, ToolAccounting, tool_tokens
from ctxsched.hooks import Summarizer, SummaryStep
from ctxsched.policy import Policy
from ctxsched.stores import MemoryStore, Store

__all__ = ["PackedMessages", "chat_policy", "check_room", "pack_messages", "summary_arguments", "summary_step"]

FORMATS = ("openai", "responses", "anthropic")
_PACKERS: dict[str, Packer] = {}
#: What a conversation's summaries cover when ``Policy.summarize`` names nothing.
CHAT_SUMMARY_KINDS = ("history", "tool_result")
# Summaries memoised across calls when no cache is given.
_SUMMARIES = MemoryStore()
_PACKER_CACHE_SIZE = 8


def chat_policy() -> Policy:
    """The default policy of ``pack_messages``.

    Tool results are capped at a quarter of the usable budget; system messages and the task are cut in the
    middle only if they cannot fit whole (they are never dropped).
    """
    return Policy(segment_caps={"tool_result": 0.25}, truncation={"system": "middle", "instruction": "middle"})


_DEFAULT_POLICY = chat_policy()

#: What the chat formats take as untrusted when ``Policy.trust.untrusted_kinds`` is ``None``: tool results.
CHAT_UNTRUSTED_KINDS = {"tool_result"}


@dataclass(frozen=True)
class PackedMessages:
    """What ``pack_messages`` returns.

    Attributes:
        messages: the packed conversation, in the input's format (a list of messages or items; for Anthropic,
            the ``{"system", "messages"}`` dict): messages kept whole are the input's own objects (dicts or
            SDK objects); changed ones are dict copies with only their content (or unanswered calls) changed.
        tokens: the prompt's tokens by the format's accounting, tool definitions and reply priming included;
            at most the budget.
        result: the allocator's ``PackResult``: a decision per input message, and one per tool call (its
            arguments, a segment of kind ``tool_call``); ``decision(index)`` finds a message's.
        repairs: what was repaired in the input (with ``repair=True``), one sentence each.
        stubbed: indices of the input messages replaced by a stub.
        indices: for each message of ``messages``, its index in the input (OpenAI and Responses formats;
            ``None`` for a summary, which stands for the messages its segment's metadata names).
        note: how the count was made when it is not exact (the Anthropic format's stand-in encoding), and any
            fallback the packer took.
        cache: for a ``Session``'s pack, what the prompt kept of the previous one (``CacheReport``);
            ``None`` for ``pack_messages``. A session's ``result`` holds the decisions of the messages this pack
            read (the prompt's and the new ones); ``decision(i)`` also finds those an earlier pack evicted.
        tools: (name, tokens) of each tool definition, reserved before packing; ``tools_tokens`` is their
            total, with the list's closing tokens.
    """

    messages: Any
    tokens: int
    result: PackResult
    repairs: list[str] = field(default_factory=list)
    stubbed: list[int] = field(default_factory=list)
    indices: list[int | None] = field(default_factory=list)
    note: str | None = None
    tools: list[tuple[str, int]] = field(default_factory=list)
    tools_tokens: int = 0
    #: For each input message, the position of its decision in ``result.decisions`` (a list; for a session's
    #: pack, a dict by the message's index in the conversation, holding the messages this pack read).
    primary: Sequence[int | None] | Mapping[int, int | None] = field(default_factory=list, repr=False)
    cache: CacheReport | None = None
    #: For a session's pack: the decision about a message an earlier pack evicted, or ``None``.
    earlier: Callable[[int], Decision | None] | None = field(default=None, repr=False)

    def decision(self, index: int) -> Decision:
        """The decision about input message ``index`` (its content; its tool calls share its fate).

        Raises:
            KeyError: no such message (or a repair dropped it).
        """
        if isinstance(self.primary, Mapping):
            position = self.primary.get(index)
        else:
            position = self.primary[index] if 0 <= index < len(self.primary) else None
        if position is not None:
            return self.result.decision(position)
        earlier = self.earlier(index) if self.earlier is not None and index >= 0 else None
        if earlier is None:
            raise KeyError(f"no decision about message {index}")
        return earlier

    def explain(self) -> str:
        """The repairs, the stubs, the tool definitions and the allocator's decision log."""
        lines = [f"repaired: {repair}" for repair in self.repairs]
        lines += [f"stubbed: message {index} (its tool result replaced by a stub)" for index in self.stubbed]
        if self.tools:
            named = ", ".join(f"{name} {tokens:,}" for name, tokens in self.tools)
            lines.append(f"tools: {self.tools_tokens:,} tokens for {len(self.tools)} definitions, reserved ({named})")
        lines += [f"note: {self.note}"] if self.note else []
        lines += [f"cache: {self.cache.describe()}"] if self.cache is not None else []
        return "\n".join([*lines, self.result.explain()])


def pack_messages(
    messages: Any,
    budget: int,
    encoding: str = "o200k_base",
    policy: Policy | Mapping[str, Any] | None = None,
    format: str = "openai",
    *,
    tools: Sequence[Any] | None = None,
    accounting: ChatAccounting | None = None,
    anthropic: AnthropicAccounting | None = None,
    tool_accounting: ToolAccounting | None = None,
    repair: bool = False,
    summarizer: Summarizer | None = None,
    summary_cache: Store | None = None,
) -> PackedMessages:
    """Pack a chat conversation into ``budget`` tokens; see the module docstring for the default policy.

    Args:
        messages: the conversation: OpenAI chat messages (dicts with ``role``, ``content``, ``tool_calls``,
            ``tool_call_id``, ``name``, or the SDK's message objects; extra keys are kept), Responses input
            items, or an Anthropic ``{"system": ..., "messages": [...]}``.
        budget: the prompt's budget in tokens (the policy's ``reserve_output`` is kept free within it).
        encoding: a built-in encoding.
        policy: a ``Policy`` (or a dict) instead of ``chat_policy()``.
        format: ``"openai"``, ``"responses"`` (OpenAI Responses input items) or ``"anthropic"``.
        tools: the tool definitions sent with the prompt; their tokens are reserved before packing.
        accounting: the per-message constants (``ChatAccounting``).
        anthropic: the Anthropic format's stand-in encoding and safety margin (``AnthropicAccounting``).
        tool_accounting: the recipe's constants for tool definitions (``ToolAccounting``).
        repair: repair what can be repaired (a tool result with no call is dropped; a tool call with no result
            is removed from its message) and record it, instead of raising.
        summarizer: a summarisation hook (``ctxsched.hooks``): a run of whole messages that must go, of the
            kinds in ``Policy.summarize``, becomes one user message with its summary, where the run was.
        summary_cache: where summaries are memoised (a ``MemoryStore`` shared by all calls by default).

    Raises:
        MessageFormatError: a malformed message (the error names it), unless ``repair`` can fix it.
        BudgetError: the tool definitions alone do not fit, or the system messages, the task and the last user
            message do not fit, even cut.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, not {format!r}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be an int >= 0, not {budget!r}")
    policy = (
        policy if isinstance(policy, Policy) else _DEFAULT_POLICY if policy is None else Policy.model_validate(policy)
    )
    accounting = accounting or ChatAccounting()
    if format == "anthropic":
        anthropic = anthropic or AnthropicAccounting()
        step = summary_step(summarizer, summary_cache, policy, anthropic.stand_in)
        return _pack_anthropic(messages, budget, policy, accounting, anthropic, tools, tool_accounting, repair, step)
    step = summary_step(summarizer, summary_cache, policy, encoding)
    tokenizer = Tokenizer(encoding)
    reserved, named = tool_tokens(tools, tokenizer, tool_accounting)
    return _pack(messages, budget, encoding, policy, format, accounting, repair, reserved, named, step)


def summary_step(
    summarizer: Summarizer | None, cache: Store | None, policy: Policy, encoding: str
) -> SummaryStep | None:
    """The summary step of a conversation's packs, if there is a hook."""
    if summarizer is None:
        return None
    return SummaryStep(
        summarizer, policy.summaries, cache if cache is not None else _SUMMARIES, Tokenizer(encoding).count
    )


def summary_arguments(step: SummaryStep, policy: Policy) -> tuple[set[str], float | int, bool, int, str, bool]:
    """What the core's summary step takes for a conversation: its kinds default to history and tool results."""
    return step.arguments(policy.summarize or CHAT_SUMMARY_KINDS)


def _pack(
    messages: Any,
    budget: int,
    encoding: str,
    policy: Policy,
    format: str,
    accounting: ChatAccounting,
    repair: bool,
    reserved: int,
    tools: list[tuple[str, int]],
    step: SummaryStep | None = None,
) -> PackedMessages:
    check_room(budget, policy, accounting, reserved, tools)
    packer = packer_for(encoding, policy, accounting)
    summaries = summary_arguments(step, policy) if step is not None else None
    packed = pack_chat(
        messages, packer, budget, accounting, format=format, repair=repair, reserved=reserved, summaries=summaries
    )
    if isinstance(packed, ChatSummaries):
        assert step is not None
        packed = packed.finish(step.run(packed.runs))
    return PackedMessages(
        packed.messages,
        packed.result.tokens + accounting.reply_priming + reserved,
        packed.result,
        packed.repairs,
        sorted(packed.stubbed),
        packed.indices,
        packed.note,
        tools,
        reserved,
        packed.primary,
    )


def check_room(
    budget: int, policy: Policy, accounting: ChatAccounting, reserved: int, tools: list[tuple[str, int]]
) -> None:
    """Raise ``BudgetError`` if the output reserve, the reply priming and the tool definitions leave no room."""
    usable = budget - policy.reserve_output - accounting.reply_priming
    if usable < 0:
        raise BudgetError(
            f"a budget of {budget:,} tokens leaves no room: the output reserve ({policy.reserve_output:,}) and the "
            f"reply priming ({accounting.reply_priming}) alone need {budget - usable:,}"
        )
    if reserved and reserved > usable:
        named = ", ".join(f"{name} ({tokens:,} tokens)" for name, tokens in tools)
        raise BudgetError(
            f"the tool definitions alone need {reserved:,} tokens but only {max(usable, 0):,} are usable (budget "
            f"{budget:,} - reserve {policy.reserve_output:,} - reply priming {accounting.reply_priming}); "
            f"they are {named}"
        )


def _pack_anthropic(
    conversation: Any,
    budget: int,
    policy: Policy,
    accounting: ChatAccounting,
    anthropic: AnthropicAccounting,
    tools: Sequence[Any] | None,
    tool_accounting: ToolAccounting | None,
    repair: bool,
    step: SummaryStep | None,
) -> PackedMessages:
    effective = int(budget / (1 + anthropic.margin))
    reserved, named = tool_tokens(tools, Tokenizer(anthropic.stand_in), tool_accounting)
    if tools:
        reserved += anthropic.tool_system_prompt_tokens
        named = [*named, ("tool use system prompt", anthropic.tool_system_prompt_tokens)]
    costs = anthropic.chat_accounting(accounting)
    packed = _pack(
        conversation, effective, anthropic.stand_in, policy, "anthropic", costs, repair, reserved, named, step
    )
    note = (
        f"counted with {anthropic.stand_in} standing in for Claude's tokenizer (not public), and packed into "
        f"{effective} of the {budget} tokens: a {anthropic.margin:.0%} safety margin"
    )
    return replace(packed, note=f"{note}; {packed.note}" if packed.note else note)


def packer_for(encoding: str, policy: Policy, accounting: ChatAccounting) -> Packer:
    """One packer (and count memo) per encoding, policy and accounting, so agent loops reuse counts."""
    # The default policy's key is known (policies are frozen): no JSON to build on every call.
    described = "default" if policy is _DEFAULT_POLICY else policy.model_dump(mode="json")
    key = json.dumps([encoding, described, accounting.reply_priming], sort_keys=True)
    packer = _PACKERS.get(key)
    if packer is None:
        if len(_PACKERS) >= _PACKER_CACHE_SIZE:
            _PACKERS.pop(next(iter(_PACKERS)))
        arguments = policy.core_arguments()
        if policy.trust.untrusted_kinds is None:
            arguments["untrusted_kinds"] = CHAT_UNTRUSTED_KINDS
        # Messages are separate (nothing merges across them); the priming is counted once per prompt.
        arguments.update(separator="", joined=False, reserve_output=policy.reserve_output + accounting.reply_priming)
        packer = _PACKERS[key] = Packer(Tokenizer(encoding), **arguments)
    return packer
