"""Summarisation hooks: planned in Rust, run in Python, memoised, and safe when they fail.

Every summariser here is a deterministic fake; nothing touches the network.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ctxsched as cs
from ctxsched.stores import MemoryStore, SQLiteStore
from tests.reference import reference

ENCODE = reference("o200k_base").encode_ordinary


def history(turns: int, words: int = 300) -> list[cs.Segment]:
    segments = [cs.Segment("You are a careful agent.", kind="system", pin="head")]
    segments += [cs.Segment(f"turn {i}: " + "word " * words, kind="history") for i in range(turns)]
    return [*segments, cs.Segment("Do the task now.", kind="instruction", pin="tail")]


class Counting:
    """A summariser that says which turns it summarised, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, segments: list[cs.Segment], max_tokens: int) -> str:
        with self.lock:
            self.calls.append((len(segments), max_tokens))
        return "Earlier: " + ", ".join(segment.text.split(":")[0] for segment in segments)


def scheduler(hook: Any, **summaries: Any) -> cs.Scheduler:
    policy = cs.Policy(summarize=["history"], summaries=cs.Summaries(**summaries))
    return cs.Scheduler(policy=policy, summarizer=hook)


def summaries_of(result: cs.PackResult) -> list[cs.PlacedSegment]:
    return [segment for segment in result.segments if segment.kind == "summary"]


def test_an_evicted_run_becomes_one_summary_in_its_place_within_the_budget() -> None:
    hook = Counting()
    segments = history(20)
    result = scheduler(hook).pack(segments, 2000)
    assert result.tokens <= 2000
    assert len(ENCODE("\n\n".join(segment.text for segment in result.segments))) == result.tokens
    (summary,) = summaries_of(result)
    assert len(hook.calls) == 1
    members, limit = hook.calls[0]
    assert summary.text.startswith("Earlier: turn 0, turn 1")
    # In the place of the run's first member: after the head pin, before the turns kept.
    ids = [segment.id for segment in result.segments]
    assert ids.index(summary.id) == 1
    assert summary.id == "summary-history-1"
    evicted = {segment.id: segment for segment in result.evicted}
    summarised = [segment for segment in evicted.values() if segment.rule == "summarised"]
    assert len(summarised) == members
    assert all("summarised into summary-history-1" in segment.reason for segment in summarised)
    # Conservation: every input is placed or evicted, once; the summary is the one extra.
    placed = [segment.id for segment in result.segments if segment.kind != "summary"]
    assert sorted(placed + list(evicted)) == sorted(f"{s.kind}-{i}" for i, s in enumerate(segments))
    # Its lineage is in its metadata.
    source = summary.segment.metadata
    assert source["summarises"] == [segment.id for segment in summarised]
    assert source["depth"] == 1
    assert source["hook"].endswith("Counting")
    assert limit == source["max_tokens"]
    assert "summarised into summary-history-1" in result.explain()


def test_the_hook_runs_once_per_distinct_run_across_packs() -> None:
    hook = Counting()
    sched = scheduler(hook)
    for _ in range(3):
        sched.pack(history(20), 2000)
    assert len(hook.calls) == 1
    sched.pack(history(24), 2000)  # more history: a different run, a new summary
    assert len(hook.calls) == 2


def test_each_segment_its_own_summary_when_runs_are_not_merged() -> None:
    hook = Counting()
    result = scheduler(hook, merge=False, budget=0.5).pack(history(12), 2000)
    assert all(count == 1 for count, _ in hook.calls)
    assert len(summaries_of(result)) == len(hook.calls) > 1
    assert result.tokens <= 2000


def test_nothing_to_summarise_packs_as_without_a_hook() -> None:
    hook = Counting()
    segments = history(3)
    with_hook = scheduler(hook).pack(segments, 5000)
    without = cs.Scheduler().pack(segments, 5000)
    assert not hook.calls
    assert [s.text for s in with_hook.segments] == [s.text for s in without.segments]


def _raises(segments: list[cs.Segment], max_tokens: int) -> str:
    raise ValueError("model unavailable")


def _slow(segments: list[cs.Segment], max_tokens: int) -> str:
    time.sleep(2)
    return "late"


FAULTS: dict[str, tuple[Any, str]] = {
    "raises": (_raises, "raised ValueError: model unavailable"),
    "not a str": (lambda segments, max_tokens: 42, "returned int, not str"),
    "empty": (lambda segments, max_tokens: "  ", "returned an empty summary"),
    "over its target": (lambda segments, max_tokens: "word " * (max_tokens * 3), "above its target"),
    "times out": (_slow, "timed out after 0.2 s"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_failing_hook_falls_back_and_is_recorded(fault: str, mode: str) -> None:
    hook, problem = FAULTS[fault]
    for fallback in ("truncate", "evict"):
        sched = scheduler(hook, fallback=fallback, timeout=0.2)
        segments = history(20)
        result = sched.pack(segments, 2000) if mode == "sync" else asyncio.run(sched.apack(segments, 2000))
        assert result.tokens <= 2000
        recorded = [d.fallback for d in result.decisions if d.fallback]
        if fallback == "truncate":
            (summary,) = summaries_of(result)
            assert summary.text.startswith("turn 0:")  # a cut of the run's own text
            assert "[…" in summary.text
            assert recorded
            assert all(problem in text and "a cut of the run's own text" in text for text in recorded)
        else:
            assert not summaries_of(result)
            assert not any(segment.rule == "summarised" for segment in result.evicted)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_strict_raises_instead(mode: str) -> None:
    sched = scheduler(_raises, strict=True)

    def pack() -> cs.PackResult:
        return sched.pack(history(20), 2000) if mode == "sync" else asyncio.run(sched.apack(history(20), 2000))

    with pytest.raises(cs.SummaryError, match="raised ValueError: model unavailable"):
        pack()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_stop_the_pack(stop: type[BaseException]) -> None:
    def hook(segments: list[cs.Segment], max_tokens: int) -> str:
        raise stop()

    with pytest.raises(stop):
        scheduler(hook, timeout=None).pack(history(20), 2000)


def test_async_hooks_run_concurrently_up_to_the_limit() -> None:
    running = 0
    most = 0

    async def hook(segments: list[cs.Segment], max_tokens: int) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return f"summary of {segments[0].text[:7]}"

    sched = scheduler(hook, merge=False, budget=0.6, concurrency=3)
    start = time.perf_counter()
    result = asyncio.run(sched.apack(history(14), 2000))
    elapsed = time.perf_counter() - start
    count = len(summaries_of(result))
    assert count > 3
    assert most == 3
    assert elapsed < 0.05 * count  # not one after another


def test_an_async_hook_in_sync_pack_runs_outside_a_loop_and_is_refused_inside_one() -> None:
    async def hook(segments: list[cs.Segment], max_tokens: int) -> str:
        return "summary"

    sched = scheduler(hook)
    assert summaries_of(sched.pack(history(20), 2000))

    async def inside() -> None:
        sched.pack(history(21), 2000)

    with pytest.raises(TypeError, match="apack"):
        asyncio.run(inside())


def test_the_sqlite_cache_is_shared_by_two_schedulers_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "summaries.db"
    first, second = Counting(), Counting()
    scheduler_one = cs.Scheduler(
        policy=cs.Policy(summarize=["history"]), summarizer=first, summary_cache=SQLiteStore(path)
    )
    scheduler_two = cs.Scheduler(
        policy=cs.Policy(summarize=["history"]), summarizer=second, summary_cache=SQLiteStore(path)
    )
    # Two instances of one hook class have one identity: the second finds the first's summary.
    scheduler_one.pack(history(20), 2000)
    scheduler_two.pack(history(20), 2000)
    assert len(first.calls) == 1
    assert not second.calls
    script = (
        "import ctxsched as cs, sys\n"
        "from ctxsched.stores import SQLiteStore\n"
        "from tests.test_summaries import Counting, history\n"
        "hook = Counting()\n"
        f"sched = cs.Scheduler(policy=cs.Policy(summarize=['history']), summarizer=hook, "
        f"summary_cache=SQLiteStore({str(path)!r}))\n"
        "result = sched.pack(history(20), 2000)\n"
        "print(len(hook.calls), [s.text for s in result.segments if s.kind == 'summary'][0])\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True)
    calls, text = done.stdout.strip().split(" ", 1)
    assert calls == "0"
    assert text.startswith("Earlier: turn 0")


def test_a_store_that_cannot_be_opened_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(cs.StoreError, match="cannot open"):
        SQLiteStore(tmp_path / "missing" / "folder" / "summaries.db")


def test_memory_store_is_a_bounded_lru() -> None:
    store = MemoryStore(max_entries=2)
    store.put("a", "1")
    store.put("b", "2")
    assert store.get("a") == "1"
    store.put("c", "3")
    assert store.get("b") is None
    assert (store.get("a"), store.get("c")) == ("1", "3")


def test_summaries_need_a_builtin_encoding() -> None:
    with pytest.raises(cs.PolicyError, match="built-in encoding"):
        cs.Scheduler(tokenizer=lambda text: len(text.split()), summarizer=Counting())


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=25),
    budget=st.integers(200, 4000),
    share=st.sampled_from([0.05, 0.2, 0.5, 300]),
    merge=st.booleans(),
    summary_words=st.integers(1, 200),
)
def test_budget_and_conservation_hold_with_summaries(
    sizes: list[int], budget: int, share: float, merge: bool, summary_words: int
) -> None:
    def hook(segments: list[cs.Segment], max_tokens: int) -> str:
        return "gist " * min(summary_words, max_tokens)

    segments = [cs.Segment("System.", kind="system", pin="head")]
    segments += [cs.Segment(f"t{i} " + "word " * size, kind="history") for i, size in enumerate(sizes)]
    sched = scheduler(hook, budget=share, merge=merge)
    result = sched.pack(segments, budget)
    assert result.tokens <= budget
    assert len(ENCODE("\n\n".join(segment.text for segment in result.segments))) == result.tokens
    placed = [segment.id for segment in result.segments if segment.kind != "summary"]
    evicted = [segment.id for segment in result.evicted]
    assert sorted(placed + evicted) == sorted(f"{s.kind}-{i}" for i, s in enumerate(segments))
    reasons = {segment.id: segment.reason for segment in result.evicted}
    for summary in summaries_of(result):
        sources = summary.segment.metadata["summarises"]
        assert all(f"summarised into {summary.id}" in reasons[source] for source in sources)

    # Each summary sits in the place of its first source: the prompt stays in natural order.
    def position(segment: cs.PlacedSegment) -> int:
        named = segment.segment.metadata["summarises"][0] if segment.kind == "summary" else segment.id
        return int(named.split("-")[1])

    order = [position(segment) for segment in result.segments]
    assert order == sorted(order)
