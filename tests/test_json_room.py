"""The ``json`` strategy uses its room: on nested documents up to depth 8, from 1 KB to 50 MB, a cut to a
limit of 50 tokens or more is valid JSON, within the limit, made of the original's values at their paths
(what went is said by notes that count it), and uses at least 80% of the limit.

Token counts come from tiktoken itself (``tests.reference.reference``: tiktoken's own encoder, built offline
from a rank file checked against the official hash). A note says how many items or members went, and in
full also their tokens (``[… 12 items, ~345 tokens elided …]``); where room is tight (a full note is a
good part of a small limit) it may say only the count (``[… 12 items …]``).
"""

from __future__ import annotations

import json
import random
import re
from functools import cache
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import ctxsched
from tests.reference import reference

MARKER = "\n[… {n} tokens elided …]\n"
# A note in full, or short (only the count): the two forms the Rust code writes.
NOTE = re.compile(r"\[… ([\d,]+) (items?|members?)(?:, ~?[\d,]+ tokens elided)? …\]")

WORDS = [
    "the", "status", "request", "ok", "failed", "user", "order", "item", "price", "total", "widget", "lorem",
    "ipsum", "dolor", "amet", "café", "naïve", "日本語", "données", "🌍", "line\nbreak", "tab\there",
    '"quoted"', "back\\slash", "path/to/file.rs", "https://example.com/a?b=c", "0x1F", "2026-11-27T12:00:00Z",
]  # fmt: skip
KEYS = ["id", "name", "type", "status", "created_at", "owner", "tags", "value", "count", "url", "items", "é"]


def tokens(text: str) -> int:
    return len(reference("o200k_base").encode_ordinary(text))


# Generated documents: the shapes of API and tool responses, nested up to a depth, grown to about a size.


def words(rng: random.Random, size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        parts.append(rng.choice(WORDS))
        length += len(parts[-1]) + 1
    return "".join(word + ("\n" if rng.random() < 0.08 else " ") for word in parts).rstrip()


def number(rng: random.Random) -> int | float:
    choices = [rng.randrange(1000), rng.randrange(1 << 44), -rng.randrange(100_000), rng.randrange(10**6) / 1000]
    return rng.choice(choices)


def scalar(rng: random.Random, size: int) -> Any:
    kind = rng.randrange(10)
    if kind < 4:
        return words(rng, max(1, min(size, 400)))
    if kind < 7:
        return number(rng)
    return rng.random() < 0.5 if kind == 7 else None


def key(rng: random.Random, index: int) -> str:
    return f"{rng.choice(KEYS)}_{index}"


def record(rng: random.Random, depth: int, size: int) -> dict[str, Any]:
    fields = rng.randint(1, 8)
    members: dict[str, Any] = {"id": rng.randrange(10**6), "name": words(rng, rng.randint(4, 30))}
    for index in range(fields):
        nested = depth > 1 and rng.random() < 0.3
        members[key(rng, index)] = value(rng, depth - 1, size // fields) if nested else scalar(rng, size // fields)
    return members


def value(rng: random.Random, depth: int, size: int) -> Any:
    """A document nested at most ``depth`` levels below this one, of about ``size`` bytes."""
    if depth == 0 or size < 24:
        return scalar(rng, size)
    kind = rng.randrange(6)
    if kind == 0:  # an array of records
        each = min(rng.randint(60, 400), size)
        return [record(rng, depth - 1, each) for _ in range(max(1, size // each))]
    if kind == 1:  # an object with many keys
        count = max(1, min(rng.randint(2, 400), size // 12))
        return {key(rng, index): value(rng, depth - 1, size // count) for index in range(count)}
    if kind == 2:  # a long string
        return words(rng, size)
    if kind == 3:  # numbers
        return [number(rng) for _ in range(max(1, size // 7))]
    if kind == 4:  # arrays of arrays
        count = max(1, min(rng.randint(2, 60), size // 8))
        return [value(rng, depth - 1, size // count) for _ in range(count)]
    payloads = rng.randint(1, 2)  # a response: a few small fields around one or two big payloads
    response: dict[str, Any] = {"total": number(rng), "status": "ok"}
    for index in range(payloads):
        response[f"data_{index}"] = value(rng, depth - 1, size // payloads)
    response["next_page"] = words(rng, 12)
    return response


# The checks.


def note(item: Any) -> tuple[int, str] | None:
    """What a note says went (how many, and what), if ``item`` is one."""
    match = NOTE.fullmatch(item) if isinstance(item, str) else None
    return (int(match[1].replace(",", "")), match[2]) if match else None


def derived(reduced: Any, original: Any, path: str = "$") -> None:
    """Every value of ``reduced`` is the one at the same path of ``original`` (a string may be cut around the
    marker); an array keeps a run from its start and one from its end around at most one note; an object
    keeps some of its members and at most one note under a key of ``…``; each note counts what went."""
    if isinstance(reduced, str) and isinstance(original, str):
        if reduced != original:
            head, tail = reduced.split("\n[… ", 1)[0], reduced.rsplit(" tokens elided …]\n", 1)[-1]
            assert "\n[… " in reduced, path
            assert len(head) + len(tail) < len(original), path
            assert original.startswith(head), path
            assert original.endswith(tail), path
    elif isinstance(reduced, list) and isinstance(original, list):
        notes = [at for at, item in enumerate(reduced) if note(item)]
        assert len(notes) <= 1, f"{path}: {len(notes)} notes"
        front, back, went = reduced, [], 0
        if notes:
            went, noun = note(reduced[notes[0]]) or (0, "")
            assert noun == ("item" if went == 1 else "items"), path
            front, back = reduced[: notes[0]], reduced[notes[0] + 1 :]
        assert len(front) + len(back) + went == len(original), f"{path}: {len(front)} + {len(back)} + {went}"
        for index, item in enumerate(front):
            derived(item, original[index], f"{path}[{index}]")
        for offset, item in enumerate(back):
            index = len(original) - len(back) + offset
            derived(item, original[index], f"{path}[{index}]")
    elif isinstance(reduced, dict) and isinstance(original, dict):
        went = 0
        for name, member in reduced.items():
            if name in original:
                derived(member, original[name], f"{path}.{name}")
                continue
            said = note(member)
            assert said, f"{path}: key {name!r} is not the original's"
            assert set(name) == {"…"}, f"{path}: key {name!r} is not the original's"
            assert not went, f"{path}: two notes"
            went, noun = said
            assert noun == ("member" if went == 1 else "members"), path
        assert len(reduced) - (1 if went else 0) + went == len(original), path
    else:
        assert type(reduced) is type(original), f"{path}: {reduced!r} != {original!r}"
        assert reduced == original, f"{path}: {reduced!r} != {original!r}"


def check(text: str, limit: int, original: Any = None) -> int:
    """``text`` cut to ``limit`` by ``json``, checked; the tokens used."""
    cut = ctxsched.Tokenizer("o200k_base").cut(text, limit, "json", MARKER)
    assert cut.strategy == "json", cut.fallback
    assert cut.fallback is None
    reduced = json.loads(cut.text)
    used = tokens(cut.text)
    assert used <= limit
    original = json.loads(text) if original is None else original
    derived(reduced, original)
    # Over the limit (a token is never longer than 256 bytes) and not kept whole: the room is used.
    over = len(text) > 256 * limit or tokens(text) > limit
    if over and reduced != original:
        assert used >= 0.8 * limit, f"only {used} of {limit} tokens used: {cut.text[:2000]}"
    return used


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    depth=st.integers(min_value=1, max_value=8),
    size=st.integers(min_value=1_000, max_value=100_000),
    limit=st.integers(min_value=50, max_value=5_000),
    indent=st.sampled_from([None, 2]),
)
# Strings whose escapes (``ensure_ascii``) make the JSON half as long again as its text: found by hypothesis.
@example(seed=63684, depth=1, size=3453, limit=1399, indent=None)
@example(seed=4520134, depth=1, size=3943, limit=1253, indent=None)
# Full notes a few tokens too many, short ones everywhere too few: only the root's note short fills it.
@example(seed=2845381791, depth=5, size=100_000, limit=51, indent=2)
# A rendering of 47 tokens exists for a limit of 53, at a root budget the bisection stepped over (41 found).
@example(seed=2341891740, depth=7, size=1000, limit=53, indent=None)
# A string that fits cut to 4 tokens around its marker, not 6: 50 of 50 where it was a note and 38.
@example(seed=3760507180, depth=2, size=10_000, limit=50, indent=2)
# Over the limit only by its escapes (`\ud83c\udf0d` for one emoji): written without them it fits whole (was 41 of 53).
@example(seed=1969732712, depth=1, size=10_000, limit=53, indent=2)
# An array of three records with no room for any member: its first and last shown as stubs (was 42 of 53).
@example(seed=4008898323, depth=5, size=100_000, limit=53, indent=2)
def test_json_cuts_use_their_room(seed: int, depth: int, size: int, limit: int, indent: int | None) -> None:
    document = value(random.Random(seed), depth, size)
    check(json.dumps(document, indent=indent, ensure_ascii=seed % 2 == 0), limit, document)


def test_the_reported_shape_an_array_of_records_keeps_most_of_600_tokens() -> None:
    rng = random.Random(7)
    records = [
        {"id": 1_000_000 + i, "title": words(rng, 50), "user": {"login": f"user{i % 97}", "id": i % 97},
         "labels": [{"id": label, "name": "bug"} for label in range(i % 4)], "body": words(rng, 700)}
        for i in range(600)
    ]  # fmt: skip
    text = json.dumps(records, indent=2)
    assert tokens(text) > 100_000
    assert check(text, 600, records) >= 480


def test_notes_say_how_many_items_and_members_went() -> None:
    numbers = list(range(1000))
    cut = ctxsched.Tokenizer().cut(json.dumps(numbers), 100, "json", MARKER)
    items = json.loads(cut.text)
    [said] = [said for said in map(note, items) if said]
    assert said == (1000 - (len(items) - 1), "items")
    members = {f"key{i}": i for i in range(500)}
    reduced = json.loads(ctxsched.Tokenizer().cut(json.dumps(members), 100, "json", MARKER).text)
    assert note(reduced["…"]) == (500 - (len(reduced) - 1), "members")


def nested(rng: random.Random, size: int) -> dict[str, Any]:
    """A response of about ``size`` bytes: records with nested fields, and a map of nested values."""
    each = 300
    return {
        "total": size // each,
        "status": "ok",
        "data_0": [record(rng, 7, each) for _ in range(size // (2 * each))],
        "data_1": {key(rng, index): value(rng, 6, size // 200) for index in range(100)},
        "next_page": words(rng, 12),
    }


@cache
def large(shape: str, size: int) -> tuple[str, Any]:
    """A large document (as text, and parsed): an array of records, or a nested response."""
    if shape == "records":
        record = {"id": 1, "name": "item", "tags": ["a", "b"], "body": "lorem ipsum dolor sit amet"}
        return "[" + ",".join([json.dumps(record)] * (size // 90)) + "]", [record] * (size // 90)
    document = nested(random.Random(size), size)
    return json.dumps(document), document


@pytest.mark.slow
@pytest.mark.parametrize("limit", [50, 600, 2_000])
@pytest.mark.parametrize(
    ("shape", "size"),
    [("records", 50_000_000), ("records", 1_000_000), ("nested", 10_000_000), ("nested", 1_000_000)],
)
def test_large_documents_use_their_room(shape: str, size: int, limit: int) -> None:
    text, document = large(shape, size)
    used = check(text, limit, document)
    assert used >= 0.8 * limit
