"""Cutting logs, JSON and prose to 2,000 tokens, against tiktoken's encode + slice + decode.

The reference keeps the first 2,000 tokens (for `head`) or the first and last 1,000 (for the strategies
that keep both ends), as a caller of tiktoken would; ctxsched's result is maximal, re-counted, and for
`auto` on JSON a valid smaller document.
"""

from __future__ import annotations

import json
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


def _json_document(size: int) -> str:
    """A pretty-printed API response of about ``size`` bytes: records with ids, paths, scores and text."""
    prose = corpus("prose", 4_000)
    records, used, index = [], 0, 0
    while used < size:
        record = {
            "id": index,
            "path": f"src/module_{index % 97}/file_{index}.py",
            "score": round((index * 7919 % 1000) / 1000, 3),
            "ok": index % 5 != 0,
            "tags": ["alpha", "beta", str(index % 13)][: index % 4],
            "snippet": prose[(index * 37) % 3000 : (index * 37) % 3000 + 40 + index % 160],
        }
        records.append(record)
        used += len(json.dumps(record, indent=2)) + 6
        index += 1
    return json.dumps({"total": len(records), "results": records, "next": None}, indent=2)


def _text(kind: str, size: int) -> str:
    if kind == "log":
        return (LOG * (size // len(LOG) + 1))[:size]
    if kind == "json":
        return _json_document(size)
    return corpus(kind, size)


@pytest.mark.parametrize("implementation", ["ctxsched", "tiktoken"])
@pytest.mark.parametrize("strategy", ["head", "tail", "middle", "auto"])
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", ["log", "json", "prose"])
def test_truncate(benchmark: BenchmarkFixture, implementation: str, strategy: str, size: str, kind: str) -> None:
    text = _text(kind, SIZES[size])
    if implementation == "ctxsched":
        tokenizer = ctxsched.Tokenizer(ENCODING)
        tokenizer.count(text[:10])  # the vocabulary is built once per process, not per call
        function: Callable[[], str] = lambda: tokenizer.truncate(text, TARGET, strategy)  # type: ignore[arg-type]  # noqa: E731
    else:
        encoding = reference(ENCODING)

        def function() -> str:
            tokens = encoding.encode_ordinary(text)
            if strategy == "head":
                return encoding.decode(tokens[:TARGET])
            if strategy == "tail":
                return encoding.decode(tokens[-TARGET:])
            return encoding.decode(tokens[: TARGET // 2]) + encoding.decode(tokens[-TARGET // 2 :])

    result = function()
    assert ctxsched.count_tokens(result) <= TARGET + 2  # tiktoken's slices can re-count a little over
    if implementation == "ctxsched" and kind == "json" and strategy == "auto":
        json.loads(result)
    benchmark.group = f"truncate {strategy}: {kind} {size} to {TARGET} tokens"
    benchmark.extra_info["bytes"] = len(text.encode())
    benchmark.pedantic(function, rounds=3 if SIZES[size] >= 1_000_000 else 10, iterations=1, warmup_rounds=0)
