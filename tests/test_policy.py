"""Policies: validated once by pydantic, loadable from files, with a JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

import ctxsched as cs


def test_a_policy_from_a_dict_merges_its_overrides_onto_the_defaults() -> None:
    policy = cs.Policy.model_validate({"priorities": {"retrieval": 95}, "quotas": {"retrieval": {"max": 0.3}}})
    assert policy.effective_priorities()["retrieval"] == 95
    assert policy.effective_priorities()["system"] == cs.policy.DEFAULT_PRIORITIES["system"]
    assert policy.quotas["retrieval"].max == 0.3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reserve_output": -1}, "greater than or equal to 0"),
        ({"quotas": {"tool_result": {"max": 1.5}}}, "less than or equal to 1"),
        ({"quotas": {"tool_result": {"min": 500, "max": 100}}}, "quota min \\(500\\) is above its max \\(100\\)"),
        ({"segment_caps": {"tool_result": -5}}, "greater than or equal to 0"),
        ({"quotas": {"tool_result": {"maximum": 3}}}, "Extra inputs are not permitted"),
        ({"budget": 3}, "Extra inputs are not permitted"),
        ({"truncation": {"tool_result": "  "}}, "String should match pattern"),
    ],
)
def test_invalid_policies_raise_a_readable_validation_error(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        cs.Policy.model_validate(data)


def test_policies_are_frozen() -> None:
    policy = cs.Policy()
    with pytest.raises(ValidationError):
        policy.reserve_output = 5  # type: ignore[misc]


def test_loading_from_json_toml_and_yaml_gives_the_same_policy(tmp_path: Path) -> None:
    expected = cs.Policy(
        reserve_output=1024, quotas={"tool_result": cs.Quota(max=0.4)}, segment_caps={"tool_result": 4000}
    )
    (tmp_path / "p.json").write_text(json.dumps(expected.model_dump()))
    (tmp_path / "p.toml").write_text(
        "reserve_output = 1024\n[quotas.tool_result]\nmax = 0.4\n[segment_caps]\ntool_result = 4000\n"
    )
    (tmp_path / "p.yaml").write_text(
        "reserve_output: 1024\nquotas:\n  tool_result: {max: 0.4}\nsegment_caps:\n  tool_result: 4000\n"
    )
    for name in ("p.json", "p.toml", "p.yaml"):
        assert cs.Policy.from_file(tmp_path / name) == expected
    (tmp_path / "p.ini").write_text("")
    with pytest.raises(ValueError, match="unknown policy file type"):
        cs.Policy.from_file(tmp_path / "p.ini")


def test_the_json_schema_describes_every_field() -> None:
    schema = cs.Policy.json_schema()
    assert set(schema["properties"]) == set(cs.Policy.model_fields)
    assert schema["additionalProperties"] is False


def test_a_scheduler_accepts_a_dict_policy_and_validates_it_once() -> None:
    sched = cs.Scheduler(policy={"reserve_output": 10})
    assert sched.policy.reserve_output == 10
    with pytest.raises(ValidationError):
        cs.Scheduler(policy={"reserve_output": "lots"})
