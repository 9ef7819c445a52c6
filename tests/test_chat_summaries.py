"""Summaries in ``pack_messages``: a run of whole messages that must go becomes one user message in its place,
tool pairs valid around it, memoised, within the budget. Deterministic fake summarisers only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ctxsched as cs
from ctxsched.stores import MemoryStore
from tests.fences import as_sent
from tests.session_checks import SUMMARY_HEADER, check_prompt
from tests.test_anthropic import check_valid
from tests.test_anthropic import conversation as anthropic_conversation
from tests.test_session_summaries import Summariser, check_lineage, task, tool_turn


def conversation(turns: int, lines: int = 12) -> list[dict[str, Any]]:
    messages = task()
    for number in range(turns):
        messages += tool_turn(number, lines)
    return messages


def summary_positions(packed: cs.PackedMessages) -> list[int]:
    return [position for position, index in enumerate(packed.indices) if index is None]


def test_a_run_of_evicted_turns_becomes_one_user_message_where_it_was() -> None:
    messages = conversation(80)
    hook = Summariser()
    packed = cs.pack_messages(messages, 2000, summarizer=hook, summary_cache=MemoryStore())
    check_prompt(messages, packed, 2000)
    check_lineage(messages, packed)
    [position] = summary_positions(packed)
    summary = packed.messages[position]
    assert summary == {"role": "user", "content": summary["content"]}
    assert summary["content"].startswith(SUMMARY_HEADER)
    assert summary["content"].endswith(f"{len(hook.calls[0])} inputs (history, tool_call, tool_result)")
    # In the place of its run: after the messages before the first one it covers, before those after the last.
    [placed] = [s for s in packed.result.segments if s.kind == "summary"]
    covered = placed.segment.metadata["messages"]
    before = [index for index in packed.indices[:position] if index is not None]
    after = [index for index in packed.indices[position + 1 :] if index is not None]
    assert all(index < covered[0] for index in before)
    assert all(index > covered[-1] for index in after)
    assert covered == list(range(covered[0], covered[-1] + 1)), "a run is contiguous"
    # The hook saw the run's messages whole: every content of the covered messages is in its inputs.
    texts = {segment.text for segment in hook.calls[0]}
    assert {messages[i]["content"] for i in covered if messages[i]["content"]} <= texts
    assert "summarised" in packed.explain()
    assert "Summariser" in packed.explain()


def test_without_a_hook_or_when_everything_fits_nothing_changes() -> None:
    messages = conversation(80)
    plain = cs.pack_messages(messages, 2000)
    assert not summary_positions(plain)
    hook = Summariser()
    small = conversation(3)
    assert cs.pack_messages(small, 2000, summarizer=hook).messages == as_sent(small)
    assert not hook.calls


def test_the_same_history_packed_again_never_calls_the_hook_again() -> None:
    hook, cache = Summariser(), MemoryStore()
    messages = conversation(80)
    first = cs.pack_messages(messages, 2000, summarizer=hook, summary_cache=cache)
    again = cs.pack_messages(messages, 2000, summarizer=hook, summary_cache=cache)
    assert len(hook.calls) == 1
    assert first.messages == again.messages


@pytest.mark.parametrize("fallback", ["truncate", "evict"])
def test_a_failing_hook_falls_back_and_the_decisions_say_so(fallback: str) -> None:
    policy = cs.Policy.model_validate({**cs.chat_policy().model_dump(), "summaries": {"fallback": fallback}})
    messages = conversation(80)
    packed = cs.pack_messages(messages, 2000, policy=policy, summarizer=lambda s, n: 1 / 0)
    check_prompt(messages, packed, 2000)
    assert bool(summary_positions(packed)) == (fallback == "truncate")
    failures = [d.fallback for d in packed.result.decisions if d.fallback]
    assert failures
    assert all("ZeroDivisionError" in text for text in failures)
    strict = cs.Policy.model_validate({**cs.chat_policy().model_dump(), "summaries": {"strict": True}})
    with pytest.raises(cs.SummaryError, match="ZeroDivisionError"):
        cs.pack_messages(messages, 2000, policy=strict, summarizer=lambda s, n: 1 / 0)


def test_responses_items_get_a_message_item() -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "Fix the build."}]
    for number in range(80):
        items.append({"type": "function_call", "call_id": f"c{number}", "name": "bash", "arguments": "{}"})
        output = "\n".join(f"step {number} line {line}: some output here" for line in range(12))
        items.append({"type": "function_call_output", "call_id": f"c{number}", "output": output})
    packed = cs.pack_messages(items, 2000, format="responses", summarizer=Summariser())
    [position] = summary_positions(packed)
    assert packed.messages[position]["type"] == "message"
    assert packed.messages[position]["role"] == "user"
    assert packed.tokens <= 2000


@settings(max_examples=40, deadline=None)
@given(
    turns=st.integers(1, 40),
    lines=st.integers(1, 40),
    budget=st.integers(200, 4000),
    merge=st.booleans(),
    room=st.sampled_from([0.05, 0.2, 0.5, 300]),
    kinds=st.sampled_from([[], ["history"], ["tool_result"]]),
)
def test_budget_conservation_and_tool_pairs_hold_with_summaries(
    turns: int, lines: int, budget: int, merge: bool, room: float, kinds: list[str]
) -> None:
    messages = conversation(turns, lines)
    summaries = {"merge": merge, "budget": room}
    # Summarising only a turn's call or only its results must not break the pair: the turn stays evicted.
    policy = cs.Policy.model_validate({**cs.chat_policy().model_dump(), "summaries": summaries, "summarize": kinds})
    try:
        packed = cs.pack_messages(messages, budget, policy=policy, summarizer=Summariser(), summary_cache=MemoryStore())
    except cs.BudgetError:
        with pytest.raises(cs.BudgetError):
            cs.pack_messages(messages, budget, policy=policy)
        return
    check_prompt(messages, packed, budget)
    check_lineage(messages, packed)
    if not merge:
        # Each summary covers one message (a turn's call with its result is two messages, each summarised).
        for placed in (s for s in packed.result.segments if s.kind == "summary"):
            assert len(placed.segment.metadata["messages"]) == 1


def anthropic_summaries(packed: cs.PackedMessages) -> list[str]:
    texts = []
    for message in packed.messages["messages"]:
        blocks = message["content"] if isinstance(message["content"], list) else []
        texts += [b["text"] for b in blocks if b.get("type") == "text" and b["text"].startswith(SUMMARY_HEADER)]
    return texts


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(20, 400), min_size=1, max_size=60),
    budget=st.integers(1500, 6000),
    merge=st.booleans(),
)
def test_anthropic_conversations_get_a_summary_block_and_stay_valid(sizes: list[int], budget: int, merge: bool) -> None:
    original = anthropic_conversation(sizes)
    hook = Summariser()
    policy = cs.Policy.model_validate({**cs.chat_policy().model_dump(), "summaries": {"merge": merge}})
    packed = cs.pack_messages(
        original, budget, format="anthropic", policy=policy, summarizer=hook, summary_cache=MemoryStore()
    )
    check_valid(original, packed, task_whole=False)
    placed = [s for s in packed.result.segments if s.kind == "summary"]
    assert len(anthropic_summaries(packed)) == len(placed)
    for summary in placed:
        for message in summary.segment.metadata["messages"]:
            assert packed.decision(message).rule == "summarised"
    if merge and sum(sizes) > 3 * budget:
        assert placed, "a long conversation summarises what goes"


def test_an_anthropic_session_summarises_at_epochs_and_stays_valid() -> None:
    original = anthropic_conversation([300] * 60)
    session = cs.Session(4000, format="anthropic", system=original["system"], summarizer=Summariser())
    session.extend(original["messages"][:1])
    seen = []
    for turn in range(60):
        session.extend(original["messages"][1 + 2 * turn : 3 + 2 * turn])
        packed = session.pack()
        request = {**packed.messages, "model": original["model"]}
        check_valid(
            {**original, "messages": original["messages"][: 3 + 2 * turn]},
            replace(packed, messages=request),
            task_whole=False,
        )
        assert packed.cache is not None
        seen.append(len(anthropic_summaries(packed)))
    assert max(seen) == 1, "one summary, grown"
