"""The LangChain integration: BaseMessages in, BaseMessages out, kept ones untouched."""

from __future__ import annotations

import pytest

import ctxsched as cs
from tests.fences import fenced, with_notice
from tests.packing import words

messages_module = pytest.importorskip("langchain_core.messages", reason="langchain-core is not installed")
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)

from ctxsched.integrations.langchain import pack_messages, pack_messages_with_result  # noqa: E402


def history(turns: int, size: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [SystemMessage("You are a careful agent."), HumanMessage("Fix the bug.", id="task")]
    for turn in range(turns):
        messages.append(AIMessage("", tool_calls=[{"id": f"c{turn}", "name": "bash", "args": {"cmd": f"step {turn}"}}]))
        messages.append(ToolMessage(words(size), tool_call_id=f"c{turn}", name="bash"))
    messages.append(HumanMessage("Run the suite."))
    return messages


def test_a_fitting_history_comes_back_as_the_same_objects() -> None:
    messages = history(3, 50)
    packed = pack_messages(messages, 10_000)
    assert len(packed) == len(messages)
    for sent, message in zip(packed, messages, strict=True):
        if isinstance(message, ToolMessage):  # untrusted: sent fenced, a copy
            assert (sent.content, sent.tool_call_id) == (fenced(message.content), message.tool_call_id)
        elif isinstance(message, SystemMessage):  # a copy, with the fence's notice
            assert sent.content == with_notice(message.content)
        else:
            assert sent is message


def test_a_long_history_is_packed_valid_and_faithful() -> None:
    messages = history(30, 800)
    packed, result = pack_messages_with_result(messages, 4000)
    assert cs.count_messages(convert_to_openai_messages(packed)) == result.tokens <= 4000
    assert packed[0].content == with_notice(messages[0].content)
    assert packed[1] is messages[1]
    assert packed[-1] is messages[-1]
    calls = set()
    for message in packed:
        if isinstance(message, AIMessage):
            calls.update(call["id"] for call in message.tool_calls)
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in calls
            original = next(
                m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id == message.tool_call_id
            )
            assert message is original or (message.name == original.name and message.content != original.content)
    assert result.stubbed  # old results were stubbed before whole turns went


def test_non_messages_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"messages\[1\] must be a langchain BaseMessage, not dict"):
        pack_messages([HumanMessage("x"), {"role": "user", "content": "y"}], 100)  # type: ignore[list-item]
