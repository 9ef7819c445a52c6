"""``pack_messages``: valid, exact and faithful output for OpenAI chat conversations."""

from __future__ import annotations

import base64
import gzip
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxsched as cs
from ctxsched.formats import image_tokens
from tests.fences import as_sent, fenced, fenced_content, with_notice
from tests.packing import words
from tests.reference import reference, reference_tools

#: The fence off: what a user who wants tool results sent as they are sets.
NO_FENCE = cs.Policy.model_validate({"trust": {"fence": "none"}}).trust

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "transcripts" / "public.jsonl.gz"


def reference_count(messages: list[dict[str, Any]], encoding: str = "o200k_base") -> int:
    """OpenAI's published recipe, computed with tiktoken itself (text content only)."""
    enc = reference(encoding)
    total = 3
    for message in messages:
        total += 3 + len(enc.encode_ordinary(message["role"])) + len(enc.encode_ordinary(message.get("content") or ""))
        if "name" in message:
            total += 1 + len(enc.encode_ordinary(message["name"]))
        for call in message.get("tool_calls") or []:
            function = call["function"]
            total += 3 + len(enc.encode_ordinary(function["name"])) + len(enc.encode_ordinary(function["arguments"]))
    return total


def check_valid(
    original: list[dict[str, Any]],
    packed: cs.PackedMessages,
    budget: int,
    repaired: bool = False,
    tools: list[dict[str, Any]] | None = None,
) -> None:
    """The invariants every packed conversation keeps."""
    out = packed.messages
    assert packed.tokens <= budget
    assert packed.tokens == reference_count(out) + reference_tools(tools or []) == cs.count_messages(out, tools=tools)
    # Every tool result follows its call, and every call has its results.
    open_calls: set[str] = set()
    answered: set[str] = set()
    for message in out:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_calls, "a tool result without its call"
            answered.add(message["tool_call_id"])
        for call in message.get("tool_calls") or []:
            open_calls.add(call["id"])
    assert open_calls == answered, "a tool call without its result"
    # System messages, the task and the last user message are kept (cut only if they could not fit whole).
    decision = packed.decision
    users = [i for i, m in enumerate(original) if m["role"] == "user"]
    must_keep = [i for i, m in enumerate(original) if m["role"] in ("system", "developer")] + users[:1] + users[-1:]
    assert all(decision(i).action != "evicted" for i in must_keep)
    # ... and so is the latest turn that made calls, with its results.
    latest = latest_turn(original)
    assert all(decision(i).action != "evicted" for i in latest)
    cut_mandatory = [i for i in must_keep if decision(i).action == "truncated"]
    if cut_mandatory:
        room = budget - 3 - reference_tools(tools or [])
        sent = as_sent(original)  # as the mandatory messages would be sent whole (results fenced)
        assert sum(cs.count_messages([sent[i]]) - 3 for i in set(must_keep) | set(latest)) > room
    by_identity = {id(m): i for i, m in enumerate(original)}
    for message in out:
        if id(message) in by_identity:
            assert decision(by_identity[id(message)]).action == "kept"
        elif not repaired:  # a copy: only the content differs (cut, stubbed, or a tool result fenced)
            index = next(i for i, m in enumerate(original) if {k: v for k, v in m.items() if k != "content"} ==
                         {k: v for k, v in message.items() if k != "content"})  # fmt: skip
            assert original[index]["content"] != message["content"]
            if message["role"] == "tool" and decision(index).action == "kept":
                assert message["content"] == fenced_content(original[index]["content"])
    # Natural order is kept (system messages first).
    positions = [by_identity.get(id(m), -1) for m in out]
    body = [p for p, m in zip(positions, out, strict=True) if m["role"] not in ("system", "developer") and p >= 0]
    assert body == sorted(body)


def latest_turn(messages: list[dict[str, Any]]) -> list[int]:
    """The last assistant message with tool calls, and the results that answer them, if no user message
    came after it."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("tool_calls")]
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not turns or (users and users[-1] > turns[-1]):
        return []
    ids = {call["id"] for call in messages[turns[-1]]["tool_calls"]}
    return [turns[-1]] + [i for i in range(turns[-1] + 1, len(messages)) if messages[i].get("tool_call_id") in ids]


def conversation(tool_sizes: list[int], user_turns: int = 1) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful coding agent."},
        {"role": "user", "content": "Fix the failing test in parser.py.", "x-trace": "abc"},
    ]
    for turn, size in enumerate(tool_sizes):
        call_id = f"call_{turn}"
        arguments = json.dumps({"cmd": f"step {turn}"})
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "bash", "arguments": arguments}}
        ]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": call_id, "content": words(size)})
        if turn % max(1, len(tool_sizes) // max(1, user_turns)) == 0:
            messages.append({"role": "assistant", "content": f"Step {turn} done."})
    messages.append({"role": "user", "content": "Now run the whole suite."})
    return messages


def test_accounting_matches_openais_recipe_and_a_fitting_conversation_comes_back_unchanged() -> None:
    messages = conversation([30, 50, 20])
    messages[1]["name"] = "alice"
    assert cs.count_messages(messages) == reference_count(messages)
    # Tool results are untrusted: fenced copies; the system prompt, a copy with the fence's notice; everything
    # else is the caller's own object.
    packed = cs.pack_messages(messages, 10_000)
    for sent, message in zip(packed.messages, messages, strict=True):
        if message["role"] == "tool":
            assert sent == dict(message, content=fenced(message["content"]))
        elif message is messages[0]:
            assert sent == dict(message, content=with_notice(message["content"]))
        else:
            assert sent is message
    assert packed.tokens == reference_count(packed.messages)
    # With the fence off, the conversation comes back as the very same objects.
    plain = cs.pack_messages(messages, 10_000, policy=cs.chat_policy().model_copy(update={"trust": NO_FENCE}))
    assert all(a is b for a, b in zip(plain.messages, messages, strict=True))
    assert plain.tokens == reference_count(messages)


def test_oversized_tool_results_are_cut_and_the_task_survives() -> None:
    messages = conversation([200, 9000, 300])
    packed = cs.pack_messages(messages, 4000)
    check_valid(messages, packed, 4000)
    big = next(m for m in packed.messages if m["role"] == "tool" and m["tool_call_id"] == "call_1")
    assert "tokens elided" in big["content"]
    assert packed.messages[1] is messages[1]  # the task, with its extra key, untouched


def test_old_tool_results_become_stubs_before_turns_are_dropped() -> None:
    messages = conversation([900] * 12)
    packed = cs.pack_messages(messages, 4000)
    check_valid(messages, packed, 4000)
    assert packed.stubbed
    stub = next(m for m in packed.messages if m["role"] == "tool" and "output removed" in m["content"])
    # A long result's number is estimated from samples (the same in every process, whatever it counted before).
    stated = re.fullmatch(r"\[bash output removed to fit the context window: (~?)([\d,]+) tokens\]", stub["content"])
    assert stated is not None, stub["content"]
    assert stated[1] == "~"
    assert abs(int(stated[2].replace(",", "")) - 900) <= 45
    # The oldest results were stubbed, the newest kept.
    assert packed.stubbed == sorted(packed.stubbed)
    assert packed.messages[-2]["role"] == "tool"
    assert "output removed" not in packed.messages[-2]["content"]
    assert "stubbed: message" in packed.explain()


def test_turns_go_oldest_first_when_stubs_are_not_enough() -> None:
    messages = conversation([900] * 60)
    packed = cs.pack_messages(messages, 2000)
    check_valid(messages, packed, 2000)
    kept_calls = [m["tool_call_id"] for m in packed.messages if m["role"] == "tool"]
    assert kept_calls == sorted(kept_calls, key=lambda call: int(call.split("_")[1]))
    assert "call_59" in kept_calls
    assert "call_0" not in kept_calls


def test_images_and_unknown_parts_cost_what_the_rules_say() -> None:
    accounting = cs.ChatAccounting()
    assert (
        image_tokens({"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}, accounting) == 85
    )
    assert image_tokens({"type": "image_url", "image_url": {"url": "https://x/a.png"}}, accounting) == 765
    sized = {"type": "image_url", "image_url": {"url": "https://x", "width": 1024, "height": 1024}}
    assert image_tokens(sized, accounting) == 765  # 768x768: 4 tiles
    wide = {"type": "image_url", "image_url": {"url": "https://x", "width": 4096, "height": 2048}}
    assert image_tokens(wide, accounting) == 85 + 170 * 6  # 2048x1024 -> 1536x768: 3x2 tiles
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 512, 512) + b"\x08\x02\x00\x00\x00"
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert image_tokens({"type": "image_url", "image_url": {"url": data_url}}, accounting) == 85 + 170
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             {"type": "image_url", "image_url": {"url": data_url}},
                                             {"type": "input_audio", "input_audio": {}}]}]  # fmt: skip
    text = len(reference("o200k_base").encode_ordinary("What is this?"))
    assert cs.count_messages(messages) == 3 + 3 + 1 + text + 255 + accounting.audio_part_tokens
    packed = cs.pack_messages(messages, 1000)
    assert packed.messages[0] is messages[0]
    assert packed.tokens == cs.count_messages(messages)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ("hello", "messages must be a list"),
        ([{"role": "robot", "content": "x"}], r"messages\[0\] has role 'robot'"),
        ([{"role": "user", "content": 3}], r"messages\[0\] has content of type int"),
        ([{"role": "user"}], r"messages\[0\] \(user\) has no content"),
        ([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c1", "content": "r"}],
         r'messages\[1\] is a tool result \("c1"\) that answers no earlier tool call'),
        ([{"role": "user", "content": "x"},
          {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}],
         r'messages\[1\] has tool call "c1" with no result after it'),
        ([{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {}}}]}],
         r"messages\[0\] has tool call 0 whose name or arguments are not str"),
        ([3], r"messages\[0\] must be a dict or an SDK message object, not int"),
    ],
)  # fmt: skip
def test_malformed_messages_raise_a_typed_error_naming_the_message(messages: Any, match: str) -> None:
    with pytest.raises(cs.MessageFormatError, match=match):
        cs.pack_messages(messages, 1000)


def test_repair_drops_orphans_and_unanswered_calls_and_says_so() -> None:
    messages = [
        {"role": "user", "content": "task"},
        {"role": "tool", "tool_call_id": "ghost", "content": "orphan"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "cat", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a.py"},
        {"role": "user", "content": "go on"},
    ]  # fmt: skip
    packed = cs.pack_messages(messages, 1000, repair=True)
    check_valid(messages, packed, 1000, repaired=True)
    assert len(packed.repairs) == 2
    assert "dropped message 1" in packed.repairs[0]
    assert 'removed tool call "c2" with no results from message 2' in packed.repairs[1]
    assert [call["id"] for call in packed.messages[1]["tool_calls"]] == ["c1"]


def test_a_budget_too_small_for_the_task_raises_budget_error() -> None:
    with pytest.raises(cs.BudgetError):
        cs.pack_messages(conversation([10]), 10)
    with pytest.raises(ValueError, match="format must be one of 'openai'"):
        cs.pack_messages(conversation([10]), 1000, format="gemini")


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append(
            {"role": draw(st.sampled_from(["system", "developer"])), "content": words(draw(st.integers(1, 200)))}
        )
    messages.append({"role": "user", "content": words(draw(st.integers(1, 300)))})
    for turn in range(draw(st.integers(0, 25))):
        shape = draw(st.sampled_from(["calls", "text", "user"]))
        if shape == "calls":
            ids = [f"t{turn}_{n}" for n in range(draw(st.integers(1, 3)))]
            messages.append({"role": "assistant", "content": draw(st.none() | st.just("thinking")), "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "run", "arguments": words(draw(st.integers(0, 40)))}}
                for i in ids]})  # fmt: skip
            messages.extend(
                {"role": "tool", "tool_call_id": i, "content": words(draw(st.integers(0, 3000)))} for i in ids
            )
        else:
            messages.append(
                {"role": "assistant" if shape == "text" else "user", "content": words(draw(st.integers(1, 400)))}
            )
            if draw(st.booleans()):
                messages[-1]["name"] = draw(st.sampled_from(["alice", "build_bot"]))
    return messages


@given(messages=conversations(), budget=st.integers(1200, 12_000))
def test_generated_conversations_pack_valid_exact_and_faithful(messages: list[dict[str, Any]], budget: int) -> None:
    try:
        packed = cs.pack_messages(messages, budget)
    except cs.BudgetError:  # only when the mandatory messages' framing and tool calls alone are too big
        assert budget < 1500
        return
    check_valid(messages, packed, budget)
    if cs.count_messages(as_sent(messages)) <= budget:
        assert packed.messages == as_sent(messages)


def _transcripts() -> list[dict[str, Any]]:
    if not TRANSCRIPTS.exists():
        pytest.skip(f"the shared transcripts are not present at {TRANSCRIPTS}")
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def tools_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function definitions for the tools a transcript calls, with the argument keys it uses as properties."""
    keys: dict[str, dict[str, Any]] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call["function"]
            try:
                arguments = json.loads(function["arguments"] or "{}")
            except json.JSONDecodeError:
                arguments = {}
            properties = keys.setdefault(function["name"], {})
            for key in arguments if isinstance(arguments, dict) else ():
                properties[key] = {"type": "string", "description": f"The {key} to use."}
    return [
        {"type": "function", "function": {"name": name, "description": f"Call {name}.",
                                          "parameters": {"type": "object", "properties": properties}}}
        for name, properties in keys.items()
    ]  # fmt: skip


@pytest.mark.parametrize("with_tools", [False, True])
@pytest.mark.parametrize("budget", [4000, 8000, 32_000])
def test_every_shared_transcript_packs_valid_at_each_budget(budget: int, with_tools: bool) -> None:
    failures = []
    for transcript in _transcripts():
        messages = transcript["messages"]
        tools = tools_of(messages) if with_tools else None
        try:
            packed = cs.pack_messages(messages, budget, tools=tools)
        except cs.BudgetError as error:
            failures.append((transcript["id"], str(error)[:200]))
            continue
        check_valid(messages, packed, budget, tools=tools)
    assert not failures, failures[:5]


def test_a_huge_tool_result_stub_states_an_estimate_marked_as_such() -> None:
    messages = conversation([200, 300])
    messages[3]["content"] = "status: ok, 12 files checked\n" * 40_000  # ~1.2 MB
    messages += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "Now the docs. " * 400}]
    packed = cs.pack_messages(messages, 1_900)
    check_valid(messages, packed, 1_900)
    stub = next(m["content"] for m in packed.messages if m["role"] == "tool" and "output removed" in m["content"])
    number = int(stub.split(": ~", 1)[1].split(" tokens", 1)[0].replace(",", ""))
    exact = len(reference("o200k_base").encode_ordinary(messages[3]["content"]))
    assert abs(number - exact) < exact * 0.1, (number, exact)


def test_replayed_at_8k_every_call_after_a_tool_result_sees_that_result() -> None:
    lost = []
    for transcript in _transcripts()[::4]:  # every fourth transcript: ~3,000 packs
        messages = transcript["messages"]
        for turn in range(1, len(messages)):
            if messages[turn]["role"] == "assistant" and messages[turn - 1]["role"] == "tool":
                packed = cs.pack_messages(messages[:turn], 8000)
                if packed.decision(turn - 1).action == "evicted":
                    lost.append((transcript["id"], turn))
    assert not lost, lost[:5]
