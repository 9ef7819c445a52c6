"""Examples that read like documentation: one per policy feature, one per error."""

from __future__ import annotations

import pytest

import ctxsched as cs
from tests.packing import words


def kept_ids(result: cs.PackResult) -> list[str]:
    return [placed.id for placed in result.segments]


def test_system_prompt_and_task_stay_at_the_edges_while_old_history_goes() -> None:
    sched = cs.Scheduler()
    segments = [
        cs.Segment("You are a careful coding agent.", id="system", kind="system", pin="head"),
        *(cs.Segment(words(100), id=f"turn-{i}", kind="history") for i in range(10)),
        cs.Segment("Fix the failing parser test.", id="task", kind="instruction", pin="tail"),
    ]
    result = sched.pack(segments, budget=350)
    ids = kept_ids(result)
    assert ids[0] == "system"
    assert ids[-1] == "task"
    # Equal priority: the newest history is kept, the oldest evicted.
    assert "turn-9" in ids
    assert "turn-0" not in ids
    assert result.tokens <= 350


def test_higher_priority_wins_and_a_big_unit_is_skipped_not_a_wall() -> None:
    result = cs.Scheduler().pack(
        [
            cs.Segment(words(10), id="small-old", priority=1),
            cs.Segment(words(90), id="important", priority=5),
            cs.Segment(words(200), id="huge", priority=3),
        ],
        budget=110,
    )
    assert kept_ids(result) == ["small-old", "important"]
    assert next(e for e in result.evicted if e.id == "huge").rule == "does_not_fit"


def test_an_oversized_tool_result_is_preempted_to_its_cap_before_admission() -> None:
    policy = cs.Policy(segment_caps={"tool_result": 50})
    log = "\n".join(f"PASSED test_{i}" for i in range(500))
    result = cs.Scheduler(policy=policy).pack([cs.Segment(log, id="log", kind="tool_result")], budget=1000)
    (placed,) = result.segments
    assert placed.action == "truncated"
    assert placed.tokens <= 50
    # Tool results are cut by "auto": a log keeps whole first and last lines around the marker.
    start, end = placed.text.split("\n[… ")[0], placed.text.split(" tokens elided …]\n")[1]
    assert start.endswith("\n")
    assert log.startswith(start)
    assert end
    assert log.endswith("\n" + end)
    (decision,) = result.decisions
    assert decision.strategy == "lines"
    assert decision.fallback is None
    assert "above the tool_result cap of 50" in result.explain()


def test_a_quota_maximum_caps_a_kind_and_a_minimum_reserves_room_for_it() -> None:
    policy = cs.Policy(
        quotas={"tool_result": cs.Quota(max=0.25), "retrieval": cs.Quota(min=100)},
        priorities={"history": 90},
        truncation={"tool_result": "none"},
    )
    segments = [
        *(cs.Segment(words(40), id=f"tool-{i}", kind="tool_result") for i in range(5)),
        cs.Segment(words(100), id="doc", kind="retrieval"),
        *(cs.Segment(words(50), id=f"turn-{i}", kind="history") for i in range(10)),
    ]
    result = cs.Scheduler(policy=policy).pack(segments, budget=400)
    assert result.usage["tool_result"].tokens <= 100
    assert result.usage["tool_result"].max == 100
    # History outranks retrieval, yet the retrieval minimum was reserved first.
    assert "doc" in kept_ids(result)
    assert next(d for d in result.decisions if d.id == "doc").rule == "quota_min"


def test_groups_keep_a_tool_call_with_its_results() -> None:
    segments = [
        cs.Segment(words(30), id="call", kind="tool_call", group="call-1"),
        cs.Segment(words(100), id="result", kind="tool_result", group="call-1", truncate="none"),
        cs.Segment(words(40), id="chat", kind="history", priority=0),
    ]
    result = cs.Scheduler().pack(segments, budget=100)
    assert kept_ids(result) == ["chat"]
    assert {e.id: e.rule for e in result.evicted} == {"call": "does_not_fit", "result": "does_not_fit"}


def test_the_last_unit_is_admitted_partially_when_it_may_be_cut() -> None:
    text = "\n".join(f"line {i}" for i in range(300))
    segments = [
        cs.Segment(words(20), id="chat"),
        cs.Segment(text, id="log", kind="tool_result", truncate="tail"),
    ]
    result = cs.Scheduler(policy=cs.Policy(separator="")).pack(segments, budget=120)
    log = next(placed for placed in result.segments if placed.id == "log")
    assert log.action == "truncated"
    assert text.endswith(log.text)
    assert log.rule == "partial"
    assert result.tokens <= 120


def test_output_reserve_is_kept_free() -> None:
    policy = cs.Policy(reserve_output=60)
    result = cs.Scheduler(policy=policy).pack([cs.Segment(words(50), id=f"s{i}") for i in range(3)], budget=160)
    assert result.usable == 100
    assert result.tokens <= 100
    assert len(result.segments) == 1


def test_retrieval_is_placed_most_relevant_at_the_edges() -> None:
    docs = [cs.Segment(words(5), id=f"doc-{r}", kind="retrieval", relevance=r / 10) for r in (1, 9, 5, 7, 3)]
    result = cs.Scheduler().pack(docs, budget=1000)
    assert kept_ids(result) == ["doc-9", "doc-5", "doc-1", "doc-3", "doc-7"]


def test_text_joins_with_the_separator_and_tokens_count_exactly_what_is_sent() -> None:
    result = cs.Scheduler(policy=cs.Policy(separator="\n---\n")).pack(
        [cs.Segment("alpha", id="a"), cs.Segment("beta", id="b")], budget=100
    )
    assert result.text() == "alpha\n---\nbeta"
    assert result.text(separator=" | ") == "alpha | beta"
    assert result.tokens == cs.count_tokens(result.text())


def test_every_decision_is_recorded_and_explained() -> None:
    segments = [
        cs.Segment("system prompt", id="sys", kind="system", pin="head"),
        cs.Segment(words(500), id="big", kind="history", truncate="none"),
        cs.Segment("recent", id="recent"),
    ]
    result = cs.Scheduler().pack(segments, budget=100)
    assert [d.id for d in result.decisions] == ["sys", "big", "recent"]
    assert [d.action for d in result.decisions] == ["kept", "evicted", "kept"]
    assert [d.rule for d in result.decisions] == ["pinned_head", "does_not_fit", "priority"]
    explanation = result.explain()
    assert explanation.count("\n") >= 3
    for segment_id in ("sys", "big", "recent"):
        assert segment_id in explanation
    evicted = result.evicted[0]
    assert evicted.segment.text == segments[1].text  # the original is reachable


def test_ids_default_to_kind_and_position_and_metadata_passes_through() -> None:
    marker = object()
    result = cs.Scheduler().pack([cs.Segment("x", kind="memory", metadata={"k": marker})], budget=10)
    (placed,) = result.segments
    assert placed.id == "memory-0"
    assert placed.segment.metadata["k"] is marker


def test_counts_are_memoised_across_calls() -> None:
    sched = cs.Scheduler()
    history = [cs.Segment(words(10), id=f"t{i}") for i in range(5)]
    sched.pack(history, budget=1000)
    assert sched.memo_size == 1  # five segments, one distinct text
    history.append(cs.Segment("a new turn", id="t5"))
    sched.pack(history, budget=1000)
    assert sched.memo_size == 2


def test_an_external_tokenizer_packs_whole_segments_within_its_own_count() -> None:
    def count_words(text: str) -> int:
        return len(text.split())

    sched = cs.Scheduler(tokenizer=count_words)
    segments = [cs.Segment(" ".join(["word"] * 30), id=f"s{i}") for i in range(5)]
    result = sched.pack(segments, budget=70)
    assert count_words(result.text()) <= 70
    assert len(result.segments) == 2
    assert all(placed.action == "kept" for placed in result.segments)


# Errors: each is typed and says what was wrong.


def test_an_infeasible_mandatory_set_raises_budget_error_listing_it() -> None:
    segments = [
        cs.Segment(words(80), id="system", kind="system", pin="head"),
        cs.Segment(words(50), id="task", kind="instruction", required=True),
    ]
    with pytest.raises(cs.BudgetError, match=r"needs 131 tokens but only 100 are usable") as caught:
        cs.Scheduler().pack(segments, budget=100)
    assert "system (system, 80 tokens)" in str(caught.value)
    assert "task (instruction, 50 tokens)" in str(caught.value)


def test_a_mandatory_set_that_may_be_cut_is_cut_instead_of_failing() -> None:
    segments = [
        cs.Segment(words(300), id="system", kind="system", pin="head", truncate="head", min_tokens=20),
        cs.Segment(words(50), id="task", kind="instruction", pin="tail"),
    ]
    result = cs.Scheduler().pack(segments, budget=120)
    assert [placed.action for placed in result.segments] == ["truncated", "kept"]
    assert result.tokens <= 120


def test_a_reserve_larger_than_the_budget_is_a_budget_error() -> None:
    with pytest.raises(cs.BudgetError):
        cs.Scheduler(policy=cs.Policy(reserve_output=500)).pack([], budget=100)


def test_duplicate_ids_are_an_error_naming_them() -> None:
    with pytest.raises(cs.DuplicateSegmentIdError, match=r"'a'|\"a\""):
        cs.Scheduler().pack([cs.Segment("x", id="a"), cs.Segment("y", id="a")], budget=10)


def test_a_quota_minimum_above_its_maximum_at_this_budget_is_a_policy_error() -> None:
    policy = cs.Policy(quotas={"retrieval": cs.Quota(min=500, max=0.1)})
    with pytest.raises(cs.PolicyError, match="retrieval"):
        cs.Scheduler(policy=policy).pack([cs.Segment("x", kind="retrieval")], budget=1000)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: cs.Segment(3), TypeError, "text must be str"),  # type: ignore[arg-type]
        (lambda: cs.Segment("x", pin="middle"), ValueError, "pin must be 'head', 'tail' or None"),  # type: ignore[arg-type]
        (lambda: cs.Segment("x", truncate=" "), ValueError, "truncate must be 'none', a built-in strategy or a"),
        (lambda: cs.Segment("x", trust="maybe"), ValueError, "trust must be"),  # type: ignore[arg-type]
        (lambda: cs.Segment("x", kind=""), ValueError, "kind must be a non-empty str"),
        (lambda: cs.Segment("x", relevance=float("nan")), ValueError, "relevance must be a finite"),
    ],
)
def test_malformed_segments_are_rejected_with_a_clear_error(build: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build()  # type: ignore[operator]


def test_malformed_pack_arguments_are_type_errors() -> None:
    sched = cs.Scheduler()
    with pytest.raises(TypeError, match=r"segments\[1\] must be a ctxsched.Segment"):
        sched.pack([cs.Segment("x"), "not a segment"], budget=10)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a single string"):
        sched.pack("text", budget=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be >= 0"):
        sched.pack([], budget=-1)


def test_a_segment_that_cannot_fit_is_counted_only_as_far_as_the_decision_needs() -> None:
    big = words(50_000)
    result = cs.Scheduler(policy=cs.Policy(separator="")).pack(
        [cs.Segment(big, id="big", priority=0), cs.Segment(words(50), id="chat", priority=1)], budget=60
    )
    (evicted,) = result.evicted
    assert evicted.id == "big"
    assert not evicted.counted
    # A lower bound just past the 10 tokens that were left, not the 50,000 it has.
    assert evicted.tokens == 11
    assert "needs at least 11, 10 left" in evicted.reason
    decision = result.decisions[0]
    assert decision.tokens_before == 11
    assert not decision.counted
    assert result.decisions[1].counted


def test_an_enormous_budget_is_simply_no_limit() -> None:
    segments = [cs.Segment(words(10), id="a"), cs.Segment(words(10), id="b", truncate="head")]
    result = cs.Scheduler(policy=cs.Policy(quotas={"history": cs.Quota(max=0.5)})).pack(segments, budget=10**30)
    assert kept_ids(result) == ["a", "b"]
    assert result.tokens == cs.count_tokens(result.text())


def test_edge_cases_empty_inputs_zero_budget_and_empty_texts() -> None:
    sched = cs.Scheduler()
    empty = sched.pack([], budget=0)
    assert (empty.segments, empty.evicted, empty.tokens, empty.text()) == ([], [], 0, "")
    result = sched.pack([cs.Segment("some text", id="a")], budget=0)
    assert [e.id for e in result.evicted] == ["a"]
    assert result.tokens == 0
    blank = sched.pack([cs.Segment("", id="blank"), cs.Segment("x", id="x")], budget=1)
    assert blank.tokens <= 1
    assert blank.tokens == cs.count_tokens(blank.text())


def test_a_pinned_member_makes_its_whole_group_mandatory() -> None:
    segments = [
        cs.Segment(words(20), id="call", kind="tool_call", group="g", pin="head"),
        cs.Segment(words(20), id="result", kind="tool_result", group="g", truncate="none"),
        cs.Segment(words(20), id="chat", priority=100),
    ]
    result = cs.Scheduler(policy=cs.Policy(separator="")).pack(segments, budget=45)
    assert kept_ids(result) == ["call", "result"]
    assert result.decisions[1].rule == "mandatory_group"


def test_an_empty_segment_whose_separator_does_not_fit_is_not_admitted() -> None:
    sched = cs.Scheduler(tokenizer=len)  # the separator "\n\n" counts 2
    result = sched.pack([cs.Segment("abcde", id="text", priority=1), cs.Segment("", id="empty", priority=0)], budget=5)
    assert kept_ids(result) == ["text"]
    assert result.decisions[1].rule == "does_not_fit"
    both_empty = sched.pack([cs.Segment("", id="a"), cs.Segment("", id="b")], budget=0)
    assert len(both_empty.segments) == 1
    assert both_empty.text() == ""


def test_implausibly_large_external_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="implausibly large"):
        cs.Scheduler(tokenizer=lambda text: 2**62).pack([cs.Segment("x", pin="head")], budget=10)


def test_a_cut_that_would_keep_nothing_evicts_instead_and_fails_for_mandatory_segments() -> None:
    earths = "🌍" * 10  # several cl100k tokens per character: a 1-token cut keeps nothing
    sched = cs.Scheduler(tokenizer="cl100k_base", policy=cs.Policy(separator=""))
    result = sched.pack([cs.Segment(earths, id="earths", truncate="head")], budget=1)
    assert result.segments == []
    assert result.decisions[0].rule == "cut_to_nothing"
    with pytest.raises(cs.BudgetError, match="cannot be cut to 1 tokens without splitting a character"):
        sched.pack([cs.Segment(earths, id="earths", truncate="head", required=True)], budget=1)


def test_a_log_cut_in_the_middle_keeps_its_start_and_its_end_around_a_marker() -> None:
    log = "\n".join(["$ pytest -q", *(f"test_{i} PASSED" for i in range(2000)), "1 failed, 1999 passed"])
    policy = cs.Policy(segment_caps={"tool_result": 100}, truncation={"tool_result": "middle"})
    result = cs.Scheduler(policy=policy).pack([cs.Segment(log, id="log", kind="tool_result")], budget=1000)
    (placed,) = result.segments
    assert placed.tokens <= 100
    assert placed.text.startswith("$ pytest -q")
    assert placed.text.endswith("1 failed, 1999 passed")
    start, rest = placed.text.split("\n[… ", 1)
    count, end = rest.split(" tokens elided …]\n", 1)
    assert int(count.replace(",", "")) == cs.count_tokens(log[len(start) : len(log) - len(end)])


def test_the_elision_marker_is_a_policy_template() -> None:
    policy = cs.Policy(truncation={"tool_result": "middle"}, elision_marker=" <{n} cut> ", separator="")
    text = " ".join(f"word{i}" for i in range(400))
    result = cs.Scheduler(policy=policy).pack([cs.Segment(text, kind="tool_result")], budget=60)
    assert " cut> " in result.segments[0].text
    assert result.tokens <= 60


def test_a_segment_with_a_stub_is_replaced_by_it_before_units_are_evicted() -> None:
    sched = cs.Scheduler(policy=cs.Policy(separator=""))
    stub = "[{n} tokens of log removed]"
    segments = [
        cs.Segment("Fix the parser.", id="task", kind="instruction", required=True),
        *(cs.Segment(words(60), id=f"log-{i}", kind="tool_result", truncate="none", stub=stub) for i in range(4)),
    ]
    assert segments[1].stub == stub
    result = sched.pack(segments, budget=150)
    actions = {decision.id: decision.action for decision in result.decisions}
    # Two whole logs fit beside the task; stubbing the two oldest keeps all four.
    assert actions == {"task": "kept", "log-0": "stubbed", "log-1": "stubbed", "log-2": "kept", "log-3": "kept"}
    placed = {placed.id: placed for placed in result.segments}
    assert placed["log-0"].text == "[60 tokens of log removed]"
    assert placed["log-0"].segment.text == words(60)  # the original stays reachable
    assert (placed["log-0"].original_tokens, placed["log-0"].tokens) == (60, cs.count_tokens(placed["log-0"].text))
    assert "stubbed 60 ->" in result.explain()
    assert result.tokens == cs.count_tokens(result.text()) <= 150
