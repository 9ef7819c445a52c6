"""``ContextSchedMemory`` where LlamaIndex takes a memory: a 30-turn tool loop whose results run to tens of
thousands of tokens; every ``get()`` is a valid history within the budget, and ``get_all()`` is unchanged."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.agent_script import BUDGET, TASK, TURNS, log
from tests.agent_script import INSTRUCTIONS as SYSTEM
from tests.fences import with_notice
from tests.test_messages import reference_count

pytest.importorskip("llama_index.core", reason="the memory needs llama-index-core")
from llama_index.core.base.llms.types import ChatMessage

import ctxsched as cs
from ctxsched.integrations.llama_index import ContextSchedMemory, as_openai

pytestmark = pytest.mark.usefixtures("collect_framework_loops")


def plain(message: ChatMessage) -> dict[str, Any]:
    """The OpenAI form of the test's own messages, written here."""
    out: dict[str, Any] = {"role": message.role.value, "content": message.content or ""}
    if "tool_calls" in message.additional_kwargs:
        out["tool_calls"] = message.additional_kwargs["tool_calls"]
    if "tool_call_id" in message.additional_kwargs:
        out["tool_call_id"] = message.additional_kwargs["tool_call_id"]
    return out


def turn(number: int) -> list[ChatMessage]:
    call = {"id": f"call_{number}", "type": "function",
            "function": {"name": "read_log", "arguments": json.dumps({"step": number})}}  # fmt: skip
    return [
        ChatMessage(role="assistant", content=f"Reading step {number}.", additional_kwargs={"tool_calls": [call]}),
        ChatMessage(role="tool", content=log(number), additional_kwargs={"tool_call_id": f"call_{number}"}),
    ]


def check(history: list[ChatMessage], memory: ContextSchedMemory, previous: list[dict[str, Any]]) -> None:
    sent = [plain(message) for message in history]
    assert reference_count(sent) <= BUDGET
    assert sent[0] == {"role": "system", "content": with_notice(SYSTEM)}
    assert any(message["content"] == TASK for message in sent)
    open_calls: set[str] = set()
    for message in sent:
        if message["role"] != "tool":
            assert not open_calls, "a message between calls and their results"
        else:
            assert message["tool_call_id"] in open_calls, "a result without its call"
        open_calls |= {call["id"] for call in message.get("tool_calls") or []}
        open_calls -= {message.get("tool_call_id")}
    assert not open_calls
    assert memory.last is not None
    assert memory.last.cache is not None
    if memory.last.cache.first_change is None:
        assert sent[: len(previous)] == previous


@pytest.mark.parametrize("run_async", [False, True], ids=["get", "aget"])
def test_every_get_is_a_valid_packed_history_and_get_all_is_whole(run_async: bool) -> None:
    memory = ContextSchedMemory.from_defaults(budget=BUDGET)
    originals = [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=TASK)]
    for message in originals:
        memory.put(message)
    previous: list[dict[str, Any]] = []
    for number in range(TURNS):
        history = asyncio.run(memory.aget()) if run_async else memory.get()
        check(history, memory, previous)
        assert history[1] is originals[1], "a message kept whole is the object put in"
        previous = [plain(message) for message in history]
        for message in turn(number):
            memory.put(message)
    everything = memory.get_all()
    assert len(everything) == 2 + 2 * TURNS
    assert [m.content for m in everything if m.role.value == "tool"] == [log(n) for n in range(TURNS)]
    assert memory.last is not None
    assert memory.last.cache is not None
    assert memory.last.cache.epoch > 1


def test_set_and_reset_start_again_and_bad_budgets_are_refused() -> None:
    memory = ContextSchedMemory.from_defaults(budget=BUDGET)
    memory.set([ChatMessage(role="user", content=TASK), *turn(0)])
    assert len(memory.get()) == 3
    memory.set([ChatMessage(role="user", content="Another task.")])
    assert [m.content for m in memory.get()] == ["Another task."]
    memory.reset()
    assert memory.get_all() == []
    with pytest.raises(ValueError, match="budget"):
        ContextSchedMemory.from_defaults(budget=-1)
    with pytest.raises(cs.BudgetError):
        ContextSchedMemory.from_defaults(budget=2, policy=cs.Policy(reserve_output=10))


# LlamaIndex's workflow code reads pydantic's deprecated ``__fields__``: its warning, not ours.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_function_agent_with_the_mock_llm_gets_its_history_packed_run_after_run() -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ToolCallBlock
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.tools import FunctionTool

    def read_log(step: int) -> str:
        """Read the build log of one step."""
        return log(step)

    requests: list[list[ChatMessage]] = []
    calls_per_run = 3

    def respond(messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
        requests.append(list(messages))
        made = sum(1 for m in messages if m.role.value == "tool" and m.content == log(len(requests)))
        step = len(requests)
        if len(requests) % (calls_per_run + 1) and not made:
            block = ToolCallBlock(tool_call_id=f"call_{step}", tool_name="read_log", tool_kwargs={"step": step})
            return ChatMessage(role="assistant", blocks=[block])
        return ChatMessage(role="assistant", content="Done for now.")

    llm = MockFunctionCallingLLM(response_generator=respond)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(read_log)], llm=llm, system_prompt=SYSTEM)
    memory = ContextSchedMemory.from_defaults(budget=BUDGET)

    async def runs() -> None:
        for _ in range(10):
            await agent.run(TASK, memory=memory, max_iterations=20)

    asyncio.run(runs())
    assert len(memory.get_all()) > 20
    # What the memory gives the next run: within the budget, the task there, every result after its call (the
    # agent's calls are ToolCallBlocks: read by the memory's own reader here). The system prompt is the agent's.
    history = memory.get()
    sent = [as_openai(message) for message in history]
    assert reference_count(sent) <= BUDGET
    assert any(message["content"] == TASK for message in sent)
    open_calls: set[str] = set()
    for message in sent:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_calls
        open_calls |= {call["id"] for call in message.get("tool_calls") or []}
        open_calls -= {message.get("tool_call_id")}
    assert not open_calls
    assert memory.last is not None
