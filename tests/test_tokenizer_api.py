"""The Python surface of the tokenizer: types, errors, threads, pickling."""

import pickle
import threading

import pytest

import ctxsched
from ctxsched import ContextSchedError, InvalidTokenError, UnknownEncodingError


def test_default_encoding_is_o200k_base() -> None:
    assert ctxsched.Tokenizer().name == "o200k_base"
    assert ctxsched.count_tokens("hello world") == ctxsched.Tokenizer("o200k_base").count("hello world")


def test_the_two_encodings_differ_where_they_should() -> None:
    text = "音声認識と機械翻訳"
    assert ctxsched.count_tokens(text, "o200k_base") < ctxsched.count_tokens(text, "cl100k_base")


@pytest.mark.parametrize("call", [lambda: ctxsched.Tokenizer("gpt2"), lambda: ctxsched.count_tokens("x", "p50k")])
def test_unknown_encoding_is_a_value_error_naming_the_known_ones(call: object) -> None:
    with pytest.raises(UnknownEncodingError) as caught:
        call()  # type: ignore[operator]
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ContextSchedError)
    assert "o200k_base" in str(caught.value)
    assert "cl100k_base" in str(caught.value)


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["list"]])
def test_non_str_text_is_a_type_error(bad: object) -> None:
    tokenizer = ctxsched.Tokenizer()
    for method in (tokenizer.count, tokenizer.encode, ctxsched.count_tokens):
        with pytest.raises(TypeError, match="text must be str"):
            method(bad)  # type: ignore[operator]


def test_encoding_name_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="encoding must be str"):
        ctxsched.Tokenizer(5)  # type: ignore[arg-type]


def test_count_many_rejects_a_bare_str_and_names_the_bad_item() -> None:
    tokenizer = ctxsched.Tokenizer()
    with pytest.raises(TypeError, match="not a single str"):
        tokenizer.count_many("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        tokenizer.count_many(["ok", 2])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="iterable of str"):
        tokenizer.count_many(7)  # type: ignore[arg-type]
    assert tokenizer.count_many(text for text in ["a b", ""]) == [2, 0]


def test_decode_rejects_ids_outside_the_vocabulary() -> None:
    tokenizer = ctxsched.Tokenizer()
    with pytest.raises(InvalidTokenError, match="token id 199998 is not in o200k_base"):
        tokenizer.decode([1, 199_998])
    with pytest.raises(OverflowError):
        tokenizer.decode([-1])


def test_decode_of_a_split_character_is_lossy_like_tiktoken() -> None:
    tokenizer = ctxsched.Tokenizer("cl100k_base")
    tokens = tokenizer.encode("🌍")
    assert len(tokens) > 1
    assert tokenizer.decode(tokens[:1]) == "\ufffd"
    assert tokenizer.decode_bytes(tokens[:1]) == "🌍".encode()[: len(tokenizer.decode_bytes(tokens[:1]))]


def test_tokenizers_are_values() -> None:
    tokenizer = ctxsched.Tokenizer("cl100k_base")
    assert pickle.loads(pickle.dumps(tokenizer)) == tokenizer
    assert {tokenizer, ctxsched.Tokenizer("cl100k_base"), ctxsched.Tokenizer()} == {tokenizer, ctxsched.Tokenizer()}
    assert repr(tokenizer) == "Tokenizer('cl100k_base')" or repr(tokenizer) == 'Tokenizer("cl100k_base")'
    with pytest.raises(AttributeError):
        tokenizer.name = "other"  # type: ignore[misc]


def test_counting_from_many_threads_gives_the_same_answers() -> None:
    tokenizer = ctxsched.Tokenizer()
    texts = [f"thread text {i} " * (2000 + i) for i in range(8)]
    expected = [tokenizer.count(text) for text in texts]
    results: list[list[int]] = []

    def work() -> None:
        results.append(tokenizer.count_many(texts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_exceptions_share_one_root() -> None:
    for error in (UnknownEncodingError, InvalidTokenError, ctxsched.TokenizerError):
        assert issubclass(error, ContextSchedError)
        assert issubclass(error, ValueError)
    assert issubclass(ctxsched.PanicException, BaseException)


def test_counting_alone_does_not_import_the_policy_layer() -> None:
    # Cold start matters for CLIs and serverless agents: pydantic (~0.3 s) loads only with the scheduler.
    import subprocess
    import sys

    code = "import sys, ctxsched; ctxsched.count_tokens('x'); print('pydantic' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    code = "import sys, ctxsched; ctxsched.Scheduler; print('pydantic' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
