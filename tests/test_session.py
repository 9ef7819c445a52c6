"""``Session``: every prompt valid and exact, and within an epoch the previous prompt plus the new messages.

The checks here are made from the outside: the prompt's tokens with tiktoken (``reference_count``), the
tool-call pairing by a linking written in the test, the cache report against a comparison of the message
lists, the watermarks from their definition (fractions of the budget less the reply priming and the tools).
"""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import pydantic
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import ctxsched as cs
from ctxsched.formats import chat
from tests.packing import words
from tests.reference import reference_tools
from tests.test_messages import TRANSCRIPTS, latest_turn, reference_count

Message = dict[str, Any]

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
    # Conservation: each input message is sent once, or evicted.
    assert len(indices) == len(out) == len(set(indices))
    placed = set(indices)
    for index in range(len(conversation)):
        evicted = packed.decision(index).action == "evicted"
        assert (index in placed) != evicted, (index, packed.decision(index))
    # Each message sent is the input's, or a copy whose content alone was cut or stubbed.
    for message, index in zip(out, indices, strict=True):
        original = conversation[index]
        action = packed.decision(index).action
        if message == original:
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
    assert indices[:head] == sorted(indices[:head])
    assert indices[head:] == sorted(indices[head:])
    # Tool pairs: each result follows the very call it answers, still unanswered; each call has its results.
    answers = answered_calls(conversation)
    sent_before: set[int] = set()
    open_calls: Counter[str] = Counter()
    for message, index in zip(out, indices, strict=True):
        if message["role"] == "tool":
            assert answers[index] in sent_before, f"message {index}: a tool result without its call"
            assert open_calls[message["tool_call_id"]] > 0, f"message {index}: answers a call already answered"
            open_calls[message["tool_call_id"]] -= 1
        for call in message.get("tool_calls") or []:
            open_calls[call["id"]] += 1
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
    return [conversation[i] for i in sorted(kept | set(latest_turn(conversation)))]


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
            tail = indices[len(previous.messages) :]
            assert set(tail) <= set(new), "within an epoch only new messages are appended"
            assert not new_systems, "a new system message goes to the head: not an append"
            if budget is not None and packed.tokens > window(budget, tools, high):
                # Over the high mark only if the mandatory messages alone are over the low one.
                assert reference_count(mandatory_messages(conversation)) + reference_tools(tools or []) > window(
                    budget, tools, low
                ), "within an epoch the prompt stays under the high mark"
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
                mandatory = reference_count(mandatory_messages(conversation)) + reference_tools(tools or [])
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


# --- 1. the stateful test ---------------------------------------------------------------------------------

sizes = st.one_of(st.integers(1, 40), st.integers(40, 400), st.integers(400, 2000))
result_sizes = st.one_of(sizes, st.integers(2000, 6000))
marks = st.sampled_from([None, (1.0, 0.8, 0.1), (0.9, 0.6, 0.1), (0.7, 0.5, 0.3)])


class SessionMachine(RuleBasedStateMachine):
    """A conversation grown at random and packed at random points, every pack checked."""

    def __init__(self) -> None:
        super().__init__()
        # Counts are memoised per packer, across sessions: start cold, so that the twin of the teardown (warm)
        # checks that what is sent does not depend on what the process packed before.
        chat._PACKERS.clear()
        self.conversation: list[Message] = []
        self.steps: list[tuple[str, list[Message], bool]] = []  # ("add", messages, one_by_one) or ("pack", ...)
        self.packs: list[tuple[Any, ...]] = []
        self.previous = Previous()
        self.turns = 0

    @initialize(
        budget=st.integers(300, 3000),
        watermarks=marks,
        with_tools=st.booleans(),
        system=st.none() | st.integers(1, 40),
        task=st.integers(1, 60),
    )
    def start(
        self, budget: int, watermarks: tuple[float, float, float] | None, with_tools: bool, system: int | None,
        task: int,
    ) -> None:  # fmt: skip
        self.budget = budget
        self.tools = TOOLS if with_tools else None
        self.high, self.low = (DEFAULT_MARKS.high, DEFAULT_MARKS.low) if watermarks is None else watermarks[:2]
        policy = None
        if watermarks is not None:
            high, low, recent = watermarks
            policy = with_watermarks(high, low, recent)
        self.policy = policy
        self.session = cs.Session(budget, policy=policy, tools=self.tools)
        first = [] if system is None else [self.message("system", system)]
        self.add([*first, self.message("user", task)], one_by_one=False)

    def message(self, role: str, tokens: int) -> Message:
        # A tag makes every message distinct, so that list comparisons are comparisons of positions.
        return {"role": role, "content": f"m{len(self.conversation)}-{self.turns}: {words(tokens)}"}

    def add(self, messages: list[Message], one_by_one: bool) -> None:
        pending = self.session.pending
        if one_by_one:
            for message in messages:
                self.session.append(message)
        else:
            self.session.extend(iter(messages))
        self.conversation.extend(messages)
        self.steps.append(("add", messages, one_by_one))
        assert len(self.session) == len(self.conversation)
        assert self.session.pending == pending + len(messages)

    @rule(tokens=sizes)
    def user(self, tokens: int) -> None:
        self.add([self.message("user", tokens)], one_by_one=True)

    @rule(tokens=sizes, name=st.booleans())
    def assistant(self, tokens: int, name: bool) -> None:
        message = self.message("assistant", tokens)
        if name:
            message["name"] = "helper"
        self.add([message], one_by_one=False)

    @rule(
        results=st.lists(result_sizes, min_size=1, max_size=3),
        text=st.none() | st.integers(1, 60),
        reuse_ids=st.booleans(),
        one_by_one=st.booleans(),
    )
    def tool_turn(self, results: list[int], text: int | None, reuse_ids: bool, one_by_one: bool) -> None:
        self.turns += 1
        ids = [f"call_{n + 1}" if reuse_ids else f"t{self.turns}_{n}" for n in range(len(results))]
        names = ["bash", "read_file", "search"]
        calls = [
            {"id": call_id, "type": "function", "function": {
                "name": names[n], "arguments": json.dumps({"cmd": f"step {self.turns}.{n}"})}}
            for n, call_id in enumerate(ids)
        ]  # fmt: skip
        assistant = self.message("assistant", text) if text is not None else {"role": "assistant", "content": None}
        assistant["tool_calls"] = calls
        batch = [assistant]
        for call_id, tokens in zip(ids, results, strict=True):
            batch.append({"role": "tool", "tool_call_id": call_id, "content": f"r{self.turns}: {words(tokens)}"})
        self.add(batch, one_by_one)

    @rule(tokens=st.integers(1, 30), role=st.sampled_from(["system", "developer"]))
    def system(self, tokens: int, role: str) -> None:
        if sum(1 for m in self.conversation if is_system(m)) < 3:  # occasionally: three at most
            self.add([self.message(role, tokens)], one_by_one=True)

    @rule()
    def pack(self) -> None:
        packed = self.session.pack()
        check_prompt(self.conversation, packed, self.budget, self.tools)
        check_cache(self.conversation, packed, self.previous, self.tools, self.high, self.budget, self.low)
        assert self.session.epoch == packed.cache.epoch
        assert self.session.pending == 0
        self.steps.append(("pack", [], False))
        self.packs.append(snapshot(packed))
        event(f"pack: {packed.cache.reason}")
        if packed.stubbed:
            event("pack: a stub")

    @invariant()
    def sizes_agree(self) -> None:
        if hasattr(self, "session"):
            assert len(self.session) == len(self.conversation)

    def teardown(self) -> None:
        """Determinism: a second session fed the same messages (the other way: appended one by one where the
        first had one ``extend``, and the reverse), packed at the same points, sends the same prompts."""
        if not hasattr(self, "session"):
            return
        if self.session.pending or not self.packs:
            self.pack()
        twin = cs.Session(self.budget, policy=self.policy, tools=self.tools)
        packs = iter(self.packs)
        for step, messages, one_by_one in self.steps:
            if step == "add":
                messages = copy.deepcopy(messages)
                if one_by_one:
                    twin.extend(messages)
                else:
                    for message in messages:
                        twin.append(message)
            else:
                assert snapshot(twin.pack()) == next(packs)


_profile = settings()
TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(
    _profile, max_examples=max(10, _profile.max_examples // 3), stateful_step_count=40
)


# --- 2. one extend or one append at a time ----------------------------------------------------------------


def agent_loop(turns: int, sizes: Callable[[int], list[int]], reminders: int = 0) -> list[Message]:
    """A coding agent's conversation: a system prompt, the task, then turns of calls (the ids reused every
    turn, as some agents do) and their results, now and then a note from the assistant or the harness."""
    messages: list[Message] = [
        {"role": "system", "content": "You are a careful coding agent. Use the tools; explain briefly."},
        {"role": "user", "content": "The test test_parse_dates in tests/test_parser.py fails. Fix it."},
    ]
    for turn in range(turns):
        outputs = sizes(turn)
        calls = [
            {"id": f"call_{n + 1}", "type": "function", "function": {
                "name": "bash", "arguments": json.dumps({"cmd": f"grep -n parse_date src/parser_{turn}_{n}.py"})}}
            for n in range(len(outputs))
        ]  # fmt: skip
        content = None if turn % 3 else f"Looking at step {turn}."
        messages.append({"role": "assistant", "content": content, "tool_calls": calls})
        for n, size in enumerate(outputs):
            log = "\n".join(f"src/parser_{turn}_{n}.py:{line}: {words(12)}" for line in range(size // 20 + 1))
            messages.append({"role": "tool", "tool_call_id": f"call_{n + 1}", "content": log})
        if turn % 7 == 6:
            messages.append({"role": "assistant", "content": f"Step {turn} done: {words(40)}"})
        if reminders and turn % reminders == reminders - 1:
            messages.append({"role": "user", "content": f"Reminder {turn}: keep the fix minimal."})
    messages.append({"role": "assistant", "content": "The fix is in; the suite passes."})
    return messages


def chat_only(turns: int) -> list[Message]:
    messages: list[Message] = [{"role": "user", "content": "Let us plan a trip."}]
    for turn in range(turns):
        messages.append({"role": "assistant", "content": f"Answer {turn}: {words(30 + 37 * turn % 400)}"})
        messages.append({"role": "user", "content": f"Question {turn}: {words(5 + 11 * turn % 90)}"})
    return messages


CONVERSATIONS = {
    "long tool loop": (agent_loop(60, lambda turn: [(turn * 137) % 1500 + 30] + [9000] * (turn % 13 == 5)), 4000),
    "parallel calls": (agent_loop(30, lambda turn: [200, 60 * (turn % 4) + 10, 700][: turn % 3 + 1], 5), 2500),
    "chat only": (chat_only(40), 1500),
    "fits": (agent_loop(4, lambda turn: [50]), 32_000),
}


def pack_points(messages: list[Message]) -> list[int]:
    """Before every assistant message (the agent loop), and at the end."""
    return [i for i, m in enumerate(messages) if m["role"] == "assistant" and i > 0] + [len(messages)]


def replay(
    messages: list[Message], budget: int, feed: Callable[[cs.Session, list[Message], int, int], None]
) -> list[tuple[Any, ...]]:
    session = cs.Session(budget)
    packs = []
    previous = Previous()
    start = 0
    for point in pack_points(messages):
        feed(session, messages, start, point)
        start = point
        packed = session.pack()
        check_prompt(messages[:point], packed, budget)
        check_cache(messages[:point], packed, previous, budget=budget)
        packs.append(snapshot(packed))
    return packs


def by_extend(session: cs.Session, messages: list[Message], start: int, end: int) -> None:
    session.extend(messages[start:end])


def by_append(session: cs.Session, messages: list[Message], start: int, end: int) -> None:
    for message in messages[start:end]:
        session.append(message)


def by_sync(session: cs.Session, messages: list[Message], start: int, end: int) -> None:
    session.sync(messages[:end])


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_one_extend_or_one_append_at_a_time_packs_the_same(name: str) -> None:
    messages, budget = CONVERSATIONS[name]
    by_one_extend = replay(messages, budget, by_extend)
    assert replay(copy.deepcopy(messages), budget, by_append) == by_one_extend
    assert replay(messages, budget, by_sync) == by_one_extend
    # All at once, or one at a time, and a single pack.
    whole, single = cs.Session(budget), cs.Session(budget)
    whole.extend(messages)
    for message in messages:
        single.append(message)
    assert snapshot(whole.pack()) == snapshot(single.pack())
    if name == "fits":
        assert all(pack[0] == messages[: len(pack[0])] for pack in by_one_extend)
        assert {pack[-1][3] for pack in by_one_extend} == {1}  # one epoch throughout
    else:
        assert by_one_extend[-1][-1][3] > 1, "the conversation was meant to force epochs"


# --- 3. bad input leaves the session as it was ------------------------------------------------------------


def started(budget: int = 1500) -> tuple[cs.Session, list[Message]]:
    """A session with some history, packed once, and a user message pending."""
    messages = agent_loop(6, lambda turn: [300])
    session = cs.Session(budget)
    session.extend(messages)
    session.pack()
    session.append({"role": "user", "content": "And the docs?"})
    return session, [*messages, {"role": "user", "content": "And the docs?"}]


def twin_of(messages: list[Message], budget: int = 1500) -> cs.Session:
    session = cs.Session(budget)
    session.extend(messages[:-1])
    session.pack()
    session.append(messages[-1])
    return session


BAD = {
    "bad role": {"role": "robot", "content": "beep"},
    "a result answering no call": {"role": "tool", "tool_call_id": "ghost", "content": "orphan"},
    "a result answering a call already answered": {"role": "tool", "tool_call_id": "call_1", "content": "again"},
    "not a dict": 3,
    "content not text": {"role": "user", "content": 3},
    "no content": {"role": "user"},
}


@pytest.mark.parametrize("bad", BAD)
def test_a_malformed_message_raises_and_leaves_the_session_as_it_was(bad: str) -> None:
    session, messages = started()
    epoch, pending = session.epoch, session.pending
    with pytest.raises(cs.MessageFormatError, match=rf"messages\[{len(messages)}\]"):
        session.append(BAD[bad])
    assert (len(session), session.epoch, session.pending) == (len(messages), epoch, pending)
    packed = session.pack()
    assert snapshot(packed) == snapshot(twin_of(messages).pack())
    check_prompt(messages, packed, 1500)


@pytest.mark.parametrize("bad", BAD)
def test_extend_with_one_bad_message_among_good_ones_appends_none(bad: str) -> None:
    session, messages = started()
    good = [{"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Thanks."}]
    with pytest.raises(cs.MessageFormatError):
        session.extend([good[0], BAD[bad], good[1]])
    with pytest.raises(cs.MessageFormatError):
        session.extend(iter([*good, BAD[bad]]))
    assert len(session) == len(messages)
    assert snapshot(session.pack()) == snapshot(twin_of(messages).pack())
    session.extend(good)
    assert len(session) == len(messages) + 2


def test_a_pack_with_a_call_still_waiting_raises_then_the_result_makes_it_work() -> None:
    session, messages = started()
    twin = twin_of(messages)
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}}]}  # fmt: skip
    result = {"role": "tool", "tool_call_id": "call_9", "content": "README.md\nsrc\ntests"}
    session.append(call)
    epoch = session.epoch
    with pytest.raises(cs.MessageFormatError, match='tool call "call_9" with no result after it'):
        session.pack()
    assert (len(session), session.epoch, session.pending) == (len(messages) + 1, epoch, 2)
    session.append(result)
    twin.extend([call, result])
    packed = session.pack()
    assert snapshot(packed) == snapshot(twin.pack())
    check_prompt([*messages, call, result], packed, 1500)
    assert packed.messages[-2:] == [call, result]


def test_a_failed_pack_does_not_count_as_a_pack() -> None:
    # The first pack fails: the next one is still the first.
    session = cs.Session(1000)
    session.extend([{"role": "user", "content": "task"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}])  # fmt: skip
    with pytest.raises(cs.MessageFormatError):
        session.pack()
    assert session.epoch == 0
    session.append({"role": "tool", "tool_call_id": "c", "content": "done"})
    report = session.pack().cache
    assert (report.reason, report.epoch, report.first_change, report.prefix_tokens) == (FIRST_PACK, 1, 0, 0)


# --- 4. settings ------------------------------------------------------------------------------------------


def test_invalid_watermarks_and_formats_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        cs.Policy(watermarks=cs.Watermarks(low=0.9, high=0.5))
    with pytest.raises(pydantic.ValidationError):
        cs.Policy.model_validate({"watermarks": {"low": 0.5, "recent": 0.6}})
    with pytest.raises(pydantic.ValidationError):
        cs.Watermarks(high=1.5)
    # Anthropic sessions exist since 3cd3bc2 (tests/test_session_anthropic.py); an unknown format is refused.
    with pytest.raises(ValueError, match="a Session's format must be one of 'openai', 'responses'"):
        cs.Session(1000, format="gemini")
    with pytest.raises(ValueError, match="budget"):
        cs.Session(-1)
    with pytest.raises(cs.BudgetError):
        cs.Session(2)  # below the reply priming


def test_tool_definitions_are_reserved_and_part_of_the_cached_prefix() -> None:
    tools_tokens = reference_tools(TOOLS)
    assert tools_tokens > 0
    messages = agent_loop(3, lambda turn: [40])
    with_tools, without = cs.Session(5000, tools=TOOLS), cs.Session(5000)
    with_tools.extend(messages[:4])
    without.extend(messages[:4])
    first = with_tools.pack()
    assert first.tokens == reference_count(messages[:4]) + tools_tokens == without.pack().tokens + tools_tokens
    assert first.tools_tokens == tools_tokens
    assert first.cache.prefix_tokens == 0
    with_tools.extend(messages[4:])
    second = with_tools.pack()
    assert second.cache.first_change is None
    assert second.cache.prefix_tokens == reference_count(messages[:4]) - PRIMING + tools_tokens
    # The tools count against the budget: a budget that holds the messages alone but not with the tools.
    budget = reference_count(messages) + tools_tokens // 2
    tight = cs.Session(budget, tools=TOOLS)
    tight.extend(messages)
    packed = tight.pack()
    check_prompt(messages, packed, budget, TOOLS)
    assert packed.messages != messages
    with pytest.raises(cs.BudgetError):
        cs.Session(tools_tokens, tools=TOOLS)


def test_the_key_is_stable_and_a_given_key_is_kept() -> None:
    session, other = cs.Session(1000), cs.Session(1000)
    key = session.key
    assert key
    assert key != other.key
    session.append({"role": "user", "content": "task"})
    session.pack()
    session.append({"role": "assistant", "content": "ok"})
    session.pack()
    assert session.key == key
    assert cs.Session(1000, key="user-42/conversation-7").key == "user-42/conversation-7"
    with pytest.raises(ValueError, match="key"):
        cs.Session(1000, key="")


def test_sync_appends_only_the_new_tail() -> None:
    messages = agent_loop(5, lambda turn: [100])
    session = cs.Session(2000)
    session.sync(messages[:4])
    assert (len(session), session.pending) == (4, 4)
    first = session.pack()
    session.sync(messages[:4])
    assert (len(session), session.pending) == (4, 0)
    session.sync(messages)
    assert (len(session), session.pending) == (len(messages), len(messages) - 4)
    packed = session.pack()
    assert packed.cache.first_change is None
    assert packed.messages == messages
    assert packed.messages[: len(first.messages)] == first.messages
    with pytest.raises(ValueError, match="the conversation has 3 messages but the session has"):
        session.sync(messages[:3])
    assert len(session) == len(messages)


# --- 5. epochs, computed by hand --------------------------------------------------------------------------


def coding_turns(turns: int) -> list[Message]:
    """A system prompt, a task, then ``turns`` turns each with one call and a ~150-token result."""
    messages: list[Message] = [
        {"role": "system", "content": "You are a careful coding agent."},
        {"role": "user", "content": "Fix the failing test in parser.py."},
    ]
    for turn in range(turns):
        messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "bash", "arguments": json.dumps({"cmd": f"pytest -k case_{turn}"})}}]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": f"case {turn}: {words(150)}"})
    return messages


BUDGET = 1000
# The low watermark: its fraction (0.85 by default) of what the reply priming leaves, plus the priming.
LOW = PRIMING + int(DEFAULT_MARKS.low * (BUDGET - PRIMING))
TURNS = 20


def loop_packs(messages: list[Message], budget: int) -> list[cs.PackedMessages]:
    """Pack after each turn (before the model's next call), each prompt checked."""
    session = cs.Session(budget)
    session.extend(messages[:2])
    packs = []
    previous = Previous()
    for end in range(4, len(messages) + 1, 2):
        session.extend(messages[end - 2 : end])
        packed = session.pack()
        check_prompt(messages[:end], packed, budget)
        check_cache(messages[:end], packed, previous, budget=budget)
        packs.append(packed)
    return packs


def test_epoch_arithmetic() -> None:
    messages = coding_turns(TURNS)
    # Each turn costs the same: a call (3 + 3 + "bash" + arguments) and a result (3 + role + ~153).
    turn = reference_count(messages[:4]) - reference_count(messages[:2])
    assert 160 < turn < 180
    assert reference_count(messages[:2]) < 30


def test_packs_append_until_the_prompt_would_pass_the_budget_then_an_epoch_keeps_the_new_result_whole() -> None:
    messages = coding_turns(TURNS)
    packs = loop_packs(messages, BUDGET)
    # The first k turns fit whole while reference_count(messages[: 2 + 2k]) <= budget.
    whole = [reference_count(messages[: 4 + 2 * k]) for k in range(TURNS)]
    fit = next(k for k, tokens in enumerate(whole) if tokens > BUDGET)
    assert fit >= 4
    for k in range(fit):
        assert packs[k].messages == messages[: 4 + 2 * k], f"pack {k}: the conversation fits, it is sent as is"
        assert packs[k].tokens == whole[k]
        assert packs[k].cache.epoch == 1
        if k:
            assert packs[k].cache.prefix_tokens == whole[k - 1] - PRIMING
    # The first pack that cannot append whole is a new epoch, and the result just added is sent whole.
    epoch = packs[fit]
    assert (epoch.cache.epoch, epoch.cache.reason) == (2, NEW_EPOCH), (
        f"pack {fit}: {whole[fit]} tokens whole, over the budget of {BUDGET}, but {epoch.cache!r} "
        f"with the new result {epoch.decision(3 + 2 * fit).action} to {epoch.decision(3 + 2 * fit).tokens_after}"
    )
    assert epoch.messages[-2:] == messages[2 + 2 * fit : 4 + 2 * fit]
    assert epoch.tokens <= LOW


def test_an_epoch_cuts_late_and_packs_down_to_the_low_watermark() -> None:
    messages = coding_turns(TURNS)
    packs = loop_packs(messages, BUDGET)
    epochs = [k for k in range(1, len(packs)) if packs[k].cache.epoch > packs[k - 1].cache.epoch]
    assert len(epochs) >= 2
    assert all(pack.cache.epoch == 1 for pack in packs[: epochs[0]])
    assert all(pack.cache.first_change is None for pack in packs[1 : epochs[0]])
    changes = []
    for k in epochs:
        before, after = packs[k - 1], packs[k]
        change = after.cache.first_change
        assert after.cache.reason == NEW_EPOCH
        # The system prompt, the task and the oldest turn stay as sent: the cut is late, not at the start.
        assert change is not None
        assert change >= 4, change
        assert after.messages[:change] == before.messages[:change]
        assert after.messages[:4] == messages[:4]
        assert after.cache.prefix_tokens == reference_count(before.messages[:change]) - PRIMING
        # Down to the low watermark in one step, the latest turn whole.
        assert after.tokens <= LOW
        assert after.messages[-2:] == messages[2 + 2 * k : 4 + 2 * k]
        # Then append-only again until the next epoch.
        changes.append(change)
    assert changes == sorted(changes), "a later epoch does not cut before an earlier one's cut"
    for k in range(epochs[0] + 1, len(packs)):
        if k not in epochs:
            assert packs[k].messages[: len(packs[k - 1].messages)] == packs[k - 1].messages


def test_custom_watermarks_move_the_epochs() -> None:
    messages = coding_turns(TURNS)
    session = cs.Session(BUDGET, policy=with_watermarks(0.6, 0.4, 0.1))
    session.extend(messages[:2])
    high, low = 3 + int(0.6 * (BUDGET - 3)), 3 + int(0.4 * (BUDGET - 3))
    previous = Previous()
    epochs = 0
    for end in range(4, len(messages) + 1, 2):
        session.extend(messages[end - 2 : end])
        packed = session.pack()
        check_prompt(messages[:end], packed, BUDGET)
        check_cache(messages[:end], packed, previous, high=0.6, budget=BUDGET, low=0.4)
        assert packed.tokens <= high
        if packed.cache.reason == NEW_EPOCH:
            epochs += 1
            assert packed.tokens <= low
    assert epochs >= 3


# --- 6. real transcripts ----------------------------------------------------------------------------------


@cache
def largest_transcripts(count: int) -> list[dict[str, Any]]:
    if not TRANSCRIPTS.exists():
        pytest.skip(f"the shared transcripts are not present at {TRANSCRIPTS}")
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]

    def characters(messages: Iterable[Message]) -> int:
        return sum(
            len(m.get("content") or "") + sum(len(c["function"]["arguments"]) for c in m.get("tool_calls") or [])
            for m in messages
        )

    return sorted(rows, key=lambda row: characters(row["messages"]), reverse=True)[:count]


def test_the_largest_transcripts_replayed_at_8k_give_valid_prompts_that_reuse_the_prefix() -> None:
    budget = 8000
    invalid: list[tuple[str, int, str]] = []
    reuse: list[float] = []
    for transcript in largest_transcripts(5):
        messages = transcript["messages"]
        session = cs.Session(budget)
        previous = Previous()
        for turn in (i for i, m in enumerate(messages) if m["role"] == "assistant" and i > 0):
            session.sync(messages[:turn])
            packed = session.pack()
            try:
                check_prompt(messages[:turn], packed, budget)
                check_cache(messages[:turn], packed, previous, budget=budget)
            except AssertionError as error:
                invalid.append((transcript["id"], turn, str(error)[:300]))
                remember(previous, packed, turn)
            if packed.cache.reason != FIRST_PACK:  # nothing was cached before the first
                reuse.append(packed.cache.prefix_tokens / packed.tokens)
        assert session.epoch > 1, "the transcripts are meant to be larger than the budget"
    assert not invalid, invalid[:5]
    assert sum(reuse) / len(reuse) > 0.8


# --- the checks themselves --------------------------------------------------------------------------------


def test_the_checks_catch_broken_prompts() -> None:
    messages = coding_turns(4)
    session = cs.Session(BUDGET)
    session.extend(messages[:6])
    first = session.pack()
    session.extend(messages[6:])
    packed = session.pack()
    check_prompt(messages, packed, BUDGET)
    out, indices = list(packed.messages), list(packed.indices)
    result = next(p for p, m in enumerate(out) if m["role"] == "tool")
    broken = {
        "over budget": replace(packed, tokens=packed.tokens + 1),
        "a result dropped": replace(packed, messages=out[:result] + out[result + 1 :],
                                    indices=indices[:result] + indices[result + 1 :]),
        "out of order": replace(packed, messages=[*out[:2], out[3], out[2], *out[4:]],
                                indices=[*indices[:2], indices[3], indices[2], *indices[4:]]),
        "a system message dropped": replace(packed, messages=out[1:], indices=indices[1:]),
        "a message changed": replace(packed, messages=[*out[:-1], {**out[-1], "tool_call_id": "other"}]),
    }  # fmt: skip
    for name, prompt in broken.items():
        try:
            check_prompt(messages, prompt, BUDGET)
        except AssertionError:
            continue
        pytest.fail(f"check_prompt missed: {name}")
    # The cache report against a previous prompt it does not extend.
    previous = Previous()
    remember(previous, first, 6)
    check_cache(messages, packed, copy.deepcopy(previous), budget=BUDGET)
    assert packed.cache.first_change is None
    previous.messages = [*previous.messages[:-1], {"role": "tool", "tool_call_id": "call_1", "content": "else"}]
    with pytest.raises(AssertionError):
        check_cache(messages, packed, previous, budget=BUDGET)


def test_a_message_between_calls_and_their_results_is_refused() -> None:
    session, messages = started()
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}}]}  # fmt: skip
    session.append(call)
    with pytest.raises(cs.MessageFormatError, match=rf"messages\[{len(messages) + 1}\] comes before the results"):
        session.append({"role": "user", "content": "Hurry up."})
    assert len(session) == len(messages) + 1
    session.append({"role": "tool", "tool_call_id": "call_9", "content": "README.md"})
    twin = twin_of(messages)
    twin.extend([call, {"role": "tool", "tool_call_id": "call_9", "content": "README.md"}])
    assert snapshot(session.pack()) == snapshot(twin.pack())


# --- determinism across processes -------------------------------------------------------------------------

_PACK_IN_A_FRESH_PROCESS = """
import json, sys
import ctxsched as cs
messages, budget = json.load(sys.stdin)
session = cs.Session(budget)
session.extend(messages)
json.dump(session.pack().messages, sys.stdout)
"""


def test_what_a_session_sends_does_not_depend_on_what_the_process_counted_before() -> None:
    # An old result large enough to be stubbed; this process has counted it whole, a fresh one has not.
    messages = coding_turns(4)
    for index, tokens in zip((3, 5, 7, 9), (2000, 300, 300, 300), strict=True):
        messages[index]["content"] = words(tokens)
    budget = 1000
    cs.pack_messages(messages, 10**7)
    session = cs.Session(budget)
    session.extend(messages)
    here = session.pack()
    check_prompt(messages, here, budget)
    assert here.stubbed, "the case is meant to stub the large result"
    fresh = subprocess.run(
        [sys.executable, "-c", _PACK_IN_A_FRESH_PROCESS],
        input=json.dumps([messages, budget]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(fresh.stdout) == here.messages


# --- the report compares what is sent ---------------------------------------------------------------------

REPEATED = ["Go on.", "OK.", "Please provide EXACTLY ONE action.", words(60), words(120)]


@settings(settings(), max_examples=max(10, settings().max_examples // 3))
@given(
    budget=st.sampled_from([300, 500, 800]),
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.sampled_from(REPEATED)), min_size=1, max_size=2),
        max_size=12,
    ),
)
def test_identical_messages_repeated_are_reported_as_the_cache_sees_them(
    budget: int, batches: list[list[tuple[str, str]]]
) -> None:
    # Harness reminders repeat word for word: a prompt that has the same bytes at the same place is a cache hit
    # there, whichever input message they came from.
    conversation: list[Message] = [{"role": "user", "content": "Fix the failing test."}]
    session = cs.Session(budget)
    session.extend(conversation)
    previous = Previous()
    check_cache(conversation, session.pack(), previous, budget=budget)
    for batch in batches:
        messages = [{"role": role, "content": content} for role, content in batch]
        session.extend(messages)
        conversation += messages
        packed = session.pack()
        check_prompt(conversation, packed, budget)
        check_cache(conversation, packed, previous, budget=budget)
