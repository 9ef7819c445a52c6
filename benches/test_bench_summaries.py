"""The summary step's own cost: ``Scheduler.pack`` with a summariser against the same pack without one.

The history of the shared transcripts (1,000 segments, 16,000-token budget, a quarter of the history kinds
summarised), with a deterministic fake summariser that returns at once, so that what is measured is ctxsched's
work: planning (a pack with the summary budget kept back), the hook's bookkeeping (cache keys, checks) and the
second pack. "first" packs with an empty summary cache (the hook is called); "cached" packs again (the
summary comes from the cache: what every later turn of an agent pays).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import ctxsched as cs
from benches.test_bench_pack import _history, _segments

BUDGET = 16_000
COUNT = 1_000


def fake_summary(segments: list[cs.Segment], max_tokens: int) -> str:
    gist = " | ".join(segment.text[:20] for segment in segments[:20])
    return f"{len(segments)} earlier messages: {gist}"[:max_tokens]


@pytest.mark.parametrize("mode", ["without", "first", "cached"])
def test_summary_step(benchmark: BenchmarkFixture, mode: str) -> None:
    segments = _segments(_history(COUNT))
    policy = cs.Policy(summarize=["history"])
    plain = cs.Scheduler(policy=policy)
    plain.pack(segments, BUDGET)  # counts memoised for every row alike
    calls = 0

    def hook(inputs: list[cs.Segment], max_tokens: int) -> str:
        nonlocal calls
        calls += 1
        return fake_summary(inputs, max_tokens)

    store = cs.stores.MemoryStore()
    summarising = cs.Scheduler(policy=policy, summarizer=hook, summary_cache=store)
    summarising.pack(segments, BUDGET)  # counts and cuts memoised, as in an agent loop

    def first() -> cs.PackResult:
        store.clear()  # the summary is made again: the hook is called
        return summarising.pack(segments, BUDGET)

    if mode == "without":
        function: Callable[[], cs.PackResult] = lambda: plain.pack(segments, BUDGET)  # noqa: E731
    elif mode == "first":
        function = first
    else:
        function = lambda: summarising.pack(segments, BUDGET)  # noqa: E731
    benchmark.group = f"summary step: {COUNT} history segments into {BUDGET:,}"
    result = benchmark.pedantic(function, rounds=10, iterations=1, warmup_rounds=1)
    assert result.tokens <= BUDGET
    benchmark.extra_info.update(
        mode=mode,
        summaries=sum(1 for segment in result.segments if segment.kind == "summary"),
        hook_calls=calls,
    )
