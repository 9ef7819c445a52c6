"""ctxsched inside the agent frameworks: what it adds per model call, and the prompt cache it keeps.

The tests' 30-turn scripted runs (``tests/test_langchain_agent.py``, ``tests/test_openai_agents.py``,
``tests/test_llama_index.py``: 30 tool calls of about 2,100 tokens each, 8,000-token budget), each with the bare
framework, with ctxsched, and with the framework's own trimming: LangChain's ``SummarizationMiddleware`` (a fake
summariser that returns at once, triggered at the budget), the Agents SDK's ``ToolOutputTrimmer`` and
LlamaIndex's ``ChatMemoryBuffer`` token limit (a ``FunctionAgent``; ctxsched as ``ContextSchedLLM``). Each row
records (``extra_info``): the mean time per model call and what it adds over the bare framework, the largest
prompt sent, and prefix reuse (``benches/cache_metrics.py``: each prompt's longest common token prefix with the
previous one, over its tokens; the bare framework sends everything, so it reuses everything and goes over the
budget).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benches.cache_metrics import CacheFigures

BUDGET = 8000
#: (framework, variant) -> mean seconds per model call, for the time added over the bare framework.
MEAN: dict[tuple[str, str], float] = {}


def _langchain(variant: str) -> Callable[[], list[list[dict[str, Any]]]]:
    pytest.importorskip("langchain.agents")
    from langchain.agents.middleware import SummarizationMiddleware
    from langchain_core.messages import convert_to_openai_messages

    from ctxsched.integrations.langchain import ContextSchedMiddleware
    from tests.test_langchain_agent import ScriptedModel, agent_run

    def run() -> list[list[dict[str, Any]]]:
        middleware: Any
        if variant == "ctxsched":
            middleware = ContextSchedMiddleware(BUDGET)
        elif variant == "own trimming":
            middleware = SummarizationMiddleware(
                ScriptedModel(), trigger=("tokens", BUDGET), keep=("messages", 6),
                summarizer=lambda messages: f"{len(messages)} earlier messages: the logs read so far compiled.",
            )  # fmt: skip
        else:
            middleware = None
        model, _ = agent_run(middleware, f"bench-{variant}", run_async=False)
        return [convert_to_openai_messages(request) for request in model.requests]

    return run


def _openai_agents(variant: str) -> Callable[[], list[list[dict[str, Any]]]]:
    pytest.importorskip("agents")
    from agents.extensions import ToolOutputTrimmer

    from ctxsched.integrations.openai_agents import input_filter
    from tests.test_openai_agents import INSTRUCTIONS, ScriptedModel, run

    def go() -> list[list[dict[str, Any]]]:
        flt: Any = {"ctxsched": lambda: input_filter(BUDGET), "own trimming": ToolOutputTrimmer}.get(variant)
        model = ScriptedModel()
        run(flt() if flt else None, model)
        system = {"role": "system", "content": INSTRUCTIONS}
        return [[system, *(_chat_item(item) for item in items)] for _, items in model.inputs]

    return go


def _llama_index(variant: str) -> Callable[[], list[list[dict[str, Any]]]]:
    pytest.importorskip("llama_index.core")
    from llama_index.core.memory import ChatMemoryBuffer

    from tests.test_llama_index import function_agent_run

    def go() -> list[list[dict[str, Any]]]:
        # Its own trimming: the memory's token limit (the scratchpad of a run is not in the memory).
        memory = ChatMemoryBuffer.from_defaults(token_limit=BUDGET) if variant == "own trimming" else None
        with warnings.catch_warnings():  # LlamaIndex's workflows read pydantic's deprecated ``__fields__``
            warnings.simplefilter("ignore", DeprecationWarning)
            requests, _, _ = function_agent_run(packed=variant == "ctxsched", memory=memory)
        return requests

    return go


def _chat_item(item: Any) -> dict[str, Any]:
    """A Responses item in the chat shape the cache figures render (the same for every variant)."""
    item = item if isinstance(item, dict) else item.model_dump(exclude_none=True)
    if item.get("type") == "function_call_output":
        return {"role": "tool", "tool_call_id": item["call_id"], "content": str(item["output"])}
    if item.get("type") == "function_call":
        function = {"name": item["name"], "arguments": item["arguments"]}
        call = {"id": item["call_id"], "type": "function", "function": function}
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    content = item.get("content")
    return {"role": item.get("role", "user"), "content": content if isinstance(content, str) else str(content)}


FRAMEWORKS = {"langchain": _langchain, "openai_agents": _openai_agents, "llama_index": _llama_index}


@pytest.mark.parametrize("variant", ["bare", "ctxsched", "own trimming"])
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_integration_run(benchmark: BenchmarkFixture, framework: str, variant: str) -> None:
    import ctxsched as cs

    run = FRAMEWORKS[framework](variant)
    prompts: list[list[dict[str, Any]]] = []
    seconds: list[float] = []

    def once() -> None:
        began = time.perf_counter()
        prompts[:] = run()
        seconds.append((time.perf_counter() - began) / max(len(prompts), 1))

    benchmark.group = f"{framework}: a 30-turn tool run into {BUDGET:,} tokens"
    benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=1)
    figures = CacheFigures()
    figures.start()
    for prompt in prompts:
        figures.call(prompt, prompt, None)
    mean = statistics.mean(seconds)
    MEAN[framework, variant] = mean
    bare = MEAN.get((framework, "bare"))
    benchmark.extra_info.update(
        calls=len(prompts),
        ms_per_call=round(mean * 1e3, 3),
        ms_added_per_call=round((mean - bare) * 1e3, 3) if bare is not None and variant != "bare" else None,
        largest_prompt=max(cs.count_messages(prompt) for prompt in prompts),
        **figures.summary(),
    )
    if variant == "ctxsched":
        assert max(cs.count_messages(prompt) for prompt in prompts) <= BUDGET
