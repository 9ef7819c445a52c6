"""Counting speed against tiktoken in the same run: real transcripts, prose/code/JSON, hostile shapes, cold start.

Run with ``make bench``; ``benches/summarize.py`` turns the JSON into the README's tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import ctxsched
from benches.conftest import ADVERSARIAL_SHAPES, MB, adversarial, corpus, transcript_texts
from tests.reference import rank_file, reference

ENCODING = "o200k_base"
IMPLEMENTATIONS = ["ctxsched", "tiktoken"]


def _counter(implementation: str) -> Callable[[str], int]:
    if implementation == "ctxsched":
        return ctxsched.Tokenizer(ENCODING).count
    encode = reference(ENCODING).encode_ordinary
    return lambda text: len(encode(text))


def _run(benchmark: BenchmarkFixture, group: str, size: int, function: Callable[[], object], rounds: int) -> None:
    benchmark.group = group
    benchmark.extra_info["bytes"] = size
    benchmark.pedantic(function, rounds=rounds, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_transcripts_one_call_per_message(benchmark: BenchmarkFixture, implementation: str) -> None:
    source, texts = transcript_texts()
    count = _counter(implementation)
    size = sum(len(text.encode()) for text in texts)
    _run(benchmark, f"count: {source}, one call per message", size, lambda: [count(t) for t in texts], rounds=3)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_transcripts_batch(benchmark: BenchmarkFixture, implementation: str) -> None:
    source, texts = transcript_texts()
    if implementation == "ctxsched":
        batch: Callable[[], object] = lambda: ctxsched.Tokenizer(ENCODING).count_many(texts)  # noqa: E731
    else:
        batch = lambda: reference(ENCODING).encode_ordinary_batch(texts)  # noqa: E731
    size = sum(len(text.encode()) for text in texts)
    _run(benchmark, f"count: {source}, batch", size, batch, rounds=3)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", ["prose", "code", "json"])
def test_corpus(benchmark: BenchmarkFixture, implementation: str, kind: str) -> None:
    text = corpus(kind)
    count = _counter(implementation)
    _run(benchmark, f"count: {kind} 1 MB", len(text.encode()), lambda: count(text), rounds=5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", [MB, 4 * MB], ids=["1MB", "4MB"])
@pytest.mark.parametrize("shape", ADVERSARIAL_SHAPES)
def test_adversarial(benchmark: BenchmarkFixture, implementation: str, size: int, shape: str) -> None:
    text = adversarial(shape, size)
    count = _counter(implementation)
    if implementation == "tiktoken":
        try:
            count(text)
        except BaseException as error:  # tiktoken panics (PanicException is a BaseException) on some shapes
            pytest.skip(f"tiktoken fails: {str(error)[:80]}")
    _run(benchmark, f"adversarial: {shape}", len(text.encode()), lambda: count(text), rounds=1 if size > MB else 3)


@pytest.mark.parametrize("implementation", ["python", *IMPLEMENTATIONS])
@pytest.mark.parametrize("encoding", ctxsched.encodings())
def test_cold_start(benchmark: BenchmarkFixture, implementation: str, encoding: str, tmp_path: Path) -> None:
    """A fresh interpreter: import, build the encoding, count one string. ``python`` is the bare interpreter."""
    environment = dict(os.environ)
    code = {
        "python": "pass",
        "ctxsched": f"import ctxsched; ctxsched.count_tokens('hello', {encoding!r})",
        "tiktoken": f"import tiktoken; len(tiktoken.get_encoding({encoding!r}).encode_ordinary('hello'))",
    }[implementation]
    if implementation == "tiktoken":
        # tiktoken's own offline cache: the rank file under the sha1 of its download URL.
        cache_name = {"o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790"}.get(
            encoding, "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
        )
        (tmp_path / cache_name).write_bytes(rank_file(encoding))
        environment["TIKTOKEN_CACHE_DIR"] = str(tmp_path)
    command = [sys.executable, "-c", code]
    subprocess.run(command, env=environment, check=True)
    benchmark.group = f"cold start: {encoding}"
    benchmark.pedantic(lambda: subprocess.run(command, env=environment, check=True), rounds=5, iterations=1)
