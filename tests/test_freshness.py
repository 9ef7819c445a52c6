"""Freshness: expired segments are evicted as ``expired``, older versions of a memory as ``superseded``, and
segments older than ``Policy.max_age`` lose priority, all judged at the time an injected clock gives.

The expected outcome of each property is worked out here from the rules as documented (the clock, the
version order), not read back from the package.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched as cs

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def scheduler(now: datetime, **policy: object) -> cs.Scheduler:
    return cs.Scheduler(policy=policy, clock=lambda: now)


def test_a_newer_memory_supersedes_an_older_one_with_the_same_key() -> None:
    old = cs.Segment("The user prefers Postgres.", id="old", kind="memory", key="db", version=1, observed_at=at(0))
    new = cs.Segment("The user prefers SQLite.", id="new", kind="memory", key="db", version=2, observed_at=at(240))
    other = cs.Segment("The user edits in vim.", id="editor", kind="memory", key="editor", observed_at=at(0))
    result = scheduler(at(241)).pack([old, new, other], 1_000)
    assert [segment.id for segment in result.segments] == ["new", "editor"]
    [evicted] = result.evicted
    assert evicted.id == "old"
    assert result.decision(0).rule == "superseded"
    assert "superseded by new" in evicted.reason


def test_expiry_follows_the_injected_clock_and_overrides_a_pin() -> None:
    meeting = cs.Segment("Standup at 15:00.", id="meeting", kind="memory", pin="tail", observed_at=at(0), ttl=3600)
    system = cs.Segment("You are helpful.", id="system", kind="system", pin="head")
    before = scheduler(at(0) + timedelta(minutes=59)).pack([system, meeting], 1_000)
    assert [segment.id for segment in before.segments] == ["system", "meeting"]
    after = scheduler(at(0) + timedelta(hours=1)).pack([system, meeting], 1_000)
    assert [segment.id for segment in after.segments] == ["system"]
    assert after.decision(1).rule == "expired"
    assert "expired at 2026-03-02T11:00:00Z" in after.evicted[0].reason
    assert "expired" in after.explain()


def test_a_group_goes_with_its_expired_member() -> None:
    call = cs.Segment("get_weather()", id="call", kind="tool_call", group="g")
    result = cs.Segment("sunny", id="result", kind="tool_result", group="g", observed_at=at(0), expires_at=at(1))
    packed = scheduler(at(2)).pack([call, result], 1_000)
    assert packed.segments == []
    assert [packed.decision(0).rule, packed.decision(1).rule] == ["group_member", "expired"]


def test_stale_segments_lose_priority_to_fresh_ones() -> None:
    # Two memories, room for one: the stale one is evicted although it is the newer in the input.
    fresh = cs.Segment("fact " * 30, id="fresh", kind="memory", observed_at=at(99))
    stale = cs.Segment("fact " * 30, id="stale", kind="memory", observed_at=at(0))
    tokens = cs.count_tokens("fact " * 30)
    packed = scheduler(at(100), max_age=timedelta(days=30), truncation={"memory": "none"}).pack(
        [fresh, stale], tokens + 5
    )
    assert [segment.id for segment in packed.segments] == ["fresh"]
    # Without max_age, ties go to the newest: the other one.
    packed = scheduler(at(100), truncation={"memory": "none"}).pack([fresh, stale], tokens + 5)
    assert [segment.id for segment in packed.segments] == ["stale"]


def test_with_as_of_a_stale_segment_is_sent_with_its_date_and_counted() -> None:
    stale = cs.Segment("The user prefers Postgres.", id="stale", kind="memory", observed_at=at(0))
    fresh = cs.Segment("The user edits in vim.", id="fresh", kind="memory", observed_at=at(239))
    undated = cs.Segment("The user is in Lisbon.", id="undated", kind="memory")
    packed = scheduler(at(240), max_age=timedelta(days=30), as_of=True).pack([stale, fresh, undated], 1_000)
    texts = {segment.id: segment.text for segment in packed.segments}
    assert texts["stale"] == "(as of 2026-03-02) The user prefers Postgres."
    assert texts["fresh"] == "The user edits in vim."
    assert texts["undated"] == "The user is in Lisbon."
    assert packed.segments[0].segment.text == "The user prefers Postgres."  # the original, reachable
    assert packed.tokens == cs.count_tokens(packed.text())
    assert packed.segments[0].tokens == cs.count_tokens(texts["stale"])
    assert packed.decision(0).flags == ["dated: sent (as of 2026-03-02) (stale)"]
    assert packed.decision(1).flags == []
    # Off by default; and an untrusted stale segment carries its date inside its fence.
    plain = scheduler(at(240), max_age=timedelta(days=30)).pack([stale], 1_000)
    assert plain.segments[0].text == "The user prefers Postgres."
    untrusted = cs.Segment("Shipping takes 3 days.", id="page", kind="retrieval", trust="untrusted", observed_at=at(0))
    fenced = scheduler(at(240), max_age=timedelta(days=30), as_of=True).pack([untrusted], 1_000).segments[0].text
    assert fenced == "<untrusted_data>\n(as of 2026-03-02) Shipping takes 3 days.\n</untrusted_data>"


def test_without_freshness_nothing_changes() -> None:
    segments = [cs.Segment(f"message {i}") for i in range(20)]
    assert scheduler(at(0)).pack(segments, 40).text() == cs.Scheduler().pack(segments, 40).text()


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"observed_at": datetime(2026, 1, 1)}, "observed_at is a naive datetime"),
        ({"expires_at": datetime(2026, 1, 1)}, "expires_at is a naive datetime"),
        ({"observed_at": at(1), "expires_at": at(0)}, "expires_at (2026-03-02T10:00:00Z) is before observed_at"),
        ({"observed_at": at(0), "ttl": -1}, "ttl must not be negative"),
        ({"observed_at": at(0), "ttl": timedelta(seconds=-5)}, "ttl must not be negative"),
        ({"ttl": 60}, "a ttl counts from observed_at"),
        ({"observed_at": at(0), "ttl": 60, "expires_at": at(1)}, "not both"),
        ({"observed_at": "yesterday"}, "observed_at must be a timezone-aware datetime or seconds"),
        ({"observed_at": float("nan")}, "observed_at must be finite"),
        ({"key": ""}, "key must be a non-empty str"),
    ],
)
def test_bad_freshness_is_a_segment_error_naming_the_segment(arguments: dict[str, object], problem: str) -> None:
    with pytest.raises(cs.SegmentError, match='segment "note-7"') as raised:
        cs.Segment("text", id="note-7", **arguments)  # type: ignore[arg-type]
    assert problem in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_an_unnamed_segment_is_named_by_its_kind_and_text() -> None:
    with pytest.raises(cs.SegmentError, match='of kind "memory" \\("The user prefers'):
        cs.Segment("The user prefers Postgres.", kind="memory", ttl=5)


def test_a_naive_or_broken_clock_is_a_policy_error() -> None:
    segments = [cs.Segment("text")]
    with pytest.raises(cs.PolicyError, match="naive datetime"):
        cs.Scheduler(clock=lambda: datetime(2026, 1, 1)).pack(segments, 100)
    with pytest.raises(cs.PolicyError, match="seconds since the epoch"):
        cs.Scheduler(clock=lambda: "now").pack(segments, 100)  # type: ignore[arg-type, return-value]


def test_max_age_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_age must be positive"):
        cs.Policy(max_age=timedelta(0))
    assert cs.Policy.model_validate({"max_age": "P30D"}).max_age == timedelta(days=30)


def test_times_come_back_as_aware_datetimes() -> None:
    segment = cs.Segment("text", observed_at=at(0), ttl=timedelta(hours=2), key="k", version=3)
    assert segment.observed_at == at(0)
    assert segment.expires_at == at(0) + timedelta(hours=2)
    assert (segment.key, segment.version) == ("k", 3)
    assert cs.Segment("epoch", observed_at=0).observed_at == datetime(1970, 1, 1, tzinfo=UTC)


memories = st.lists(
    st.tuples(
        st.sampled_from([None, "db", "editor", "name"]),  # key
        st.integers(min_value=0, max_value=3),  # version
        st.one_of(st.none(), st.integers(min_value=0, max_value=20)),  # observed_at, in days
        st.one_of(st.none(), st.integers(min_value=0, max_value=20)),  # lifetime after observed_at, in days
        st.sampled_from([None, "head", "tail"]),  # pin
    ),
    max_size=25,
)


@given(memories=memories, now=st.integers(min_value=0, max_value=45))
def test_expiry_and_supersession_obey_the_clock_and_the_version_order(
    memories: list[tuple[str | None, int, int | None, int | None, str | None]], now: int
) -> None:
    segments = []
    for index, (key, version, observed, lifetime, pin) in enumerate(memories):
        expires = None if observed is None or lifetime is None else at(observed + lifetime)
        segments.append(
            cs.Segment(
                f"memory {index}",
                id=f"m{index}",
                kind="memory",
                key=key,
                version=version,
                observed_at=None if observed is None else at(observed),
                expires_at=expires,
                pin=pin,  # type: ignore[arg-type]
            )
        )
    result = scheduler(at(now)).pack(segments, 100_000)
    # The reference: the current version of each key by (version, observed, position); expiry first.
    current: dict[str, int] = {}
    for index, (key, version, observed, _, _) in enumerate(memories):
        if key is None:
            continue
        rank = (version, -1 if observed is None else observed, index)
        best = current.get(key)
        if best is None or rank >= (memories[best][1], -1 if memories[best][2] is None else memories[best][2], best):
            current[key] = index
    for index, (key, _, observed, lifetime, _) in enumerate(memories):
        expired = observed is not None and lifetime is not None and now >= observed + lifetime
        superseded = key is not None and current[key] != index
        expected = "expired" if expired else "superseded" if superseded else None
        decision = result.decision(index)
        if expected is None:
            assert decision.action == "kept", (index, decision.rule)
        else:
            assert (decision.action, decision.rule) == ("evicted", expected), index
    placed = {segment.id for segment in result.segments}
    evicted = {segment.id for segment in result.evicted}
    assert placed | evicted == {segment.id for segment in segments}
    assert not placed & evicted
