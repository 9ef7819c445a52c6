"""Packing speed: ctxsched from 10 to 100k segments, and against LangChain and priompt on the same history.

The peers are optional (``pip install '.[bench]'``); their rows are skipped when they are not installed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import ctxsched as cs
from benches.conftest import transcript_texts
from tests.reference import rank_file, reference

BUDGET = 16_000
SIZES = [10, 100, 1_000, 10_000, 100_000]


def _history(count: int) -> list[str]:
    _, texts = transcript_texts()
    texts = [text for text in texts if text]
    return list(itertools.islice(itertools.cycle(texts), count))


def _segments(texts: list[str]) -> list[cs.Segment]:
    # Unique ids and texts (the memo keys by content, and a real history rarely repeats itself).
    return [cs.Segment(f"{i}: {text}", id=f"m{i}", kind="history") for i, text in enumerate(texts)]


@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("counts", ["cached", "uncached"])
def test_pack(benchmark: BenchmarkFixture, count: int, counts: str) -> None:
    segments = _segments(_history(count))
    policy = cs.Policy()
    if counts == "cached":
        scheduler = cs.Scheduler(policy=policy)
        scheduler.pack(segments, BUDGET)
        function: Callable[[], object] = lambda: scheduler.pack(segments, BUDGET)  # noqa: E731
    else:
        function = lambda: cs.Scheduler(policy=policy).pack(segments, BUDGET)  # noqa: E731
    benchmark.group = f"pack: {counts} counts"
    benchmark.extra_info["segments"] = count
    rounds = 3 if count >= 10_000 else 20
    benchmark.pedantic(function, rounds=rounds, iterations=1, warmup_rounds=1)


def _provenance(segments: list[cs.Segment]) -> list[cs.Segment]:
    """The same history as memories of a long-running agent: every fifth an untrusted tool result, each one
    observed on its own day (a third of them stale), every tenth a version of one of 50 keys."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        cs.Segment(
            segment.text,
            id=segment.id,
            kind="tool_result" if number % 5 == 0 else "memory",
            trust="untrusted" if number % 5 == 0 else None,
            observed_at=start + timedelta(days=number % 300),
            key=f"fact-{number % 50}" if number % 10 == 0 else None,
            version=number,
        )
        for number, segment in enumerate(segments)
    ]


@pytest.mark.parametrize("count", [1_000, 10_000])
@pytest.mark.parametrize("provenance", ["off", "on"])
def test_pack_with_trust_and_freshness(benchmark: BenchmarkFixture, count: int, provenance: str) -> None:
    """The cost of trust and freshness on a warm pack: fences, screening, supersession, staleness, dates."""
    segments = _segments(_history(count))
    if provenance == "on":
        segments = _provenance(segments)
        policy = cs.Policy(max_age=timedelta(days=200), as_of=True)
    else:
        policy = cs.Policy(trust={"fence": "none", "notice": False})  # type: ignore[arg-type]
    scheduler = cs.Scheduler(policy=policy, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    scheduler.pack(segments, BUDGET)
    benchmark.group = f"pack: trust and freshness, {count} segments, warm"
    benchmark.extra_info["segments"] = count
    benchmark.pedantic(lambda: scheduler.pack(segments, BUDGET), rounds=5, iterations=1, warmup_rounds=1)


@pytest.fixture(scope="module")
def tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # priompt calls tiktoken.get_encoding(); give tiktoken its offline cache (the rank file under the sha1
    # of its download URL), rebuilt from our vocabulary, so nothing is downloaded.
    folder = tmp_path_factory.mktemp("tiktoken")
    (folder / "fb374d419588a4632f3f557e76b4b70aebbca790").write_bytes(rank_file("o200k_base"))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


ONE_SHOT_MESSAGES = 1_000


@pytest.mark.parametrize("implementation", ["ctxsched", "langchain", "priompt"])
def test_one_shot_history(benchmark: BenchmarkFixture, implementation: str, tiktoken_cache: Path) -> None:
    """The same 1,000-message history cut to the same budget, counted with o200k_base, from cold counts."""
    texts = _history(ONE_SHOT_MESSAGES)
    if implementation == "ctxsched":
        segments = _segments(texts)
        policy = cs.Policy()
        function: Callable[[], object] = lambda: cs.Scheduler(policy=policy).pack(segments, BUDGET)  # noqa: E731
    elif implementation == "langchain":
        messages_module = pytest.importorskip("langchain_core.messages")
        encode = reference("o200k_base").encode_ordinary
        messages = [messages_module.HumanMessage(content=f"{i}: {text}") for i, text in enumerate(texts)]

        def count(batch: list[object]) -> int:
            return sum(len(encode(message.content)) for message in batch)  # type: ignore[attr-defined]

        function = lambda: messages_module.trim_messages(  # noqa: E731
            messages, max_tokens=BUDGET, token_counter=count, strategy="last"
        )
    else:
        priompt = pytest.importorskip("priompt")
        elements = [priompt.Scope(priompt.UserMessage(f"{i}: {text}"), p=i) for i, text in enumerate(texts)]
        prompt = priompt.Scope(*elements)
        options = {"token_limit": BUDGET, "tokenizer": priompt.O200KTokenizer()}
        function = lambda: priompt.render(prompt, options)  # noqa: E731
    benchmark.group = f"one-shot: {ONE_SHOT_MESSAGES} messages into {BUDGET} tokens"
    benchmark.extra_info["segments"] = ONE_SHOT_MESSAGES
    benchmark.pedantic(function, rounds=3, iterations=1, warmup_rounds=0)
