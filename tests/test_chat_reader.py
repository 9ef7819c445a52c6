"""The one chat reader: every shape the providers take, counted by a reference written here, packed valid."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched as cs
from tests.fences import as_sent, has_text
from tests.packing import words
from tests.reference import reference, reference_tools

ENC = "o200k_base"
AUDIO, FILE, UNKNOWN, IMAGE = 500, 1500, 100, 765  # ChatAccounting's defaults, as documented


def n(text: str) -> int:
    return len(reference(ENC).encode_ordinary(text))


def png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x02\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(header).decode()


def image_cost(width: int, height: int) -> int:
    """OpenAI's tile rule, written out independently."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    if min(w, h) > 768:
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def part_cost(part: dict[str, Any]) -> int:
    kind = part["type"]
    if kind in ("text", "input_text", "output_text"):
        return n(part["text"])
    if kind == "refusal":
        return n(part["refusal"])
    if kind == "image_url":
        image = part["image_url"]
        if image.get("detail") == "low":
            return 85
        if "width" in image:
            return image_cost(image["width"], image["height"])
        return IMAGE
    return {"input_audio": AUDIO, "file": FILE}.get(kind, UNKNOWN)


def plain(message: Any) -> dict[str, Any]:
    return message.model_dump(exclude_none=True) if hasattr(message, "model_dump") else message


def reference_count(messages: list[Any], tools: list[dict[str, Any]] | None = None) -> int:
    """OpenAI's published recipe with tiktoken: 3 per message + role + content (+ 1 + name), 3 + name +
    arguments per call (legacy function calls alike), 3 for the reply priming; tools by the cookbook."""
    total = 3
    for message in map(plain, messages):
        total += 3 + n(message["role"])
        content = message.get("content")
        if isinstance(content, str):
            total += n(content)
        elif isinstance(content, list):
            total += sum(part_cost(part) for part in content)
        if "name" in message:
            total += 1 + n(message["name"])
        if message.get("refusal"):
            total += n(message["refusal"])
        calls = [call["function"] for call in message.get("tool_calls") or []]
        calls += [message["function_call"]] if message.get("function_call") else []
        total += sum(3 + n(call["name"]) + n(call.get("arguments", "")) for call in calls)
    return total + reference_tools(tools or [])


def check_pairs(out: list[Any]) -> None:
    """Every result answers the nearest unanswered call with its id, and every call is answered."""
    open_calls: dict[str | None, int] = {}
    for message in map(plain, out):
        if message["role"] == "tool":
            assert open_calls.get(message["tool_call_id"], 0) > 0, "a tool result without its call"
            open_calls[message["tool_call_id"]] -= 1
        if message["role"] == "function":
            assert open_calls.get(None, 0) > 0, "a function result without its call"
            open_calls[None] -= 1
        for call in message.get("tool_calls") or []:
            open_calls[call["id"]] = open_calls.get(call["id"], 0) + 1
        if message.get("function_call"):
            open_calls[None] = open_calls.get(None, 0) + 1
    assert not any(open_calls.values()), f"calls without results: {open_calls}"


ids = st.sampled_from(["call_1", "call_2", "call_3"])  # few, so that ids repeat across turns
text = st.builds(words, st.integers(0, 400))
parts = st.lists(
    st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.builds(
            lambda w, h, low: {"type": "image_url", "image_url": {"url": "https://x/i.png", "width": w, "height": h,
                                                                  **({"detail": "low"} if low else {})}},
            st.integers(1, 5000), st.integers(1, 5000), st.booleans()),
        st.just({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
        st.just({"type": "file", "file": {"file_id": "file-1"}}),
        st.just({"type": "video", "video": {}}),
    ),
    min_size=1, max_size=4,
)  # fmt: skip


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(text)})
    messages.append({"role": "user", "content": draw(st.one_of(text, parts))})
    for _ in range(draw(st.integers(0, 12))):
        shape = draw(st.sampled_from(["calls", "legacy", "text", "user", "refusal"]))
        if shape == "calls":
            calls = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
            messages.append({"role": "assistant", "content": draw(st.none() | text), "tool_calls": [
                {"id": i, "type": "function", "function": {"name": draw(st.sampled_from(["bash", "read"])),
                                                           "arguments": json.dumps({"q": draw(text)})}}
                for i in calls]})  # fmt: skip
            for i in draw(st.permutations(calls)):
                messages.append({"role": "tool", "tool_call_id": i, "content": draw(st.one_of(text, parts))})
        elif shape == "legacy":
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "lookup", "arguments": json.dumps({"q": draw(text)})},
                }
            )
            messages.append({"role": "function", "name": "lookup", "content": draw(text)})
        elif shape == "refusal":
            messages.append({"role": "assistant", "content": None, "refusal": "I can't help with that."})
        else:
            role = "assistant" if shape == "text" else "user"
            messages.append({"role": role, "content": draw(text), **({"name": "bob"} if draw(st.booleans()) else {})})
    # What `messages.append(response.choices[0].message)` leaves: the SDK's own objects for some replies.
    return [as_sdk_object(m) if m["role"] == "assistant" and draw(st.booleans()) else m for m in messages]


def as_sdk_object(message: dict[str, Any]) -> Any:
    from openai.types.chat import ChatCompletionMessage

    return ChatCompletionMessage.model_validate({"content": None, **message})


TOOLS = [
    {"type": "function", "function": {"name": "bash", "description": "Run a shell command.", "parameters": {
        "type": "object", "properties": {"cmd": {"type": "string", "description": "The command."},
                                         "shell": {"type": "string", "enum": ["sh", "bash", "zsh"]}}}}},
    {"type": "function", "function": {"name": "read", "description": "Read a file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "noop", "description": ""}},
]  # fmt: skip


@given(messages=conversations(), with_tools=st.booleans())
def test_every_shape_is_counted_as_the_published_recipe_counts_it(messages: list[Any], with_tools: bool) -> None:
    tools = TOOLS if with_tools else None
    assert cs.count_messages(messages, tools=tools) == reference_count(messages, tools)


@given(messages=conversations(), budget=st.integers(2_000, 12_000), with_tools=st.booleans())
def test_every_shape_packs_valid_and_exact(messages: list[Any], budget: int, with_tools: bool) -> None:
    tools = TOOLS if with_tools else None
    try:
        packed = cs.pack_messages(messages, budget, tools=tools)
    except cs.BudgetError:  # the uncuttable parts (content parts, calls) of the mandatory messages alone
        mandatory = [m for m in messages if plain(m)["role"] in ("system", "developer", "user")]
        assert reference_count(mandatory, tools) > budget
        return
    assert packed.tokens <= budget
    assert packed.tokens == reference_count(packed.messages, tools)
    check_pairs(packed.messages)
    kept = {id(m) for m in packed.messages}
    systems = [index for index, message in enumerate(messages) if plain(message)["role"] in ("system", "developer")]
    for index, message in enumerate(messages):
        # A kept tool result is sent fenced, as a copy, and the first system message with text carries the
        # fence's notice; every other kept message is the caller's object.
        result = plain(message)["role"] in ("tool", "function") and has_text(plain(message).get("content"))
        noticed = bool(systems) and index == systems[0] and has_text(plain(message).get("content"))
        assert (id(message) in kept) == (packed.decision(index).action == "kept" and not result and not noticed)


def test_a_reused_call_id_is_answered_by_the_next_result() -> None:
    def turn(call_id: str, output: str) -> list[dict[str, Any]]:
        call = {"id": call_id, "type": "function", "function": {"name": "bash", "arguments": "{}"}}
        return [{"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call_id, "content": output}]  # fmt: skip

    messages = [{"role": "user", "content": "go"}, *turn("t", "one " * 2000), *turn("t", "two " * 2000),
                *turn("t", "three")]  # fmt: skip
    packed = cs.pack_messages(messages, 1_000)
    check_pairs(packed.messages)
    assert packed.tokens == reference_count(packed.messages) <= 1_000
    assert packed.messages[-1] == as_sent(messages)[-1]  # the latest result, whole (and fenced)
    # Each result is in the group of its own call: a turn and its result go or stay together.
    for call, result in ((1, 2), (3, 4)):
        assert (packed.decision(call).action == "evicted") == (packed.decision(result).action == "evicted")


def test_the_sdks_objects_are_read_and_given_back_as_they_were() -> None:
    from openai.types.chat import ChatCompletionMessage

    call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}}
    reply = ChatCompletionMessage.model_validate({"role": "assistant", "content": "Let me look.", "tool_calls": [call]})
    messages = [{"role": "user", "content": "What is here?"}, reply,
                {"role": "tool", "tool_call_id": "c1", "content": "a.py\n" * 5000}]  # fmt: skip
    assert cs.count_messages(messages) == reference_count(messages)
    packed = cs.pack_messages(messages, 100_000)
    assert packed.messages[1] is reply
    cut = cs.pack_messages(messages, 1_000)
    assert cut.messages[1] is reply
    assert cut.messages[2] is not messages[2]
    assert cut.tokens == reference_count(cut.messages) <= 1_000


def test_anthropic_sdk_blocks_are_read_too() -> None:
    from anthropic.types import TextBlock, ToolUseBlock

    blocks = [TextBlock(type="text", text="Looking."), ToolUseBlock(type="tool_use", id="u1", name="ls", input={})]
    conversation = {"messages": [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "u1", "content": "a.py"}]},
    ]}  # fmt: skip
    packed = cs.pack_messages(conversation, 5_000, format="anthropic")
    assert packed.messages["messages"][1] is conversation["messages"][1]
    assert [d.action for d in packed.result.decisions] == ["kept"] * len(packed.result.decisions)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "function", "content": "x"}], r"messages\[0\] is a function result without a str name"),
        ([{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "r"}],
         r"messages\[1\] is a function result that answers no earlier tool call"),
        ([{"role": "user", "content": "x"}, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}],
         r"messages\[1\] has a function_call with no result after it"),
        ([{"role": "assistant", "content": None, "function_call": {"name": 3}}],
         r"messages\[0\] has a function_call whose name or arguments are not str"),
        ([{"role": "user", "content": [{"type": "text"}]}], r"messages\[0\] has text part 0 without a str text"),
        ([{"role": "user", "content": ["hi"]}], r"messages\[0\] has content part 0 of type str, not dict"),
        ([{"role": "assistant", "content": None, "refusal": 5}], r"messages\[0\] has a refusal of type int"),
        ([{"role": "assistant", "content": None, "tool_calls": {}}], r"messages\[0\] has tool_calls of type dict"),
        ([{"role": "tool", "content": "x"}], r"messages\[0\] is a tool result without a str tool_call_id"),
        ([{"role": "user", "content": "x", "name": 3}], r"messages\[0\] has a name of type int, not str"),
        ({"role": "user"}, r"messages must be a list of messages, not dict"),
    ],
)  # fmt: skip
def test_malformed_shapes_raise_naming_the_message(messages: Any, match: str) -> None:
    with pytest.raises(cs.MessageFormatError, match=match):
        cs.pack_messages(messages, 1_000)
    if "result" not in match:  # counting reads each message; only packing pairs calls with results
        with pytest.raises(cs.MessageFormatError, match=match):
            cs.count_messages(messages)


def test_repair_removes_an_unanswered_legacy_call_and_keeps_the_text() -> None:
    messages = [{"role": "user", "content": "x"},
                {"role": "assistant", "content": "Thinking.", "function_call": {"name": "f", "arguments": "{}"}},
                {"role": "user", "content": "and?"}]  # fmt: skip
    packed = cs.pack_messages(messages, 1_000, repair=True)
    assert packed.messages[1] == {"role": "assistant", "content": "Thinking."}
    assert packed.repairs == ["removed a function_call with no results from message 1"]
    assert packed.tokens == reference_count(packed.messages)


def test_tool_definitions_are_counted_reserved_and_explained() -> None:
    messages = [{"role": "user", "content": "hello"}]
    assert cs.count_messages(messages, tools=TOOLS) == reference_count(messages) + reference_tools(TOOLS)
    packed = cs.pack_messages(messages, 1_000, tools=TOOLS)
    assert packed.tokens == reference_count(messages, TOOLS)
    assert packed.tools_tokens == reference_tools(TOOLS)
    assert [name for name, _ in packed.tools] == ["bash", "read", "noop"]
    assert f"tools: {reference_tools(TOOLS)} tokens for 3 definitions" in packed.explain()
    # The definitions alone do not fit: a BudgetError that names them.
    with pytest.raises(cs.BudgetError, match=r"the tool definitions alone need \d+ tokens .* bash \(\d+ tokens\)"):
        cs.pack_messages(messages, reference_tools(TOOLS), tools=TOOLS)
    # The room they take is not given to the conversation.
    long = [{"role": "user", "content": "task"}, {"role": "user", "content": words(3_000)}]
    assert cs.pack_messages(long, 2_000, tools=TOOLS).tokens <= 2_000
    # Other constants (gpt-4's func_init), and the Responses shape of a tool.
    gpt4 = cs.ToolAccounting(func_init=10)
    assert cs.count_messages(messages, tools=TOOLS, tool_accounting=gpt4) == reference_count(messages, TOOLS) + 9
    flat = [{"type": "function", **TOOLS[0]["function"]}]
    assert cs.count_messages(messages, tools=flat) == reference_count(messages, TOOLS[:1])
    with pytest.raises(TypeError, match="tools must be a list"):
        cs.count_messages(messages, tools="bash")  # type: ignore[arg-type]


def test_nested_schemas_count_their_inner_properties() -> None:
    nested = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
        "type": "object", "properties": {"filter": {"type": "object", "properties": {
            "field": {"type": "string", "description": "A field"}}}}}}}]  # fmt: skip
    flat_part = 7 + n("f:d") + 3 + 3 + n("filter:object:") + 12
    assert cs.count_messages([], tools=nested) - 3 == flat_part + 3 + 3 + n("field:string:A field")


def test_the_latest_result_is_kept_when_the_task_fills_the_window() -> None:
    messages = [
        {"role": "system", "content": words(1_500)},
        {"role": "user", "content": words(2_500)},
        {"role": "assistant", "content": words(300),
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "\n".join(f"line {i}" for i in range(2_000))},
    ]  # fmt: skip
    packed = cs.pack_messages(messages, 4_000)
    assert [plain(m)["role"] for m in packed.messages] == ["system", "user", "assistant", "tool"]
    assert packed.decision(1).action == "truncated"  # the task was cut for it
    assert packed.tokens == reference_count(packed.messages) <= 4_000
    # If even the cut mandatory set cannot hold it, it goes like any other turn, and the note says so.
    messages[2]["tool_calls"][0]["function"]["arguments"] = json.dumps({"text": words(5_000)})
    packed = cs.pack_messages(messages, 4_000)
    assert packed.note
    assert "latest turn (from message 2)" in packed.note
    check_pairs(packed.messages)


def test_decision_is_found_by_message_index() -> None:
    messages = [{"role": "user", "content": f"message {i}"} for i in range(5_000)]
    packed = cs.pack_messages(messages, 100_000)
    assert packed.decision(4_321).id == "4321:user"
    with pytest.raises(KeyError):
        packed.decision(5_000)


def test_the_longest_text_part_of_a_list_content_is_cut_and_the_other_parts_kept() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "low"}}
    output = [{"type": "text", "text": "exit 0"}, {"type": "text", "text": "line\n" * 20_000}, image]
    call = {"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "run it"}]},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c", "content": output}]  # fmt: skip
    packed = cs.pack_messages(messages, 2_000)
    result = packed.messages[2]["content"]
    assert result[0] == output[0]
    assert result[2] == output[2]
    assert result[1]["type"] == "text"
    assert 0 < len(result[1]["text"]) < len(output[1]["text"])
    assert packed.tokens == reference_count(packed.messages) <= 2_000
    assert messages[2]["content"][1]["text"] == "line\n" * 20_000  # the input is untouched


def test_anthropic_text_blocks_are_cut_in_results_and_in_the_latest_turn() -> None:
    blocks = [{"type": "text", "text": "ok"}, {"type": "text", "text": "row\n" * 30_000}]
    conversation = {"messages": [
        {"role": "user", "content": "inspect the table"},
        {"role": "assistant", "content": [{"type": "text", "text": "Thinking aloud. " * 3_000},
                                          {"type": "tool_use", "id": "u1", "name": "sql", "input": {"q": "select"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "u1", "content": blocks}]},
    ]}  # fmt: skip
    packed = cs.pack_messages(conversation, 4_000, format="anthropic")
    assistant, user = packed.messages["messages"][1:]
    assert assistant["content"][1]["id"] == "u1"
    assert 0 < len(assistant["content"][0]["text"]) < 3_000 * 16  # the latest turn's text, cut in the middle
    result = user["content"][0]["content"]
    assert result[0] == blocks[0]
    assert 0 < len(result[1]["text"]) < len(blocks[1]["text"])


def test_anthropic_blocks_that_cannot_be_read_raise_naming_the_message() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    use = {"type": "tool_use", "id": "u", "name": "n", "input": cyclic}
    conversation = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [use]}]}
    with pytest.raises(cs.MessageFormatError, match=r"messages\[1\] has tool_use block 0 whose input is not JSON"):
        cs.pack_messages(conversation, 1_000, format="anthropic")
    bad_result = {
        "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "u", "content": 5}]}]
    }
    with pytest.raises(cs.MessageFormatError, match=r"messages\[0\] has tool_result block 0 with content of type int"):
        cs.pack_messages(bad_result, 1_000, format="anthropic")


def test_budgets_below_the_reserve_say_so() -> None:
    with pytest.raises(cs.BudgetError, match="a budget of 2 tokens leaves no room: the output reserve"):
        cs.pack_messages([{"role": "user", "content": "go"}], 2)
    with pytest.raises(cs.BudgetError, match="the mandatory set needs"):
        cs.pack_messages([{"role": "user", "content": "go"}], 4)


def test_tool_definitions_may_be_pydantic_objects_and_must_be_json_data() -> None:
    from pydantic import BaseModel

    class Tool(BaseModel):
        type: str
        function: dict[str, Any]

    as_objects = [Tool.model_validate(tool) for tool in TOOLS]
    assert cs.count_messages([], tools=as_objects) == cs.count_messages([], tools=TOOLS) == 3 + reference_tools(TOOLS)
    with pytest.raises(TypeError, match="tools must be JSON data"):
        cs.count_messages([], tools=[{"type": "function", "function": {"name": "f", "x": object()}}])
