"""The built-in vocabularies are byte-for-byte OpenAI's published ones."""

import hashlib

import pytest

import ctxsched
from tests.reference import ENCODINGS, OFFICIAL_RANK_FILE_SHA256, rank_file, reference


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_rank_file_rebuilt_from_the_core_has_the_official_hash(encoding: str) -> None:
    assert hashlib.sha256(rank_file(encoding)).hexdigest() == OFFICIAL_RANK_FILE_SHA256[encoding]


def test_both_official_encodings_are_built_in() -> None:
    assert ctxsched.encodings() == ["o200k_base", "cl100k_base"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_vocab_size_and_special_tokens_match_tiktoken(encoding: str) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    ref = reference(encoding)
    assert tokenizer.vocab_size == ref.n_vocab
    for text, token in ref._special_tokens.items():
        assert tokenizer.decode([token]) == text
