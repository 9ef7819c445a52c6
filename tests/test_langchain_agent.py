"""``ContextSchedMiddleware`` in LangChain v1's real agent loop (``create_agent``), offline: a scripted fake chat
model makes 30 tool calls whose results run to tens of thousands of tokens, and records every request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.agent_script import BUDGET, TASK, TURNS, check_pairs, log
from tests.agent_script import INSTRUCTIONS as SYSTEM
from tests.fences import with_notice
from tests.reference import reference_tools
from tests.test_messages import reference_count

langchain_agents = pytest.importorskip("langchain.agents", reason="the middleware needs langchain 1.x")
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from pydantic import Field  # noqa: E402

import ctxsched as cs  # noqa: E402
from ctxsched.integrations.langchain import ContextSchedMiddleware  # noqa: E402

pytestmark = pytest.mark.usefixtures("collect_framework_loops")


@tool
def read_log(step: int) -> str:
    """Read the build log of one step."""
    return log(step)


class ScriptedModel(BaseChatModel):
    """Calls ``read_log`` for 30 turns, then answers; records what it is sent (with the middleware's report)."""

    requests: list[list[BaseMessage]] = Field(default_factory=list)
    reports: list[Any] = Field(default_factory=list)
    middleware: Any = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        turn = len(self.requests)
        self.requests.append(list(messages))
        self.reports.append(getattr(self.middleware, "last", None))
        if turn < TURNS:
            call = {"name": "read_log", "args": {"step": turn}, "id": f"call_{turn}", "type": "tool_call"}
            reply = AIMessage(content=f"Reading step {turn}.", tool_calls=[call])
        else:
            reply = AIMessage(content="Step 3 broke: its module failed to compile.")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def agent_run(middleware: Any, thread: str, run_async: bool) -> tuple[ScriptedModel, dict[str, Any]]:
    """The scripted run with ``middleware`` (or none: the bare framework)."""
    model = ScriptedModel(middleware=middleware)
    agent = langchain_agents.create_agent(
        model, tools=[read_log], system_prompt=SYSTEM, middleware=[middleware] if middleware else [],
        checkpointer=InMemorySaver(),
    )  # fmt: skip
    config = {"configurable": {"thread_id": thread}, "recursion_limit": 4 * TURNS}
    state = {"messages": [{"role": "user", "content": TASK}]}
    result = asyncio.run(agent.ainvoke(state, config)) if run_async else agent.invoke(state, config)
    return model, result


@pytest.mark.parametrize("run_async", [False, True], ids=["invoke", "ainvoke"])
def test_every_model_call_is_packed_valid_and_prefix_stable(run_async: bool) -> None:
    middleware = ContextSchedMiddleware(BUDGET)
    model, result = agent_run(middleware, f"thread-{run_async}", run_async)
    tools = [convert_to_openai_tool(read_log)]
    assert len(model.requests) == TURNS + 1
    previous: list[dict[str, Any]] = []
    epochs = set()
    for request, packed in zip(model.requests, model.reports, strict=True):
        sent = convert_to_openai_messages(request)
        # Within the budget, counted independently (tiktoken, the published recipes).
        assert reference_count(sent) + reference_tools(tools) <= BUDGET
        # Tool pairs: every result right after its call, every call answered.
        check_pairs(sent)
        assert sent[0] == {"role": "system", "content": with_notice(SYSTEM)}
        assert any(message.get("content") == TASK for message in sent)
        # Within an epoch the request starts with the previous one.
        assert packed is not None
        assert packed.cache is not None
        if packed.cache.first_change is None:
            assert sent[: len(previous)] == previous
        epochs.add(packed.cache.epoch)
        previous = sent
    assert len(epochs) > 1, "tens of thousands of tokens into 8,000: epochs"
    # The graph's own history is whole: every tool result as the tool returned it.
    history = result["messages"]
    assert len(history) == 1 + 2 * TURNS + 1
    results = [message for message in history if message.type == "tool"]
    assert len(results) == TURNS
    assert all(message.content == read_log.invoke({"step": n}) for n, message in enumerate(results))
    assert middleware.packed(f"thread-{run_async}") is middleware.last
    assert "packed" in middleware.last.explain()


def test_threads_have_their_own_sessions_and_a_summariser_runs_at_epochs() -> None:
    calls: list[int] = []

    def summarise(segments: list[cs.Segment], max_tokens: int) -> str:
        calls.append(len(segments))
        return f"Read {len(segments)} log entries; all compiled."

    # Small enough that whole turns go (their stubs do not fit), not only their results, with room for a summary
    # beside the system prompt and its fence notice.
    middleware = ContextSchedMiddleware(2500, summarizer=summarise, store=cs.stores.MemoryStore())
    first, _ = agent_run(middleware, "a", run_async=False)
    assert calls, "summaries were made"
    assert any("[Summary of earlier messages" in str(m.content) for m in first.requests[-1])
    second, _ = agent_run(middleware, "b", run_async=False)
    # The second thread's first request is its own conversation, not the first thread's.
    assert len(convert_to_openai_messages(second.requests[0])) == 2
    assert middleware.packed("a") is not middleware.packed("b")


def test_bad_arguments_are_refused_when_the_middleware_is_made() -> None:
    with pytest.raises(ValueError, match="budget"):
        ContextSchedMiddleware(-1)
    with pytest.raises(cs.BudgetError):
        ContextSchedMiddleware(2, policy=cs.Policy(reserve_output=10))
