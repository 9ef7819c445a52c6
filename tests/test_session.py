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
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import cache
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ctxsched as cs
from tests.fences import as_sent
from tests.packing import words
from tests.reference import reference_tools
from tests.session_checks import (
    DEFAULT_MARKS,
    FIRST_PACK,
    NEW_EPOCH,
    PRIMING,
    TOOLS,
    Message,
    Previous,
    check_cache,
    check_prompt,
    remember,
    snapshot,
    with_watermarks,
)
from tests.test_messages import TRANSCRIPTS, reference_count

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
        assert all(pack[0] == as_sent(messages)[: len(pack[0])] for pack in by_one_extend)
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
    assert packed.messages[-2:] == as_sent([call, result])


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
    assert first.tokens == reference_count(as_sent(messages[:4])) + tools_tokens == without.pack().tokens + tools_tokens
    assert first.tools_tokens == tools_tokens
    assert first.cache.prefix_tokens == 0
    with_tools.extend(messages[4:])
    second = with_tools.pack()
    assert second.cache.first_change is None
    assert second.cache.prefix_tokens == reference_count(as_sent(messages[:4])) - PRIMING + tools_tokens
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
    assert packed.messages == as_sent(messages)
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
    # The first k turns fit whole while the prompt as sent (tool results fenced) is within the budget.
    whole = [reference_count(as_sent(messages[: 4 + 2 * k])) for k in range(TURNS)]
    fit = next(k for k, tokens in enumerate(whole) if tokens > BUDGET)
    assert fit >= 4
    for k in range(fit):
        assert packs[k].messages == as_sent(messages)[: 4 + 2 * k], f"pack {k}: the conversation fits, it is sent as is"
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
    assert epoch.messages[-2:] == as_sent(messages)[2 + 2 * fit : 4 + 2 * fit]
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
        assert after.messages[:4] == as_sent(messages)[:4]
        assert after.cache.prefix_tokens == reference_count(before.messages[:change]) - PRIMING
        # Down to the low watermark in one step, the latest turn whole.
        assert after.tokens <= LOW
        assert after.messages[-2:] == as_sent(messages)[2 + 2 * k : 4 + 2 * k]
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
