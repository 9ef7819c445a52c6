"""``pack_messages(format="anthropic")``: valid Anthropic conversations back, counted with a stated stand-in."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched as cs
from ctxsched.formats import AnthropicAccounting
from tests.fences import fenced, fenced_content, with_notice
from tests.packing import words


def conversation(sizes: list[int], system: Any = "You are a careful agent.") -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test.", "x-id": 1}]
    for turn, size in enumerate(sizes):
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Step {turn}."},
            {"type": "tool_use", "id": f"toolu_{turn}", "name": "bash", "input": {"cmd": f"run {turn}"}}]})  # fmt: skip
        results: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": words(size)}
        ]
        if turn == len(sizes) - 1:
            results.append({"type": "text", "text": "Now run the whole suite."})
        messages.append({"role": "user", "content": results})
    if not sizes:
        messages += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "Thanks; now the suite."}]
    return {"system": system, "messages": messages, "model": "claude-x"}


def check_valid(original: dict[str, Any], packed: cs.PackedMessages, task_whole: bool = True) -> None:
    """A valid Anthropic request; with ``task_whole``, its first message is the caller's own task object (a
    summary merged into it makes a copy)."""
    out = packed.messages
    messages = out["messages"]
    assert out["model"] == original["model"]
    assert messages[0]["role"] == "user"
    assert all(a["role"] != b["role"] for a, b in pairwise(messages))  # alternation
    for previous, message in pairwise(messages):
        content = message["content"] if isinstance(message["content"], list) else []
        uses = (
            {b["id"] for b in previous["content"] if b.get("type") == "tool_use"}
            if isinstance(previous["content"], list)
            else set()
        )
        for block in content:
            if block.get("type") == "tool_result":
                assert block["tool_use_id"] in uses, "a tool_result not right after its tool_use"
    for position, message in enumerate(messages):
        calls = (
            [b["id"] for b in message["content"] if b.get("type") == "tool_use"]
            if isinstance(message["content"], list)
            else []
        )
        if calls:
            following = messages[position + 1]["content"]
            answered = {b["tool_use_id"] for b in following if b.get("type") == "tool_result"}
            assert set(calls) <= answered, "a tool_use without its result"
    assert packed.tokens <= packed.result.budget
    assert packed.note
    assert "standing in for Claude's tokenizer" in packed.note
    if task_whole:
        assert messages[0] is original["messages"][0]  # the task
    else:
        assert messages[0]["content"][: len(original["messages"][0]["content"])] in (
            original["messages"][0]["content"],
            [{"type": "text", "text": original["messages"][0]["content"]}],
        )


def test_a_fitting_conversation_comes_back_as_the_same_objects() -> None:
    original = conversation([20, 30])
    packed = cs.pack_messages(original, 10_000, format="anthropic")
    check_valid(original, packed)
    # Messages with tool results come back as copies with those results fenced; the rest are the caller's.
    for sent, message in zip(packed.messages["messages"], original["messages"], strict=True):
        results = isinstance(message["content"], list) and any(b["type"] == "tool_result" for b in message["content"])
        if not results:
            assert sent is message
            continue
        for sent_block, block in zip(sent["content"], message["content"], strict=True):
            if block["type"] == "tool_result":
                assert sent_block == dict(block, content=fenced_content(block["content"]))
            else:
                assert sent_block == block
    assert packed.messages["system"] == with_notice(original["system"])


def test_a_long_conversation_is_packed_valid_with_its_task_system_and_last_message() -> None:
    original = conversation([900] * 25)
    packed = cs.pack_messages(original, 6000, format="anthropic")
    check_valid(original, packed)
    assert packed.result.budget == int(6000 / 1.2)
    last = packed.messages["messages"][-1]["content"]
    assert last[-1] == {"type": "text", "text": "Now run the whole suite."}
    assert packed.stubbed or len(packed.messages["messages"]) < len(original["messages"])
    assert packed.messages["system"] == with_notice(original["system"])


def test_the_stand_in_and_margin_are_configurable_and_stated() -> None:
    original = conversation([500] * 10, system=[{"type": "text", "text": "You are terse."}])
    accounting = AnthropicAccounting(stand_in="o200k_base", margin=0.5)
    packed = cs.pack_messages(original, 3000, format="anthropic", anthropic=accounting)
    check_valid(original, packed)
    assert packed.result.budget == 2000
    assert packed.note
    assert "o200k_base" in packed.note
    assert "50%" in packed.note


@pytest.mark.parametrize(
    ("conversation_", "match"),
    [
        ([{"role": "user", "content": "x"}], 'a dict with a "messages" list'),
        ({"messages": [{"role": "system", "content": "x"}]}, r"messages\[0\] has role 'system'"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, r"messages\[0\] is not the user's"),
        ({"messages": [{"role": "user", "content": 5}]}, r"messages\[0\] has content of type int"),
        ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]}]},
         r'messages\[0\] is a tool result \("t"\) that answers no earlier tool call'),
    ],
)  # fmt: skip
def test_malformed_conversations_raise_naming_the_message(conversation_: Any, match: str) -> None:
    with pytest.raises(cs.MessageFormatError, match=match):
        cs.pack_messages(conversation_, 1000, format="anthropic")


def test_errors_name_the_anthropic_message_even_with_a_system_prompt() -> None:
    original = {"system": "sys", "messages": [
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "ghost", "content": "r"}]}]}  # fmt: skip
    with pytest.raises(cs.MessageFormatError, match=r'^messages\[2\] is a tool result \("ghost"\)'):
        cs.pack_messages(original, 1000, format="anthropic")


def test_repair_drops_orphaned_results_and_unanswered_tool_uses_naming_anthropic_messages() -> None:
    use = {"type": "tool_use", "name": "bash", "input": {"cmd": "ls"}}
    looking = {"type": "text", "text": "Looking."}
    original = {"system": "sys", "messages": [
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": [looking, {**use, "id": "a"}, {**use, "id": "b"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "out"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "ghost", "content": "r"},
                                     {"type": "text", "text": "continue"}]}]}  # fmt: skip
    with pytest.raises(cs.MessageFormatError):
        cs.pack_messages(original, 1000, format="anthropic")
    packed = cs.pack_messages(original, 1000, format="anthropic", repair=True)
    messages = packed.messages["messages"]
    assert [block.get("id") for block in messages[1]["content"]] == [None, "a"]  # tool_use b had no result
    assert messages[2]["content"] == [{"type": "tool_result", "tool_use_id": "a", "content": fenced("out")}]
    assert messages[4]["content"] == [{"type": "text", "text": "continue"}]  # the orphaned result is gone
    assert any("message 4" in repair and "ghost" in repair for repair in packed.repairs), packed.repairs
    assert any("message 1" in repair and '"b"' in repair for repair in packed.repairs), packed.repairs
    assert "repaired:" in packed.explain()


@given(sizes=st.lists(st.integers(0, 2500), max_size=20), budget=st.integers(2000, 20_000))
def test_generated_conversations_are_valid(sizes: list[int], budget: int) -> None:
    original = conversation(sizes)
    check_valid(original, cs.pack_messages(original, budget, format="anthropic"))


def test_images_cost_anthropics_published_estimate() -> None:
    import base64
    import struct

    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 1000, 750) + b"\x08\x02\x00\x00\x00"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(png).decode()}}  # fmt: skip
    with_image = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]}
    without = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"}]}]}
    accounting = AnthropicAccounting(margin=0.0)
    cost = (cs.pack_messages(with_image, 10_000, format="anthropic", anthropic=accounting).tokens
            - cs.pack_messages(without, 10_000, format="anthropic", anthropic=accounting).tokens)  # fmt: skip
    assert cost == 1000 * 750 // 750 + 1
