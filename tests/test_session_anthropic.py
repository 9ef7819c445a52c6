"""Anthropic sessions: messages read one by one, the prefix kept stable, and ``cache_control`` marks where
caching pays (at most four, on blocks that can carry one, never on the caller's objects)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

import ctxsched as cs
from tests.fences import with_notice

SYSTEM = "You are a careful coding agent. Follow the house rules. " * 120  # ~1,300 tokens: worth a mark


def _turn(step: int, lines: int = 60) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": f"t{step}", "name": "bash", "input": {"cmd": f"make step{step}"}}
    result = {"type": "tool_result", "tool_use_id": f"t{step}", "content": f"step {step} output line\n" * lines}
    return [
        {"role": "assistant", "content": [{"type": "text", "text": f"Running step {step}."}, use]},
        {"role": "user", "content": [result]},
    ]


def _strip(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages without their cache_control marks (a mark moves; the text it marks does not)."""
    plain = copy.deepcopy(messages)
    for message in plain:
        if isinstance(message["content"], list):
            for block in message["content"]:
                block.pop("cache_control", None)
            if len(message["content"]) == 1 and message["content"][0].get("type") == "text":
                original = message["content"][0]["text"]
                message["content"] = original if set(message["content"][0]) == {"type", "text"} else message["content"]
    return plain


def _marked(packed: cs.PackedMessages) -> list[int]:
    return [
        at
        for at, message in enumerate(packed.messages["messages"])
        if isinstance(message["content"], list) and "cache_control" in message["content"][-1]
    ]


def _system_marked(packed: cs.PackedMessages) -> bool:
    system = packed.messages.get("system")
    return isinstance(system, list) and "cache_control" in system[-1]


def _valid_pairs(messages: list[dict[str, Any]]) -> bool:
    waiting: set[str] = set()
    for message in messages:
        blocks = message["content"] if isinstance(message["content"], list) else []
        results = {block["tool_use_id"] for block in blocks if block.get("type") == "tool_result"}
        if results != waiting and (waiting or results):
            return False
        waiting = {block["id"] for block in blocks if block.get("type") == "tool_use"}
    return not waiting


def test_an_anthropic_loop_stays_valid_marks_where_it_pays_and_grows_append_only() -> None:
    session = cs.Session(6_000, format="anthropic", system=SYSTEM)
    session.append({"role": "user", "content": "Fix the failing build, step by step."})
    previous: list[dict[str, Any]] | None = None
    previous_epoch = 0
    epochs = set()
    appended = 0
    for step in range(40):
        turn = _turn(step)
        given = copy.deepcopy(turn)
        session.extend(turn)
        packed = session.pack()
        assert turn == given, "the caller's messages were changed"
        messages = packed.messages["messages"]
        assert packed.tokens <= 6_000
        assert messages[0]["role"] == "user"
        assert messages[-1]["role"] == "user"
        assert all(first["role"] != second["role"] for first, second in itertools.pairwise(messages))
        assert _valid_pairs(messages)
        marks = _marked(packed)
        assert len(marks) + _system_marked(packed) == packed.cache.breakpoints <= 4
        # The system prompt alone is over 1,024 stand-in tokens: it is marked; so is the last message.
        assert _system_marked(packed)
        assert marks
        assert marks[-1] == len(messages) - 1
        if previous is not None and packed.cache.epoch == previous_epoch:
            assert packed.cache.first_change is None
            assert _strip(messages)[: len(previous)] == previous
            appended += 1
        previous, previous_epoch = _strip(messages), packed.cache.epoch
        epochs.add(previous_epoch)
    assert len(epochs) > 2, "40 turns of ~400 tokens in 5,000 start new epochs"
    assert appended > 10, "most packs are within an epoch"


def test_a_short_prompt_is_not_marked() -> None:
    session = cs.Session(6_000, format="anthropic", system="Be brief.")
    session.extend([{"role": "user", "content": "Hi."}, *_turn(0, lines=2)])
    packed = session.pack()
    assert packed.cache.breakpoints == 0
    assert not _marked(packed)
    assert not _system_marked(packed)
    assert packed.messages["system"] == with_notice("Be brief.")


def test_min_cache_tokens_decides_what_pays() -> None:
    session = cs.Session(6_000, format="anthropic", system="Be brief.", min_cache_tokens=1)
    session.extend([{"role": "user", "content": "Hi."}, *_turn(0, lines=2)])
    packed = session.pack()
    assert _system_marked(packed)
    assert _marked(packed) == [len(packed.messages["messages"]) - 1]


def test_a_malformed_anthropic_message_leaves_the_session_as_it_was() -> None:
    session = cs.Session(6_000, format="anthropic", system=SYSTEM)
    twin = cs.Session(6_000, format="anthropic", system=SYSTEM)
    for each in (session, twin):
        each.append({"role": "user", "content": "Fix it."})
    with pytest.raises(cs.MessageFormatError, match="role"):
        session.extend([_turn(0)[0], {"role": "robot", "content": "?"}])
    orphan = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nobody", "content": "x"}]}
    with pytest.raises(cs.MessageFormatError):
        session.append(orphan)
    assert len(session) == len(twin)
    for each in (session, twin):
        each.extend(_turn(1))
    assert session.pack().messages == twin.pack().messages


def test_tools_are_reserved_with_the_tool_use_system_prompt() -> None:
    tool = {"name": "bash", "description": "Run a command.", "input_schema": {"type": "object", "properties": {}}}
    bare = cs.Session(6_000, format="anthropic", system="Be brief.")
    tooled = cs.Session(6_000, format="anthropic", system="Be brief.", tools=[tool])
    for each in (bare, tooled):
        each.extend([{"role": "user", "content": "Hi."}, *_turn(0, lines=2)])
    plain, with_tools = bare.pack(), tooled.pack()
    prompt_system = cs.AnthropicAccounting().tool_system_prompt_tokens
    assert with_tools.tokens - plain.tokens > prompt_system
    assert with_tools.note is not None
    assert "standing in" in with_tools.note
