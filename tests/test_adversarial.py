"""Hostile inputs at 1 MB: exact, no crash, no hang (tiktoken itself fails on some of them)."""

import base64
import random
import string

import pytest

import ctxsched
from tests.reference import ENCODINGS, reference

MB = 1_000_000
_rng = random.Random(20261127)

#: Shapes tiktoken can answer directly.
SHAPES = {
    "a": "a" * MB,
    "newline": "\n" * MB,
    "caret": "^" * MB,
    "underscore": "_" * MB,
    "digit": "1" * MB,
    "e_acute": "é" * (MB // 2),
    "cjk": "中" * (MB // 3),
    "emoji": "🌍" * (MB // 4),
    "crlf": "\r\n" * (MB // 2),
    "space_newline": " \n" * (MB // 2),
    "random_lowercase": "".join(_rng.choices(string.ascii_lowercase, k=MB)),
    "random_base64": base64.b64encode(_rng.randbytes(MB * 3 // 4)).decode(),
    "combining_accent": "a\u0301" * (MB // 3),
    "endoftext": "<|endoftext|>" * (MB // 13),
}

#: Whitespace runs on which tiktoken's regex overflows its stack with o200k_base. The pre-tokenizer makes
#: each run (minus a last space before a letter) one piece, so we feed tiktoken's BPE those pieces directly.
WHITESPACE_SHAPES = {
    "space": (" " * MB, [" " * MB]),
    "tab": ("\t" * MB, ["\t" * MB]),
    "tab_space": ("\t " * (MB // 2), ["\t " * (MB // 2)]),
    "whitespace_then_letter": (" " * (MB - 1) + "x", [" " * (MB - 2), " x"]),
}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_adversarial_shape_matches_tiktoken(encoding: str, shape: str) -> None:
    text = SHAPES[shape]
    expected = reference(encoding).encode_ordinary(text)
    tokenizer = ctxsched.Tokenizer(encoding)
    assert tokenizer.count(text) == len(expected)
    assert tokenizer.encode(text) == expected


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("shape", sorted(WHITESPACE_SHAPES))
def test_whitespace_runs_match_tiktoken_bpe_on_the_same_pieces(encoding: str, shape: str) -> None:
    text, pieces = WHITESPACE_SHAPES[shape]
    assert "".join(pieces) == text
    ref = reference(encoding)
    expected = [token for piece in pieces for token in ref._encode_single_piece(piece.encode())]
    assert ctxsched.Tokenizer(encoding).encode(text) == expected


def test_a_million_spaces_is_7813_tokens_in_o200k() -> None:
    # The figure tiktoken cannot produce itself (its regex overflows); 7,812 runs of 128 spaces and one of 64.
    assert ctxsched.count_tokens(" " * MB, "o200k_base") == 7_813


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("shape", ["a", "random_lowercase", "cjk", "emoji", "endoftext"])
def test_truncating_a_megabyte_keeps_a_valid_fitting_prefix_and_suffix(encoding: str, shape: str) -> None:
    text = SHAPES[shape]
    tokenizer = ctxsched.Tokenizer(encoding)
    for keep in ("head", "tail"):
        kept = tokenizer.truncate(text, 1000, keep)
        assert 0 < tokenizer.count(kept) <= 1000
        assert text.startswith(kept) if keep == "head" else text.endswith(kept)
    assert not tokenizer.fits(text, 1000)
