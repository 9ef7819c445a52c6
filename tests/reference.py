"""tiktoken itself, built offline from the rank files that the core's own vocabulary rebuilds.

Shared by the tests and the benchmarks; nothing here reads ../shared or the network.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken_ext.openai_public

import ctxsched

#: The sha256 of each encoding's official rank file, as tiktoken checks it on download.
OFFICIAL_RANK_FILE_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

ENCODINGS = ctxsched.encodings()

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def rank_file(encoding: str) -> bytes:
    """The rank file rebuilt from the core's vocabulary: one `base64(token) rank` line per token."""
    tokens = ctxsched.Tokenizer(encoding).token_byte_values()
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in enumerate(tokens))


@cache
def reference(encoding: str) -> tiktoken.Encoding:
    """tiktoken itself, with its own pattern and special tokens, fed the rank file rebuilt from our core.

    The rank file is checked against the official hash first, so this is the real tiktoken encoding,
    built without a download and without ../shared.
    """
    data = rank_file(encoding)
    assert hashlib.sha256(data).hexdigest() == OFFICIAL_RANK_FILE_SHA256[encoding]
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines())}
    constructor: Callable[[], dict[str, object]] = getattr(tiktoken_ext.openai_public, encoding)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiktoken_ext.openai_public, "load_tiktoken_bpe", lambda *_args, **_kwargs: ranks)
        spec = constructor()
    return tiktoken.Encoding(**spec)  # type: ignore[arg-type]


def reference_tools(tools: list[dict[str, object]], encoding: str = "o200k_base") -> int:
    """OpenAI's cookbook recipe for function definitions, with tiktoken and the gpt-4o constants (func_init 7,
    prop_init 3, prop_key 3, enum_init -3, enum_item 3, func_end 12), written out here for the tests."""
    if not tools:
        return 0

    def n(text: str) -> int:
        return len(reference(encoding).encode_ordinary(text))

    total = 0
    for tool in tools:
        function: dict[str, Any] = tool.get("function", tool)  # type: ignore[assignment]
        description = function.get("description", "")
        total += 7 + n(f"{function['name']}:{description.removesuffix('.')}")
        properties = function.get("parameters", {}).get("properties", {})
        if properties:
            total += 3
            for key, prop in properties.items():
                total += 3
                if "enum" in prop:
                    total += -3 + sum(3 + n(item) for item in prop["enum"])
                total += n(f"{key}:{prop.get('type', '')}:{prop.get('description', '').removesuffix('.')}")
    return total + 12
