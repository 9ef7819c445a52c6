"""What a valid session prompt is, checked from the outside (shared by the session tests).

The prompt's tokens with tiktoken (``reference_count``), the tool-call pairing by a linking written here, the cache
report against a comparison of the message lists, the watermarks from their definition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import ctxsched as cs
from tests.fences import as_sent
from tests.reference import reference_tools
from tests.test_messages import latest_turn, reference_count

Message = dict[str, Any]

SUMMARY_HEADER = "[Summary of earlier messages"  # what a summary message starts with (its framing)
PRIMING = 3  # the reply priming, once per prompt (DESIGN.md's accounting)
DEFAULT_MARKS = cs.Watermarks()  # the policy's defaults (a tunable: read, not assumed)
FIRST_PACK = "the first pack"
NEW_EPOCH = "a new epoch"
NEW_PIN = "a new pin (a new system message goes to the head)"
FRESH = ("a fresh pack of the whole conversation (the earlier decisions could not fit)", "a fresh pack")

TOOLS = [
    {"type": "function", "function": {"name": "bash", "description": "Run a shell command.", "parameters": {
        "type": "object", "properties": {"cmd": {"type": "string", "description": "The command."}}}}},
    {"type": "function", "function": {"name": "read_file", "description": "Read a file.", "parameters": {
        "type": "object", "properties": {"path": {"type": "string", "description": "The path."}}}}},
]  # fmt: skip


# --- what a valid prompt is -------------------------------------------------------------------------------


def is_system(message: Message) -> bool:
    return message["role"] in ("system", "developer")


def answered_calls(conversation: list[Message]) -> dict[int, int]:
    """For each tool result (by index), the index of the assistant message whose call it answers: the nearest
    earlier call with its id that is still unanswered (ids may repeat across turns)."""
    open_calls: dict[str, list[int]] = {}
    answers = {}
    for index, message in enumerate(conversation):
        for call in message.get("tool_calls") or []:
            open_calls.setdefault(call["id"], []).append(index)
        if message["role"] == "tool":
            answers[index] = open_calls[message["tool_call_id"]].pop()
    return answers


def with_watermarks(high: float, low: float, recent: float) -> cs.Policy:
    """The default chat policy with other watermarks."""
    watermarks = {"high": high, "low": low, "recent": recent}
    return cs.Policy.model_validate({**cs.chat_policy().model_dump(), "watermarks": watermarks})


def window(budget: int, tools: list[Message] | None, fraction: float) -> int:
    """The prompt's tokens at a watermark: the priming and the tools, plus ``fraction`` of what is left."""
    reserved = reference_tools(tools or [])
    usable = budget - PRIMING - reserved
    return PRIMING + reserved + int(fraction * usable)


def check_prompt(
    conversation: list[Message], packed: cs.PackedMessages, budget: int, tools: list[Message] | None = None
) -> None:
    """The invariants of every prompt: exact and in budget, conservation, order, tool pairs, the mandatory
    messages, faithful copies, the cache report's per-message tokens."""
    out = packed.messages
    indices = list(packed.indices)
    assert packed.tokens <= budget
    assert packed.tokens == cs.count_messages(out, tools=tools)
    assert packed.tokens == reference_count(out) + reference_tools(tools or [])
    # Conservation: each input message is sent once, or evicted (a summary, index None, stands for some).
    sent = [index for index in indices if index is not None]
    assert len(indices) == len(out)
    assert len(sent) == len(set(sent))
    placed = set(sent)
    for index in range(len(conversation)):
        evicted = packed.decision(index).action == "evicted"
        assert (index in placed) != evicted, (index, packed.decision(index))
    # Each message sent is the input's, or a copy whose content alone was cut or stubbed.
    expected = as_sent(conversation)
    for message, index in zip(out, indices, strict=True):
        if index is None:
            assert message["role"] == "user", message
            assert message["content"].startswith(SUMMARY_HEADER), message
            continue
        original = conversation[index]
        action = packed.decision(index).action
        if message == original or message == expected[index]:
            assert action == "kept", (index, action)
        else:
            assert action in ("truncated", "stubbed"), (index, action)
            assert {k: v for k, v in message.items() if k != "content"} == {
                k: v for k, v in original.items() if k != "content"
            }
        assert (action == "stubbed") == (index in packed.stubbed)
    # Order: the system messages first (in input order), then the rest in input order.
    head = 0
    while head < len(out) and is_system(out[head]):
        head += 1
    assert not any(is_system(message) for message in out[head:]), "a system message outside the head"
    assert None not in indices[:head], "a summary among the system messages"
    assert indices[:head] == sorted(indices[:head])
    body = [index for index in indices[head:] if index is not None]
    assert body == sorted(body)
    # Tool pairs: each result follows the very call it answers, still unanswered; each call has its results.
    answers = answered_calls(conversation)
    sent_before: set[int] = set()
    open_calls: Counter[str] = Counter()
    for position, (message, index) in enumerate(zip(out, indices, strict=True)):
        if message["role"] != "tool" and +open_calls:
            raise AssertionError(f"message {position} comes between calls and their results: {dict(+open_calls)}")
        if message["role"] == "tool":
            assert answers[index] in sent_before, f"message {index}: a tool result without its call"
            assert open_calls[message["tool_call_id"]] > 0, f"message {index}: answers a call already answered"
            open_calls[message["tool_call_id"]] -= 1
        for call in message.get("tool_calls") or []:
            open_calls[call["id"]] += 1
        if index is not None:
            sent_before.add(index)
    assert not +open_calls, f"tool calls without their results: {dict(+open_calls)}"
    assert all(r in placed for r, a in answers.items() if a in placed), "a call sent without one of its results"
    # The system messages, the task and the last user message are there; so is the latest turn with calls,
    # unless the note says it could not fit.
    users = [i for i, m in enumerate(conversation) if m["role"] == "user"]
    mandatory = [i for i, m in enumerate(conversation) if is_system(m)] + users[:1] + users[-1:]
    assert set(mandatory) <= placed, sorted(set(mandatory) - placed)
    if packed.note is None:
        assert set(latest_turn(conversation)) <= placed
    # The report's tokens per message are the messages' own.
    if packed.cache is not None:
        assert list(packed.cache.message_tokens) == [cs.count_messages([m]) - PRIMING for m in out]


def mandatory_messages(conversation: list[Message]) -> list[Message]:
    """The system messages, the task, the last user message and the latest turn that made calls."""
    users = [i for i, m in enumerate(conversation) if m["role"] == "user"]
    kept = {i for i, m in enumerate(conversation) if is_system(m)} | set(users[:1] + users[-1:])
    sent = as_sent(conversation)  # as they are sent whole: results fenced, the fence's notice in the system prompt
    return [sent[i] for i in sorted(kept | set(latest_turn(conversation)))]


def mandatory_tokens(conversation: list[Message], packed: cs.PackedMessages, tools: list[Message] | None) -> int:
    """The tokens of the mandatory messages, the tools, and the summaries sent (kept until a later one takes
    them in)."""
    summaries = [m for m, index in zip(packed.messages, packed.indices, strict=True) if index is None]
    mandatory = mandatory_messages(conversation) + summaries
    return reference_count(mandatory) + reference_tools(tools or [])


def common_prefix(before: list[Message], after: list[Message]) -> int:
    common = 0
    while common < min(len(before), len(after)) and before[common] == after[common]:
        common += 1
    return common


@dataclass
class Previous:
    """What the test remembers of a session's last pack."""

    messages: list[Message] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    epoch: int = 0
    seen: int = 0  # messages the session had at that pack
    packs: int = 0


def check_cache(
    conversation: list[Message],
    packed: cs.PackedMessages,
    previous: Previous,
    tools: list[Message] | None = None,
    high: float = 1.0,
    budget: int | None = None,
    low: float = DEFAULT_MARKS.low,
) -> None:
    """The cache report against the previous prompt, and the epoch rules. ``previous`` is updated."""
    report = packed.cache
    assert report is not None
    out = packed.messages
    indices = list(packed.indices)
    if previous.packs == 0:
        assert (report.epoch, report.reason, report.first_change, report.prefix_tokens) == (1, FIRST_PACK, 0, 0)
    else:
        common = common_prefix(previous.messages, out)
        assert report.first_change == (None if common == len(previous.messages) else common)
        assert report.prefix_tokens == cs.count_messages(out[:common], tools=tools) - PRIMING
        assert report.prefix_tokens == reference_count(out[:common]) - PRIMING + reference_tools(tools or [])
        assert (report.reason is None) == (report.first_change is None)
        assert report.epoch in (previous.epoch, previous.epoch + 1)
        new = list(range(previous.seen, len(conversation)))
        new_systems = [i for i in new if is_system(conversation[i])]
        if report.epoch == previous.epoch:
            # Within an epoch: the previous prompt, then new messages in order. (One may be missing: a pack
            # that decided again but only grew the prompt stays in its epoch, as the cache sees no change.)
            assert report.first_change is None, report
            assert out[: len(previous.messages)] == previous.messages
            # (A new message that does not fit may come as a summary: appended too.)
            tail = [index for index in indices[len(previous.messages) :] if index is not None]
            assert set(tail) <= set(new), "within an epoch only new messages are appended"
            assert not new_systems, "a new system message goes to the head: not an append"
            if budget is not None and packed.tokens > window(budget, tools, high):
                # Over the high mark only if the mandatory messages alone are over the low one.
                assert mandatory_tokens(conversation, packed, tools) > window(budget, tools, low), (
                    "within an epoch the prompt stays under the high mark"
                )
        else:
            # A new epoch is a change (a prompt that only grew stays in its epoch), said with its reason.
            assert report.first_change is not None, report
            assert report.reason in (NEW_EPOCH, NEW_PIN, *FRESH), report
            if report.reason not in FRESH:
                assert (report.reason == NEW_PIN) == bool(new_systems), (report, new_systems)
            if new_systems:
                head = sum(1 for m in previous.messages if is_system(m))
                assert indices[head : head + len(new_systems)] == new_systems
            assert report.frozen_messages <= common
            if budget is not None and report.reason in (NEW_EPOCH, NEW_PIN):
                # Down to the low mark in one step, unless the mandatory messages alone are over it.
                mandatory = mandatory_tokens(conversation, packed, tools)
                assert packed.tokens <= window(budget, tools, low) or mandatory > window(budget, tools, low), (
                    f"a new epoch at {packed.tokens} tokens, over the low mark {window(budget, tools, low)}"
                )
    remember(previous, packed, len(conversation))


def remember(previous: Previous, packed: cs.PackedMessages, seen: int) -> None:
    assert packed.cache is not None
    previous.messages = list(packed.messages)
    previous.indices = list(packed.indices)
    previous.epoch = packed.cache.epoch
    previous.seen = seen
    previous.packs += 1


def snapshot(packed: cs.PackedMessages) -> tuple[Any, ...]:
    report = packed.cache
    assert report is not None
    return (
        packed.messages,
        packed.tokens,
        list(packed.indices),
        packed.stubbed,
        packed.note,
        (report.prefix_tokens, report.first_change, report.reason, report.epoch, report.frozen_messages),
    )
