"""Other tokenizers behind the one ``TokenCounter`` interface."""

import pytest
import tiktoken
from tokenizers import Tokenizer as HFTokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

import ctxsched
from ctxsched.counting import CallableCounter, HuggingFaceCounter, TiktokenCounter, as_token_counter
from tests.reference import reference


def _word_level() -> HFTokenizer:
    # A real HuggingFace tokenizer built in memory: nothing downloaded.
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "!": 3}
    tokenizer = HFTokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


def test_encoding_names_give_the_built_in_tokenizer() -> None:
    counter = as_token_counter("cl100k_base")
    assert isinstance(counter, ctxsched.Tokenizer)
    assert counter.name == "cl100k_base"
    built_in = ctxsched.Tokenizer()
    assert as_token_counter(built_in) is built_in


def test_a_tiktoken_encoding_counts_like_encode_ordinary() -> None:
    encoding = reference("o200k_base")
    assert isinstance(encoding, tiktoken.Encoding)
    counter = as_token_counter(encoding)
    assert isinstance(counter, TiktokenCounter)
    texts = ["hello world", "<|endoftext|> is text here", ""]
    assert counter.count_many(texts) == [len(encoding.encode_ordinary(text)) for text in texts]
    assert counter.count(texts[1]) == ctxsched.count_tokens(texts[1])


def test_a_huggingface_tokenizer_counts_without_special_tokens() -> None:
    counter = as_token_counter(_word_level())
    assert isinstance(counter, HuggingFaceCounter)
    assert counter.count("hello world !") == 3
    assert counter.count_many(["hello", "unknown words here", ""]) == [1, 3, 0]


def test_a_callable_is_a_counter_and_its_answers_are_checked() -> None:
    counter = as_token_counter(lambda text: len(text.split()))
    assert isinstance(counter, CallableCounter)
    assert counter.count_many(["a b c", ""]) == [3, 0]
    with pytest.raises(ctxsched.TokenizerError, match="returned str"):
        as_token_counter(lambda text: "3").count("x")  # type: ignore[arg-type,return-value]
    with pytest.raises(ctxsched.TokenizerError, match="counts are >= 0"):
        as_token_counter(lambda text: -1).count("x")
    with pytest.raises(ctxsched.TokenizerError, match="returned bool"):
        as_token_counter(lambda text: True).count_many(["x"])


def test_objects_with_count_and_count_many_are_used_as_they_are() -> None:
    class Custom:
        name = "custom"

        def count(self, text: str) -> int:
            return len(text)

        def count_many(self, texts: list[str]) -> list[int]:
            return [len(text) for text in texts]

    custom = Custom()
    assert as_token_counter(custom) is custom


@pytest.mark.parametrize("bad", [3, None, b"o200k_base"])
def test_anything_else_is_a_type_error_listing_what_is_accepted(bad: object) -> None:
    with pytest.raises(TypeError, match=r"tiktoken\.Encoding"):
        as_token_counter(bad)


def test_unknown_names_are_unknown_encodings() -> None:
    with pytest.raises(ctxsched.UnknownEncodingError):
        as_token_counter("gpt-4o")


def test_adapters_reject_non_str_input() -> None:
    for counter in (as_token_counter(reference("cl100k_base")), as_token_counter(_word_level()), as_token_counter(len)):
        with pytest.raises(TypeError, match="must be str"):
            counter.count(5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not a single str"):
            counter.count_many("abc")
