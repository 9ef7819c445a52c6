"""Summaries in sessions: made only at a new epoch, kept as sent within it, grown from the originals (never a
summary of a summary of a summary), memoised across sessions and restarts, and safe when the hook fails.

Every summariser here is a deterministic fake; nothing touches the network.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, settings

import ctxsched as cs
from ctxsched.stores import MemoryStore, SQLiteStore
from tests.packing import words
from tests.session_checks import SUMMARY_HEADER, Message, Previous, check_cache, check_prompt
from tests.test_session_properties import SessionMachine


class Summariser:
    """Says how many inputs it had and whether one was a summary; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[list[cs.Segment]] = []
        self.lock = threading.Lock()

    def __call__(self, segments: list[cs.Segment], max_tokens: int) -> str:
        with self.lock:
            self.calls.append(list(segments))
        kinds = sorted({segment.kind for segment in segments})
        return f"{len(segments)} inputs ({', '.join(kinds)})"


def task() -> list[Message]:
    return [{"role": "system", "content": "You are a careful agent."}, {"role": "user", "content": "Fix the build."}]


def tool_turn(number: int, lines: int = 12) -> list[Message]:
    call = {
        "id": f"c{number}",
        "type": "function",
        "function": {"name": "bash", "arguments": json.dumps({"n": number})},
    }
    output = "\n".join(f"step {number} line {line}: {words(6)}" for line in range(lines))
    return [
        {"role": "assistant", "content": f"Step {number}: let me look.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{number}", "content": output},
    ]


def summaries_in(packed: cs.PackedMessages) -> list[cs.PlacedSegment]:
    return [segment for segment in packed.result.segments if segment.kind == "summary"]


def check_lineage(conversation: list[Message], packed: cs.PackedMessages) -> None:
    """Each summary sent covers messages no longer sent, whose decisions name it; depth 1 or 2."""
    placed = {index for index in packed.indices if index is not None}
    for placed_summary in summaries_in(packed):
        lineage = placed_summary.segment.metadata
        assert lineage is not None
        assert lineage["depth"] in (1, 2), lineage
        sources = lineage["messages"]
        assert sources, lineage
        assert sources == sorted(set(sources)), lineage
        for source in sources:
            assert 0 <= source < len(conversation)
            assert source not in placed, f"message {source} is sent and summarised"
            assert packed.decision(source).rule == "summarised", (source, packed.decision(source))
    assert sum(1 for index in packed.indices if index is None) == len(summaries_in(packed))


def run_session(session: cs.Session, turns: int, first: int = 0) -> list[cs.PackedMessages]:
    packs = []
    for number in range(first, first + turns):
        session.extend(tool_turn(number))
        packs.append(session.pack())
    return packs


def test_the_hook_runs_once_per_epoch_and_the_summary_changes_only_at_epochs() -> None:
    hook = Summariser()
    session = cs.Session(1500, summarizer=hook, store=MemoryStore())
    session.extend(task())
    conversation, previous = task(), Previous()
    epochs_with_summaries = set()
    for number in range(50):
        calls = len(hook.calls)
        session.extend(tool_turn(number))
        conversation += tool_turn(number)
        packed = session.pack()
        check_prompt(conversation, packed, 1500)
        check_cache(conversation, packed, previous, budget=1500)
        check_lineage(conversation, packed)
        assert packed.cache is not None
        if packed.cache.first_change is None:
            assert len(hook.calls) == calls, f"turn {number}: the hook ran within an epoch"
        assert len(hook.calls) - calls <= 1, "one run per epoch here"
        if summaries_in(packed):
            epochs_with_summaries.add(packed.cache.epoch)
    assert len(hook.calls) >= 5, len(hook.calls)
    assert len(epochs_with_summaries) >= 5, epochs_with_summaries
    # One summary, grown: the latest covers more than the first did.
    last = summaries_in(packed)
    assert len(last) == 1
    assert len(last[0].segment.metadata["messages"]) > 20


def test_a_growing_summary_is_made_from_the_originals_or_the_summary_and_new_ones_never_deeper() -> None:
    for input_tokens, depths in ((100_000, {1}), (600, {1, 2})):
        hook = Summariser()
        policy = cs.Policy.model_validate(
            {**cs.chat_policy().model_dump(), "summaries": {"input_tokens": input_tokens}}
        )
        session = cs.Session(1500, policy=policy, summarizer=hook, store=MemoryStore())
        session.extend(task())
        seen = set()
        for packed in run_session(session, 60):
            for summary in summaries_in(packed):
                seen.add(summary.segment.metadata["depth"])
        assert seen == depths, (input_tokens, seen)
        for inputs in hook.calls:
            from_summary = [segment for segment in inputs if segment.kind == "summary"]
            # A depth-2 summary is made from one depth-1 summary and originals; never from a depth-2 one.
            assert len(from_summary) <= 1
            if input_tokens >= 100_000:
                assert not from_summary, "the originals fit: no summary of a summary"
        assert any(segment.kind == "tool_result" for inputs in hook.calls for segment in inputs)


def test_summaries_keep_more_of_the_prefix_than_repacking_would_and_stay_in_budget() -> None:
    for summarizer in (None, Summariser()):
        session = cs.Session(2000, summarizer=summarizer)
        session.extend(task())
        packs = run_session(session, 40)
        assert all(packed.tokens <= 2000 for packed in packs)
        reused = [packed.cache.prefix_tokens for packed in packs[1:] if packed.cache is not None]
        assert sum(reused) / sum(packed.tokens for packed in packs[:-1]) > 0.7


def test_the_sqlite_store_keeps_summaries_across_sessions_and_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "summaries.db"
    first = Summariser()
    session = cs.Session(1500, summarizer=first, store=SQLiteStore(path))
    session.extend(task())
    run_session(session, 30)
    assert first.calls
    # The same conversation in a new session, with the same store: every summary comes from the cache.
    again = Summariser()
    again.__ctxsched_id__ = cs.hooks.hook_name(first)  # type: ignore[attr-defined]
    twin = cs.Session(1500, summarizer=again, store=SQLiteStore(path))
    twin.extend(task())
    run_session(twin, 30)
    assert again.calls == []
    # And in a new process.
    script = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
import ctxsched as cs
from ctxsched.stores import SQLiteStore
from tests.test_session_summaries import Summariser, task, run_session
hook = Summariser()
hook.__ctxsched_id__ = {cs.hooks.hook_name(first)!r}
session = cs.Session(1500, summarizer=hook, store=SQLiteStore({str(path)!r}))
session.extend(task())
run_session(session, 30)
print(len(hook.calls))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


@pytest.mark.parametrize("fallback", ["truncate", "evict"])
@pytest.mark.parametrize(
    "fault",
    [
        lambda segments, max_tokens: 1 / 0,
        lambda segments, max_tokens: None,
        lambda segments, max_tokens: "   ",
        lambda segments, max_tokens: "word " * (max_tokens + 50),
    ],
    ids=["raises", "not a str", "empty", "too long"],
)
def test_a_failing_hook_falls_back_and_says_so(fault: Any, fallback: str) -> None:
    policy = cs.Policy.model_validate({**cs.chat_policy().model_dump(), "summaries": {"fallback": fallback}})
    session = cs.Session(1500, policy=policy, summarizer=fault)
    session.extend(task())
    conversation = task()
    recorded = False
    for number in range(30):
        session.extend(tool_turn(number))
        conversation += tool_turn(number)
        packed = session.pack()
        check_prompt(conversation, packed, 1500)
        sent = [m for m, i in zip(packed.messages, packed.indices, strict=True) if i is None]
        if fallback == "evict":
            assert not sent
        for summary in summaries_in(packed):
            assert summary.segment.metadata["fallback"], "a cut stands in: the failure is in its lineage"
        fallbacks = [d.fallback for d in packed.result.decisions if d.fallback]
        recorded |= any("summarizer" in text for text in fallbacks)
    assert recorded, "the failure is recorded in the run's decisions"


def test_strict_raises_and_keyboard_interrupt_stops_the_pack_leaving_the_session_as_it_was() -> None:
    def interrupted(segments: list[cs.Segment], max_tokens: int) -> str:
        raise KeyboardInterrupt

    strict = cs.Policy.model_validate({**cs.chat_policy().model_dump(), "summaries": {"strict": True}})
    for policy, hook, error in ((strict, lambda s, n: 1 / 0, cs.SummaryError), (None, interrupted, KeyboardInterrupt)):
        session = cs.Session(1500, policy=policy, summarizer=hook)
        session.extend(task())
        for number in range(40):
            session.extend(tool_turn(number))
            epoch, pending = session.epoch, session.pending
            try:
                session.pack()
            except error:
                break
        else:
            pytest.fail(f"{error.__name__} was not raised")
        assert (session.epoch, session.pending) == (epoch, pending), "the failed pack changed nothing"
        assert number > 5


def test_async_hooks_in_apack_and_sync_hooks_in_threads() -> None:
    class Slow:
        def __init__(self) -> None:
            self.running = 0
            self.most = 0

        async def __call__(self, segments: list[cs.Segment], max_tokens: int) -> str:
            self.running += 1
            self.most = max(self.most, self.running)
            await asyncio.sleep(0.001)
            self.running -= 1
            return f"{len(segments)} inputs"

    async def loop(session: cs.Session) -> list[cs.PackedMessages]:
        packs = []
        for number in range(30):
            session.extend(tool_turn(number))
            packs.append(await session.apack())
        return packs

    hook = Slow()
    session = cs.Session(1500, summarizer=hook)
    session.extend(task())
    packs = asyncio.run(loop(session))
    assert any(summaries_in(packed) for packed in packs)
    assert hook.most == 1
    # A sync session over an async hook runs it in its own event loop; apack runs a sync hook in a thread.
    plain = cs.Session(1500, summarizer=Slow())
    plain.extend(task())
    assert any(summaries_in(packed) for packed in run_session(plain, 30))
    threaded = cs.Session(1500, summarizer=Summariser())
    threaded.extend(task())
    assert any(summaries_in(packed) for packed in asyncio.run(loop(threaded)))


def test_explain_says_what_was_summarised_into_what_and_by_which_hook() -> None:
    session = cs.Session(1500, summarizer=Summariser(), store=MemoryStore())
    session.extend(task())
    packed = next(p for p in run_session(session, 30) if summaries_in(p))
    text = packed.explain()
    assert "summarised" in text
    assert "Summariser" in text
    message = next(m for m, i in zip(packed.messages, packed.indices, strict=True) if i is None)
    assert message["role"] == "user"
    assert message["content"].startswith(SUMMARY_HEADER)


# --- the stateful test: random conversations, a summary at each epoch -------------------------------------


class SummarisingSessionMachine(SessionMachine):
    """The session machine with a summariser: every invariant, plus the lineage rule and the hook's calls."""

    def new_session(self) -> cs.Session:
        self.hook = Summariser()
        store = MemoryStore()
        return cs.Session(self.budget, policy=self.policy, tools=self.tools, summarizer=self.hook, store=store)

    def checked(self, packed: cs.PackedMessages) -> None:
        check_lineage(self.conversation, packed)
        assert packed.cache is not None
        calls, sent = len(self.hook.calls), len(packed.messages)
        if packed.cache.first_change is None and calls != getattr(self, "calls", 0):
            # The prompt only grew: the hook ran for new messages only, their summary appended.
            new = [i for i, index in enumerate(packed.indices) if index is None and i >= getattr(self, "sent", 0)]
            assert new, "the hook ran within an epoch"
        self.calls, self.sent = calls, sent
        if summaries_in(packed):
            event("pack: a summary")


_profile = settings()
TestSummarisingSessionMachine = SummarisingSessionMachine.TestCase
TestSummarisingSessionMachine.settings = settings(
    _profile, max_examples=max(10, _profile.max_examples // 3), stateful_step_count=40
)
