"""Truncating logs, JSON and prose to 2,000 tokens, against tiktoken's encode + slice + decode."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import ctxsched
from benches.conftest import corpus
from tests.corpus import LOG
from tests.reference import reference

ENCODING = "o200k_base"
TARGET = 2_000
SIZES = {"100KB": 100_000, "1MB": 1_000_000, "10MB": 10_000_000}


def _text(kind: str, size: int) -> str:
    if kind == "log":
        return (LOG * (size // len(LOG) + 1))[:size]
    return corpus(kind, size)


@pytest.mark.parametrize("implementation", ["ctxsched", "tiktoken"])
@pytest.mark.parametrize("keep", ["head", "tail"])
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", ["log", "json", "prose"])
def test_truncate(benchmark: BenchmarkFixture, implementation: str, keep: str, size: str, kind: str) -> None:
    text = _text(kind, SIZES[size])
    if implementation == "ctxsched":
        tokenizer = ctxsched.Tokenizer(ENCODING)
        function: Callable[[], str] = lambda: tokenizer.truncate(text, TARGET, keep)  # noqa: E731
    else:
        encoding = reference(ENCODING)

        def function() -> str:
            tokens = encoding.encode_ordinary(text)
            return encoding.decode(tokens[:TARGET] if keep == "head" else tokens[-TARGET:])

    result = function()
    assert ctxsched.count_tokens(result) <= TARGET + 1  # tiktoken's slice can re-count one over
    benchmark.group = f"truncate {keep}: {kind} {size} to {TARGET} tokens"
    benchmark.extra_info["bytes"] = len(text.encode())
    benchmark.pedantic(function, rounds=3 if SIZES[size] >= 1_000_000 else 10, iterations=1, warmup_rounds=0)
