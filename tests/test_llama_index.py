"""``ContextSchedMemory`` where LlamaIndex takes a memory: a 30-turn tool loop whose results run to tens of
thousands of tokens; every ``get()`` is a valid history within the budget, and ``get_all()`` is unchanged."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.agent_script import BUDGET, TASK, TURNS, check_pairs, log
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
    check_pairs(sent)
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


def sent_form(message: ChatMessage) -> dict[str, Any]:
    """The OpenAI form of what a ``FunctionAgent`` sends, read here: its calls are ``ToolCallBlock``s."""
    out = plain(message)
    calls = [
        {"id": block.tool_call_id, "type": "function",
         "function": {"name": block.tool_name, "arguments": json.dumps(block.tool_kwargs)}}
        for block in message.blocks if block.block_type == "tool_call"
    ]  # fmt: skip
    if calls:
        out["tool_calls"] = calls
    return out


def read_log(step: int) -> str:
    """Read the build log of one step."""
    return log(step)


def function_agent_run(
    packed: bool, streaming: bool = True, memory: Any = None
) -> tuple[list[list[dict[str, Any]]], list[int | None], Any]:
    """One ``FunctionAgent`` run of ``TURNS`` tool calls with the mock LLM, wrapped in ``ContextSchedLLM`` when
    ``packed``: each request as sent (OpenAI form), each pack's first change (``None`` within an epoch), the
    memory. One run: its calls and results stay in the agent's scratchpad, which no memory sees; the LLM does."""
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ToolCallBlock
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.memory import ChatMemoryBuffer
    from llama_index.core.tools import FunctionTool

    from ctxsched.integrations.llama_index import ContextSchedLLM

    requests: list[list[dict[str, Any]]] = []
    changes: list[int | None] = []

    def respond(messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
        requests.append([sent_form(message) for message in messages])
        if isinstance(llm, ContextSchedLLM):
            assert llm.last is not None
            assert llm.last.cache is not None
            changes.append(llm.last.cache.first_change)
        step = len(requests)
        if step <= TURNS:
            block = ToolCallBlock(tool_call_id=f"call_{step}", tool_name="read_log", tool_kwargs={"step": step})
            return ChatMessage(role="assistant", blocks=[block])
        return ChatMessage(role="assistant", content="The build broke at step 7.")

    mock = MockFunctionCallingLLM(response_generator=respond)
    llm: Any = ContextSchedLLM(llm=mock, budget=BUDGET) if packed else mock
    tool = FunctionTool.from_defaults(read_log)
    agent = FunctionAgent(tools=[tool], llm=llm, system_prompt=SYSTEM, streaming=streaming)
    memory = memory if memory is not None else ChatMemoryBuffer.from_defaults(token_limit=10**7)

    async def run() -> None:
        await agent.run(TASK, memory=memory, max_iterations=2 * TURNS)

    asyncio.run(run())
    return requests, changes, memory


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "chat"])
def test_a_function_agent_run_of_30_tool_calls_is_packed_at_every_model_call(streaming: bool) -> None:
    from llama_index.core.tools import FunctionTool

    from tests.reference import reference_tools

    requests, changes, memory = function_agent_run(packed=True, streaming=streaming)
    assert len(requests) == len(changes) == TURNS + 1
    definitions = [FunctionTool.from_defaults(read_log).metadata.to_openai_tool()]
    for number, (sent, change) in enumerate(zip(requests, changes, strict=True)):
        assert reference_count(sent) + reference_tools(definitions) <= BUDGET, f"request {number}"
        assert sent[0] == {"role": "system", "content": with_notice(SYSTEM)}
        assert any(message["content"] == TASK for message in sent)
        check_pairs(sent)
        if number and change is None:
            assert sent[: len(requests[number - 1])] == requests[number - 1], "within an epoch: the last, then more"
    assert None in changes[1:], "appended within an epoch"
    assert any(change is not None for change in changes[1:]), "a new epoch"
    # Without the packing the last request would hold every result: far over the budget.
    bare, _, _ = function_agent_run(packed=False, streaming=streaming)
    assert reference_count(bare[-1]) > 5 * BUDGET
    # The framework's own history is whole: every result, as the tool returned it.
    results = [m.content for m in memory.get_all() if m.role.value == "tool"]
    assert results == [log(step) for step in range(1, TURNS + 1)]


def test_the_llm_wrapper_refuses_what_is_not_a_function_calling_llm() -> None:
    from llama_index.core.llms.mock import MockLLM

    from ctxsched.integrations.llama_index import ContextSchedLLM

    with pytest.raises(TypeError, match="FunctionCallingLLM"):
        ContextSchedLLM(llm=MockLLM(), budget=BUDGET)
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    with pytest.raises(ValueError, match="budget"):
        ContextSchedLLM(llm=MockFunctionCallingLLM(), budget=-1)
