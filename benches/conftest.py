"""Corpora for the benchmarks: the real transcripts when ../shared is present, generated text otherwise."""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
from functools import cache
from pathlib import Path

from tests.corpus import CODE, JSON, LOG, PROSE, SCRIPTS

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "transcripts" / "public.jsonl.gz"
MB = 1_000_000


@cache
def transcript_texts() -> tuple[str, list[str]]:
    """Every string a chat request would carry (contents, tool names, arguments), and where they came from."""
    if not TRANSCRIPTS.exists():
        return "generated", _generated_messages()
    texts = []
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8") as lines:
        for line in lines:
            for message in json.loads(line)["messages"]:
                texts.append(message.get("content") or "")
                for call in message.get("tool_calls") or []:
                    texts += [call["function"]["name"], call["function"]["arguments"]]
    return "shared transcripts", texts


def _generated_messages() -> list[str]:
    rng = random.Random(5)
    pieces = [PROSE, CODE, JSON, LOG, *SCRIPTS.values()]
    return ["".join(rng.choices(pieces, k=rng.randint(1, 12))) for _ in range(5000)]


def corpus(kind: str, size: int = MB) -> str:
    """About ``size`` characters of one kind of text."""
    seed = {"prose": PROSE + "".join(SCRIPTS.values()), "code": CODE, "json": JSON}[kind]
    return (seed * (size // len(seed) + 1))[:size]


def adversarial(shape: str, size: int) -> str:
    """The issue's hostile shapes, about ``size`` bytes each."""
    rng = random.Random(size)
    repeated = {
        "a": "a", "space": " ", "tab": "\t", "newline": "\n", "caret": "^", "underscore": "_", "digit": "1",
        "e_acute": "é", "cjk": "中", "emoji": "🌍", "crlf": "\r\n", "space_newline": " \n", "tab_space": "\t ",
        "combining_accent": "a\u0301", "endoftext": "<|endoftext|>",
    }  # fmt: skip
    if shape in repeated:
        unit = repeated[shape]
        return unit * (size // len(unit.encode()))
    if shape == "random_lowercase":
        return "".join(rng.choices(string.ascii_lowercase, k=size))
    if shape == "random_base64":
        return base64.b64encode(rng.randbytes(size * 3 // 4)).decode()
    if shape == "whitespace_then_letter":
        return " " * (size - 1) + "x"
    raise ValueError(shape)


ADVERSARIAL_SHAPES = [
    "a", "space", "tab", "newline", "caret", "underscore", "digit", "e_acute", "cjk", "emoji", "crlf",
    "space_newline", "tab_space", "random_lowercase", "random_base64", "combining_accent", "endoftext",
    "whitespace_then_letter",
]  # fmt: skip
