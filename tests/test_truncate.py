"""Truncation: a prefix or suffix, on a token boundary, within budget, and as long as possible."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched
from tests.corpus import CORPUS
from tests.reference import ENCODINGS, reference
from tests.strategies import any_text


def _candidates(encoding: str, text: str, keep: str) -> list[str]:
    """Every prefix (head) or suffix (tail) of ``text`` that ends on one of tiktoken's token boundaries
    and is valid UTF-8, shortest first."""
    ref = reference(encoding)
    data = text.encode()
    offsets = [0]
    for token in ref.encode_ordinary(text):
        offsets.append(offsets[-1] + len(ref.decode_single_token_bytes(token)))
    cuts = [data[:end] for end in offsets] if keep == "head" else [data[start:] for start in reversed(offsets)]
    valid = []
    for cut in cuts:
        try:
            valid.append(cut.decode())
        except UnicodeDecodeError:
            continue
    return valid


def _check(encoding: str, text: str, max_tokens: int, keep: str) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    kept = tokenizer.truncate(text, max_tokens, keep)
    count = len(reference(encoding).encode_ordinary(kept))
    assert count <= max_tokens
    assert text.startswith(kept) if keep == "head" else text.endswith(kept)
    if kept == text:
        return
    candidates = _candidates(encoding, text, keep)
    assert kept in candidates, "not cut on a token boundary"
    longer = candidates[candidates.index(kept) + 1]
    assert len(reference(encoding).encode_ordinary(longer)) > max_tokens, "one more token would have fit"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("keep", ["head", "tail"])
@given(text=any_text, max_tokens=st.integers(min_value=0, max_value=60))
def test_truncation_is_a_maximal_fitting_prefix_or_suffix(encoding: str, keep: str, text: str, max_tokens: int) -> None:
    _check(encoding, text, max_tokens, keep)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("keep", ["head", "tail"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_truncation_on_the_corpus(encoding: str, keep: str, name: str) -> None:
    text = CORPUS[name] * 3
    for max_tokens in (0, 1, 5, 17, 64):
        _check(encoding, text, max_tokens, keep)


def test_text_that_fits_comes_back_as_the_same_object() -> None:
    text = "fits easily"
    assert ctxsched.Tokenizer().truncate(text, 100) is text


def test_zero_tokens_keeps_nothing() -> None:
    assert ctxsched.Tokenizer().truncate("some text", 0, "tail") == ""


def test_a_character_split_across_tokens_is_never_cut_in_half() -> None:
    tokenizer = ctxsched.Tokenizer("cl100k_base")
    text = "🌍" * 10  # several tokens per character in cl100k_base
    for max_tokens in range(1, 12):
        for keep in ("head", "tail"):
            kept = tokenizer.truncate(text, max_tokens, keep)
            assert set(kept) <= {"🌍"}
            assert tokenizer.count(kept) <= max_tokens


def test_truncation_options_are_checked() -> None:
    tokenizer = ctxsched.Tokenizer()
    with pytest.raises(ValueError, match='unknown truncation strategy "gzip"; the built-in ones are head, tail'):
        tokenizer.truncate("text", 1, "gzip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be >= 0"):
        tokenizer.truncate("text", -1)
    with pytest.raises(TypeError, match="must be int"):
        tokenizer.truncate("text", 1.5)  # type: ignore[arg-type]
    # A limit larger than any machine word is simply no limit.
    assert tokenizer.truncate("text", 10**30) == "text"


MARKER = "\n[... {n} tokens elided ...]\n"


def _split_middle(kept: str) -> tuple[str, int, str]:
    start, rest = kept.split("\n[... ", 1)
    count, end = rest.split(" tokens elided ...]\n", 1)
    return start, int(count), end


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=any_text, max_tokens=st.integers(min_value=0, max_value=60))
def test_middle_keeps_a_prefix_and_a_suffix_around_an_honest_marker(encoding: str, text: str, max_tokens: int) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    ref = reference(encoding)
    kept = tokenizer.truncate(text, max_tokens, "middle", MARKER)
    assert len(ref.encode_ordinary(kept)) <= max_tokens
    if kept == text:
        return
    if "tokens elided" not in kept:  # the marker alone did not fit: the head is kept
        assert kept == tokenizer.truncate(text, max_tokens, "head")
        return
    start, elided, end = _split_middle(kept)
    assert text.startswith(start)
    assert text.endswith(end)
    assert len(start) + len(end) <= len(text)
    assert elided == len(ref.encode_ordinary(text[len(start) : len(text) - len(end)]))

    def fits(start: str, end: str) -> bool:
        middle = text[len(start) : len(text) - len(end)]
        marker = MARKER.replace("{n}", f"{len(ref.encode_ordinary(middle)):,}")
        return len(ref.encode_ordinary(start + marker + end)) <= max_tokens

    # Maximal: neither side's next longer token-boundary candidate fits.
    starts = [c for c in _candidates(encoding, text, "head") if len(c) > len(start)]
    if starts and len(starts[0]) + len(end) <= len(text):
        assert not fits(starts[0], end)
    rest = text[len(start) :]
    ends = [c for c in _candidates(encoding, rest, "tail") if len(c) > len(end)]
    if ends and len(start) + len(ends[0]) <= len(text):
        assert not fits(start, ends[0])


def test_middle_on_a_long_log_names_the_elided_count_with_separators() -> None:
    log = "\n".join(f"2026-11-27 INFO step {i} ok" for i in range(5000))
    tokenizer = ctxsched.Tokenizer()
    kept = tokenizer.truncate(log, 200, "middle")
    assert tokenizer.count(kept) <= 200
    assert log.startswith(kept.split("\n[…")[0])
    end = kept.split(" tokens elided …]\n")[-1]
    assert end
    assert log.endswith(end)
    assert "," in kept.split("[… ")[1].split(" tokens")[0]
