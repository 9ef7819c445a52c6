"""Truncation strategies: the properties every one keeps, and lines, json and auto in particular."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched
from tests.reference import ENCODINGS, reference
from tests.strategies import any_text

STRATEGIES = ["head", "tail", "middle", "lines", "json", "auto"]
MARKER = "\n[... {n} tokens elided ...]\n"
MARKER_PATTERN = re.compile(r"\n\[\.\.\. (~?[\d,]+) tokens elided \.\.\.\]\n")
# A JSON note also says how many items or members went: "[... 12 items, 345 tokens elided ...]", or, where
# room is tight, only that: "[... 12 items ...]".
NOTE_PATTERN = re.compile(
    r"\[\.\.\. (?:[\d,]+ (?:items?|members?)(?:, ~?[\d,]+ tokens elided)?|~?[\d,]+ tokens elided) \.\.\.\]"
)

line = st.one_of(any_text, st.text(max_size=30)).map(lambda text: text.replace("\n", " "))
multiline_text = st.builds(
    lambda lines, end: "\n".join(lines) + end, st.lists(line, max_size=30), st.sampled_from(["", "\n"])
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=12) | st.dictionaries(st.text(max_size=8), children, max_size=8),
    max_leaves=60,
)
json_text = st.builds(
    lambda value, indent: json.dumps(value, indent=indent), json_values, st.sampled_from([None, 1, 2])
)


def tokens(encoding: str, text: str) -> int:
    return len(reference(encoding).encode_ordinary(text))


def split_marker(text: str, cut: str) -> tuple[str, str, str]:
    """The kept start, the marker's number and the kept end of a middle or lines cut of ``text``."""
    match = MARKER_PATTERN.search(cut)
    assert match, cut
    start, number, end = cut[: match.start()], match.group(1), cut[match.end() :]
    # The marker can occur inside the original; the real one is where start and end are a prefix and suffix.
    for match in MARKER_PATTERN.finditer(cut):
        start, number, end = cut[: match.start()], match.group(1), cut[match.end() :]
        if text.startswith(start) and text.endswith(end) and len(start) + len(end) <= len(text):
            return start, number, end
    raise AssertionError(f"{cut!r} is not a start and an end of the original around the marker")


def derived(reduced: Any, original: Any) -> bool:
    """Every value in ``reduced`` is the original's (strings may be cut around the marker), or a note."""
    if isinstance(reduced, str) and NOTE_PATTERN.search(reduced):
        if NOTE_PATTERN.fullmatch(reduced):  # the value replaced by a note
            return True
        if isinstance(original, str):
            start, end = reduced.split("\n[... ")[0], reduced.split(" tokens elided ...]\n")[-1]
            return original.startswith(start) and original.endswith(end)
        return False
    if isinstance(reduced, list) and isinstance(original, list):
        notes = [i for i, item in enumerate(reduced) if isinstance(item, str) and NOTE_PATTERN.fullmatch(item)]
        if not notes or len(reduced) == len(original):
            return len(reduced) == len(original) and all(map(derived, reduced, original))
        at = notes[0]
        ends = len(reduced) - at - 1
        return all(map(derived, reduced[:at], original[:at])) and all(
            map(derived, reduced[at + 1 :], original[len(original) - ends :])
        )
    if isinstance(reduced, dict) and isinstance(original, dict):
        for key, value in reduced.items():
            if key not in original:
                if not (set(key) == {"…"} and isinstance(value, str) and NOTE_PATTERN.fullmatch(value)):
                    return False
            elif not derived(value, original[key]):
                return False
        return True
    return type(reduced) is type(original) and reduced == original


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("strategy", STRATEGIES)
@given(text=st.one_of(any_text, multiline_text, json_text), max_tokens=st.integers(min_value=0, max_value=80))
def test_every_strategy_fits_derives_from_the_original_and_says_what_it_did(
    encoding: str, strategy: str, text: str, max_tokens: int
) -> None:
    tokenizer = ctxsched.Tokenizer(encoding)
    cut = tokenizer.cut(text, max_tokens, strategy, MARKER)  # type: ignore[arg-type]
    assert tokens(encoding, cut.text) <= max_tokens
    assert cut.tokens == tokens(encoding, cut.text)
    assert tokenizer.cut(text, max_tokens, strategy, MARKER).text == cut.text  # type: ignore[arg-type]
    cut.text.encode("utf-8")  # valid Unicode
    if tokens(encoding, text) <= max_tokens:
        assert cut.text == text
        assert cut.fallback is None
        return
    assert tokenizer.truncate(text, max_tokens, strategy, MARKER) == cut.text  # type: ignore[arg-type]
    if cut.strategy != strategy:  # a fallback always says why
        assert strategy == "auto" or cut.fallback
    if cut.strategy == "head":
        assert text.startswith(cut.text)
    elif cut.strategy == "tail":
        assert text.endswith(cut.text)
    elif cut.strategy in ("middle", "lines"):
        start, number, end = split_marker(text, cut.text)
        elided = text[len(start) : len(text) - len(end)]
        assert number == f"{tokens(encoding, elided):,}"  # short texts: counted exactly
        if cut.strategy == "lines":
            assert start == "" or start.endswith("\n")
            assert end == "" or text[: len(text) - len(end)].endswith("\n")
            assert start or end
    else:
        assert cut.strategy == "json"
        assert derived(json.loads(cut.text), json.loads(text))


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=multiline_text, max_tokens=st.integers(min_value=1, max_value=120))
def test_lines_are_maximal_on_both_sides(encoding: str, text: str, max_tokens: int) -> None:
    cut = ctxsched.Tokenizer(encoding).cut(text, max_tokens, "lines", MARKER)
    if cut.strategy != "lines" or cut.text == text:
        return
    start, _, end = split_marker(text, cut.text)

    def fits(start: str, end: str) -> bool:
        middle = text[len(start) : len(text) - len(end)]
        marker = MARKER.replace("{n}", f"{tokens(encoding, middle):,}")
        return bool(middle) and tokens(encoding, start + marker + end) <= max_tokens

    rest = text[len(start) : len(text) - len(end)]
    next_line = rest.split("\n")[0] + "\n"
    if "\n" in rest and len(start) + len(next_line) < len(text) - len(end):
        assert not fits(start + next_line, end)
    previous = rest.rstrip("\n").rsplit("\n", 1)[-1] if not rest.endswith("\n") else rest[:-1].rsplit("\n", 1)[-1]
    previous_line = previous + ("\n" if end or text.endswith("\n") else "")
    if len(start) < len(text) - len(end) - len(previous_line) and text[: len(text) - len(end)].endswith(previous_line):
        assert not fits(start, previous_line + end)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(value=json_values, indent=st.sampled_from([None, 2]), max_tokens=st.integers(min_value=0, max_value=200))
def test_json_output_parses_and_is_made_of_the_original(
    encoding: str, value: Any, indent: int, max_tokens: int
) -> None:
    text = json.dumps(value, indent=indent)
    cut = ctxsched.Tokenizer(encoding).cut(text, max_tokens, "json", MARKER)
    assert tokens(encoding, cut.text) <= max_tokens
    if cut.strategy == "json":
        assert derived(json.loads(cut.text), value)
    else:  # only when no reduced form fits at all
        assert cut.fallback
        assert cut.fallback.startswith("json: no reduced form")


def test_json_keeps_items_from_both_ends_and_the_small_fields() -> None:
    records = [{"id": i, "name": f"record {i}", "body": "lorem ipsum dolor " * (i % 40)} for i in range(3000)]
    text = json.dumps({"total": 3000, "results": records, "next_page": "abc"}, indent=2)
    tokenizer = ctxsched.Tokenizer()
    cut = tokenizer.cut(text, 2000, "auto")
    assert cut.strategy == "json"
    assert cut.fallback is None
    reduced = json.loads(cut.text)
    assert reduced["total"] == 3000
    assert reduced["next_page"] == "abc"
    kept = [item for item in reduced["results"] if isinstance(item, dict)]
    assert kept[0]["id"] == 0
    assert kept[-1]["id"] == 2999
    assert any(isinstance(item, str) and item.startswith("[… ") and " items" in item for item in reduced["results"])
    assert cut.tokens >= 1500  # the room is used, not just respected


def test_invalid_json_that_looks_like_json_falls_back_and_says_why() -> None:
    text = json.dumps([{"id": i, "text": "some words here"} for i in range(2000)], indent=2)[:-1]
    tokenizer = ctxsched.Tokenizer()
    for strategy in ("json", "auto"):
        cut = tokenizer.cut(text, 300, strategy)  # type: ignore[arg-type]
        assert cut.strategy == "lines"
        assert cut.fallback
        assert cut.fallback.startswith("json: not valid JSON (EOF while parsing")
        assert cut.tokens <= 300


def test_auto_picks_by_shape() -> None:
    tokenizer = ctxsched.Tokenizer()
    log = "".join(f"12:00:{i % 60:02} INFO step {i} done\n" for i in range(3000))
    prose = "The scheduler decides what goes into the window. " * 2000
    assert tokenizer.cut(json.dumps(list(range(5000))), 100).strategy == "json"
    assert tokenizer.cut(log, 100).strategy == "lines"
    assert tokenizer.cut(prose, 100).strategy == "middle"
    # Lines so long that whole ones waste the room: cut mid-line instead, and say so.
    long_lines = "\n".join(["word " * 3000] * 3)
    cut = tokenizer.cut(long_lines, 100)
    assert cut.strategy == "middle"
    assert cut.fallback
    assert "lines" in cut.fallback


def test_estimated_counts_are_marked_and_close() -> None:
    tokenizer = ctxsched.Tokenizer()
    text = "".join(f"request {i} served in {i % 977} ms by worker {i % 13}\n" for i in range(100_000))
    cut = tokenizer.cut(text, 500, "lines", MARKER)
    start, number, end = split_marker(text, cut.text)
    assert number.startswith("~")
    exact = tokenizer.count(text[len(start) : len(text) - len(end)])
    assert abs(int(number[1:].replace(",", "")) - exact) < exact * 0.05


def test_hostile_inputs_give_sensible_results() -> None:
    tokenizer = ctxsched.Tokenizer()
    deep = "[" * 100_000 + "1" + "]" * 100_000
    cut = tokenizer.cut(deep, 200)
    assert cut.strategy == "json"
    assert cut.tokens <= 200
    assert json.loads(cut.text)
    deep_object = '{"a":' * 100_000 + "1" + "}" * 100_000
    assert json.loads(tokenizer.cut(deep_object, 200, "json").text)
    single_line = "lorem ipsum dolor sit amet " * 2_000_000  # 54 MB, one line
    cut = tokenizer.cut(single_line, 2000)
    assert cut.strategy == "middle"
    assert cut.tokens <= 2000
    start, _, end = cut.text.partition("\n[… ")
    assert single_line.startswith(start)
    assert single_line.endswith(end.split(" tokens elided …]\n")[1])
    unbalanced = "{" * 50_000 + '"a": [' * 1000
    cut = tokenizer.cut(unbalanced, 100, "json")
    assert cut.strategy == "middle"
    assert cut.fallback
    assert "not valid JSON" in cut.fallback
    assert cut.tokens <= 100


def test_pathological_shapes_stay_fast_enough_to_finish() -> None:
    """Shapes that once made the search quadratic (many blank lines, one huge line, a single huge piece,
    deep single-member nests around a large array); pytest-timeout fails the run if one hangs."""
    tokenizer = ctxsched.Tokenizer()
    blank_lines = "a\n" + "\n" * 2_000_000 + "b"
    assert tokenizer.cut(blank_lines, 20_000, "lines").tokens <= 20_000
    huge_line = "short\n" + "A" * 20_000_000 + "\n" + "log line\n" * 5000
    cut = tokenizer.cut(huge_line, 2000, "lines")
    assert cut.strategy == "lines"
    assert cut.tokens <= 2000
    assert cut.text.startswith("short\n")
    single_piece = "ACGT" * 5_000_000
    cut = tokenizer.cut(single_piece, 2000, "middle")
    assert cut.tokens <= 2000
    assert single_piece.startswith(cut.text.split("\n[…")[0])
    nested = "[" * 64 + json.dumps(list(range(1_000_000))) + "]" * 64
    cut = tokenizer.cut(nested, 500)
    assert cut.strategy == "json"
    assert cut.tokens <= 500
    assert json.loads(cut.text)


def test_json_edge_cases_from_review() -> None:
    tokenizer = ctxsched.Tokenizer()
    # A string over its budget only because of escapes is kept whole, not marked "0 tokens elided".
    escaped = json.dumps({"s": "\n" * 40, "items": list(range(2000))})
    assert "[… 0 tokens elided" not in tokenizer.cut(escaped, 120, "json").text
    # A key that decodes to the note's key is not duplicated.
    document = '{"\\u2026": 1, ' + ", ".join(f'"k{i}": {i}' for i in range(3000)) + "}"
    cut = tokenizer.cut(document, 100, "json")
    pairs = json.loads(cut.text, object_pairs_hook=lambda pairs: pairs)
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys))
    assert keys[0] == "…"
