"""User truncation functions: registered by name, called with (text, max_tokens, tokenizer), checked."""

from __future__ import annotations

import re

import pytest

import ctxsched as cs

LOG = "".join(f"step {i}: {'ERROR disk full' if i % 97 == 0 else 'ok'}\n" for i in range(2000))


def errors_only(text: str, max_tokens: int, tokenizer: cs.Tokenizer) -> str:
    """Keep the error lines, as many as fit."""
    errors = "".join(line for line in text.splitlines(keepends=True) if "ERROR" in line)
    return tokenizer.truncate(errors, max_tokens, "lines")


def pack(truncator: object, budget: int = 400) -> cs.PackResult:
    scheduler = cs.Scheduler(policy={"segment_caps": {"tool_result": 100}}, truncators={"mine": truncator})  # type: ignore[dict-item]
    segments = [cs.Segment("Find the failing step.", kind="instruction", pin="head"),
                cs.Segment(LOG, id="log", kind="tool_result", truncate="mine")]  # fmt: skip
    return scheduler.pack(segments, budget)


def test_a_registered_truncator_cuts_and_is_named_in_the_decision() -> None:
    seen: list[tuple[int, object]] = []

    def spy(text: str, max_tokens: int, tokenizer: cs.Tokenizer) -> str:
        seen.append((max_tokens, tokenizer))
        return errors_only(text, max_tokens, tokenizer)

    result = pack(spy)
    placed = next(segment for segment in result.segments if segment.id == "log")
    assert placed.text.startswith("step 0: ERROR disk full\nstep 97: ERROR")
    assert placed.tokens <= 100
    decision = result.decisions[1]
    assert decision.action == "truncated"
    assert decision.strategy == "mine"
    assert decision.fallback is None
    assert "by mine" in decision.detail
    assert len(seen) == 1
    assert seen[0][0] == 100
    assert isinstance(seen[0][1], cs.Tokenizer)


@pytest.mark.parametrize(
    ("truncator", "reason"),
    [
        (lambda text, n, tokenizer: text, r'truncator "mine" returned \d+ tokens for a limit of 100; auto used'),
        (lambda text, n, tokenizer: 42, 'truncator "mine" returned int, not str; auto used'),
        (lambda text, n, tokenizer: 1 / 0, 'truncator "mine" raised ZeroDivisionError: division by zero; auto used'),
        (lambda text: text, 'truncator "mine" raised TypeError'),
    ],
)
def test_a_broken_truncator_falls_back_to_auto_and_the_log_says_why(truncator: object, reason: str) -> None:
    result = pack(truncator)
    decision = result.decisions[1]
    assert decision.action == "truncated"
    assert decision.strategy == "lines"
    assert decision.fallback is not None
    assert re.match(reason, decision.fallback), decision.fallback
    assert decision.fallback in result.explain()
    assert result.tokens <= 400
    assert decision.tokens_after <= 100


def test_unknown_truncation_names_are_rejected_with_what_is_known() -> None:
    with pytest.raises(cs.PolicyError, match="truncation 'mine' for kind 'tool_result' is neither built in"):
        cs.Scheduler(policy={"truncation": {"tool_result": "mine"}})
    with pytest.raises(cs.PolicyError, match="taken by a built-in strategy"):
        cs.Scheduler(truncators={"lines": errors_only})
    with pytest.raises(TypeError, match="truncator 'mine' must be callable"):
        cs.Scheduler(truncators={"mine": "not a function"})  # type: ignore[dict-item]
    scheduler = cs.Scheduler(truncators={"errors": errors_only})
    with pytest.raises(cs.PolicyError, match=r"segment \"x\" asks for truncation \"other\".*\(errors\)"):
        scheduler.pack([cs.Segment("text", id="x", truncate="other")], 100)
    # The policy may name a registered truncator for a kind.
    scheduler = cs.Scheduler(policy={"truncation": {"tool_result": "errors"}, "segment_caps": {"tool_result": 80}},
                             truncators={"errors": errors_only})  # fmt: skip
    result = scheduler.pack([cs.Segment(LOG, kind="tool_result")], 1000)
    assert result.decisions[0].strategy == "errors"


def test_an_empty_result_is_a_failure_not_an_eviction() -> None:
    result = pack(lambda text, n, tokenizer: "")
    decision = result.decisions[1]
    assert decision.action == "truncated"
    assert decision.strategy == "lines"
    assert decision.fallback == 'truncator "mine" returned nothing; auto used'


def test_keyboard_interrupt_in_a_truncator_stops_packing_and_is_re_raised() -> None:
    def interrupted(text: str, max_tokens: int, tokenizer: cs.Tokenizer) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pack(interrupted)


def test_truncators_with_a_tokenizer_of_your_own_are_accepted_and_never_called() -> None:
    tiktoken = pytest.importorskip("tiktoken")
    from tests.reference import reference

    assert tiktoken
    scheduler = cs.Scheduler(reference("o200k_base"), policy={"truncation": {"tool_result": "mine"}},
                             truncators={"mine": lambda text, n, tokenizer: 1 / 0})  # fmt: skip
    result = scheduler.pack([cs.Segment(LOG, kind="tool_result")], 100_000)
    assert result.decisions[0].action == "kept"
