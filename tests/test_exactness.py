"""Counts and ids are tiktoken's exactly (tiktoken rebuilt offline from our vocabulary, see conftest)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched
from tests.corpus import CORPUS
from tests.reference import ENCODINGS, reference
from tests.strategies import any_text


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=any_text)
def test_ids_and_counts_match_tiktoken_on_generated_text(encoding: str, text: str) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    expected = reference(encoding).encode_ordinary(text)
    assert tokenizer.encode(text) == expected
    assert tokenizer.count(text) == len(expected)
    assert ctxsched.count_tokens(text, encoding) == len(expected)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_ids_and_counts_match_tiktoken_on_the_corpus(encoding: str, name: str) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    text = CORPUS[name]
    for sample in (text, text * 7, text[: len(text) // 3]):
        expected = reference(encoding).encode_ordinary(sample)
        assert tokenizer.encode(sample) == expected
        assert tokenizer.count(sample) == len(expected)
        assert tokenizer.decode(expected) == sample


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(texts=st.lists(any_text, max_size=20))
def test_count_many_is_count_of_each(encoding: str, texts: list[str]) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    assert tokenizer.count_many(texts) == [len(reference(encoding).encode_ordinary(text)) for text in texts]


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=any_text, limit=st.integers(min_value=0, max_value=80))
def test_count_up_to_and_fits_agree_with_the_exact_count(encoding: str, text: str, limit: int) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    exact = len(reference(encoding).encode_ordinary(text))
    assert tokenizer.count_up_to(text, limit) == (exact if exact <= limit else None)
    assert tokenizer.fits(text, limit) == (exact <= limit)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=any_text)
def test_decode_inverts_encode(encoding: str, text: str) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    tokens = tokenizer.encode(text)
    assert tokenizer.decode(tokens) == text
    assert tokenizer.decode_bytes(tokens) == text.encode()


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=st.text(alphabet=st.characters(codec=None, categories=["Cs", "Ll", "Zs", "So"]), max_size=50))
def test_lone_surrogates_are_replaced_as_tiktoken_replaces_them(encoding: str, text: str) -> None:
    # tiktoken's encode_ordinary repairs lone surrogates through UTF-16 with surrogatepass; we do the same.
    expected = reference(encoding).encode_ordinary(text)
    assert ctxsched.Tokenizer(encoding).encode(text) == expected
    assert ctxsched.count_tokens(text, encoding) == len(expected)


def test_a_surrogate_pair_spelled_as_two_code_points_counts_as_the_character() -> None:
    assert ctxsched.count_tokens("\ud83c\udf0d") == ctxsched.count_tokens("🌍")
    assert ctxsched.Tokenizer().decode(ctxsched.Tokenizer().encode("a\ud800b")) == "a\ufffdb"
