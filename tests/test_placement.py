"""``result.placement``: each placed segment's region and token offset, and the placement score (the share of
high-priority tokens in the head or the tail), worked out here from the placed segments."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import ctxsched as cs
from tests.reference import reference


def tokens(text: str) -> int:
    return len(reference("o200k_base").encode_ordinary(text))


segments = st.lists(
    st.tuples(
        st.text(max_size=60),
        st.sampled_from(["system", "instruction", "history", "tool_result", "retrieval"]),
        st.sampled_from([None, "head", "tail"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=15,
)


@given(segments=segments, budget=st.integers(min_value=10, max_value=600))
def test_placement_follows_the_prompt_and_the_score_counts_the_high_priority_tokens(
    segments: list[tuple[str, str, str | None, bool]], budget: int
) -> None:
    given_segments = [
        cs.Segment(text, id=f"s{index}", kind=kind, pin=pin, required=required)  # type: ignore[arg-type]
        for index, (text, kind, pin, required) in enumerate(segments)
    ]
    try:
        result = cs.Scheduler().pack(given_segments, budget)
    except cs.BudgetError:
        return
    placement = result.placement
    assert [place.id for place in placement] == [segment.id for segment in result.segments]
    separator = tokens(result.separator)
    offset = 0
    for position, (place, placed) in enumerate(zip(placement, result.segments, strict=True)):
        offset += separator if position else 0
        assert place.offset == offset
        assert place.tokens == placed.tokens
        offset += place.tokens
        pin = placed.segment.pin
        assert place.region == ("body" if pin is None else pin)
        priority = cs.Policy().effective_priorities().get(placed.kind, 0)
        assert place.high_priority == (pin is not None or placed.segment.required or priority >= 90)
    regions = [place.region for place in placement]
    assert regions == sorted(regions, key=["head", "body", "tail"].index)
    high = sum(place.tokens for place in placement if place.high_priority)
    edges = sum(place.tokens for place in placement if place.high_priority and place.region != "body")
    if high:
        assert result.placement_score == edges / high
    else:
        assert result.placement_score is None
    assert "placement: head" in result.explain()


def test_a_task_in_the_body_scores_lower_than_one_restated_at_the_tail() -> None:
    task = "Fix the failing parser test and keep the public API."
    history = [cs.Segment(f"step {i}: " + "ran the suite " * 20) for i in range(10)]
    body = cs.Scheduler().pack([cs.Segment(task, kind="instruction", required=True), *history], 4_000)
    tail = cs.Scheduler().pack([*history, cs.Segment(task, kind="instruction", pin="tail")], 4_000)
    assert body.placement_score == 0.0
    assert tail.placement_score == 1.0
    assert tail.placement[-1].region == "tail"
    assert body.placement[0].offset == 0
