"""``format="responses"``: OpenAI Responses input items, as the Agents SDK sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched as cs
from tests.packing import words
from tests.reference import reference


def n(text: str) -> int:
    return len(reference("o200k_base").encode_ordinary(text))


def reference_count(items: list[dict[str, Any]]) -> int:
    """The chat recipe applied to items, written out here: a message item 3 + role + content; a call 3 +
    name + arguments; an output 3 + "tool" + output; a reasoning item 3 + "reasoning" + its texts."""
    total = 3
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            content = item["content"]
            texts = [content] if isinstance(content, str) else [part["text"] for part in content]
            total += 3 + n(item["role"]) + sum(map(n, texts))
        elif kind == "function_call":
            total += 3 + n(item["name"]) + n(item["arguments"])
        elif kind == "function_call_output":
            total += 3 + n("tool") + n(item["output"])
        elif kind == "reasoning":
            texts = [part["text"] for part in item["summary"]] + [item.get("encrypted_content", "")]
            total += 3 + n("reasoning") + sum(map(n, texts))
    return total


def check_valid(items: list[dict[str, Any]], packed: cs.PackedMessages) -> None:
    out = packed.messages
    open_calls: dict[str, int] = {}
    for item in out:
        if item.get("type") == "function_call":
            open_calls[item["call_id"]] = open_calls.get(item["call_id"], 0) + 1
        if item.get("type") == "function_call_output":
            assert open_calls.get(item["call_id"], 0) > 0, "an output without its call"
            open_calls[item["call_id"]] -= 1
    assert not any(open_calls.values()), "a call without its output"
    # A reasoning item is followed by what followed it (whole or cut: by input position, not identity).
    assert len(packed.indices) == len(out)
    for position, index in enumerate(packed.indices):
        if items[index].get("type") == "reasoning" and index + 1 < len(items):
            assert position + 1 < len(out)
            assert packed.indices[position + 1] == index + 1
        if out[position] is not items[index]:  # a copy: only its content or output changed
            changed = {
                key
                for key in out[position].keys() | items[index].keys()
                if out[position].get(key) != items[index].get(key)
            }
            assert changed <= {"content", "output"}, changed


text = st.builds(words, st.integers(0, 500))


@st.composite
def item_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"role": "developer", "content": draw(text)}]
    items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": draw(text)}]})
    for turn in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            items.append(
                {
                    "type": "reasoning",
                    "id": f"rs_{turn}",
                    "summary": [{"type": "summary_text", "text": draw(text)}],
                    "encrypted_content": "gAAAAB" * draw(st.integers(0, 50)),
                }
            )
        shape = draw(st.sampled_from(["calls", "say", "user"]))
        if shape == "calls":
            calls = [f"call_{draw(st.integers(0, 2))}_{k}" for k in range(draw(st.integers(1, 3)))]
            calls = list(dict.fromkeys(calls))
            items += [{"type": "function_call", "call_id": c, "name": "bash",
                       "arguments": json.dumps({"q": draw(text)})} for c in calls]  # fmt: skip
            items += [{"type": "function_call_output", "call_id": c, "output": words(draw(st.integers(0, 3000)))}
                      for c in calls]  # fmt: skip
        elif shape == "say":
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": draw(text)}]})  # fmt: skip
        else:
            items.append({"role": "user", "content": draw(text)})
    return items


@given(items=item_lists())
def test_items_are_counted_by_the_recipe(items: list[dict[str, Any]]) -> None:
    assert cs.count_messages(items, format="responses") == reference_count(items)


@given(items=item_lists(), budget=st.integers(2_500, 12_000))
def test_items_pack_valid_and_exact(items: list[dict[str, Any]], budget: int) -> None:
    try:
        packed = cs.pack_messages(items, budget, format="responses")
    except cs.BudgetError:
        return
    assert packed.tokens == reference_count(packed.messages) <= budget
    check_valid(items, packed)


def test_outputs_are_cut_under_their_output_key_and_kept_items_are_the_callers() -> None:
    items = [
        {"role": "user", "content": "list the files"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Run ls."}]},
        {"type": "function_call", "call_id": "c1", "name": "bash", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "a.py\n" * 5_000},
    ]
    packed = cs.pack_messages(items, 1_000, format="responses")
    assert packed.messages[:3] == items[:3]
    assert all(a is b for a, b in zip(packed.messages[:3], items, strict=False))
    assert packed.messages[3]["output"] != items[3]["output"]
    assert "content" not in packed.messages[3]
    assert packed.tokens == reference_count(packed.messages) <= 1_000


def test_other_item_types_pair_by_call_id_and_unknown_ones_are_kept_whole() -> None:
    items = [
        {"role": "user", "content": "click it"},
        {"type": "computer_call", "call_id": "k1", "action": {"type": "click", "x": 1, "y": 2}},
        {"type": "computer_call_output", "call_id": "k1", "output": {"type": "computer_screenshot"}},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "item_reference", "id": "msg_1"},
    ]
    packed = cs.pack_messages(items, 10_000, format="responses")
    assert all(a is b for a, b in zip(packed.messages, items, strict=True))
    with pytest.raises(cs.MessageFormatError, match=r"messages\[2\] is a tool result \(\"k2\"\)"):
        cs.pack_messages([items[0], items[1], {**items[2], "call_id": "k2"}], 10_000, format="responses")


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([{"type": "message", "role": "tool", "content": "x"}], r"messages\[0\] has role 'tool'; message items"),
        ([{"type": "message", "role": "user"}], r"messages\[0\] \(user\) has no content"),
        ([{"type": "function_call", "name": "f", "arguments": "{}"}], r"messages\[0\] is a function_call without"),
        ([{"type": "function_call_output", "output": "x"}], r"messages\[0\] is a call output without a str call_id"),
        ([{"type": 3}], r"messages\[0\] has a type of type int"),
    ],
)
def test_malformed_items_raise_naming_the_item(items: list[Any], match: str) -> None:
    with pytest.raises(cs.MessageFormatError, match=match):
        cs.pack_messages(items, 1_000, format="responses")
