"""``input_filter`` in the OpenAI Agents SDK's real run loop, offline: a scripted ``Model`` makes 30 tool calls
whose results run to tens of thousands of tokens, and records every input it is given."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.agent_script import BUDGET, INSTRUCTIONS, TASK, TURNS, log
from tests.reference import reference_tools

agents = pytest.importorskip("agents", reason="the filter needs openai-agents")
from agents import Agent, RunConfig, Runner, function_tool  # noqa: E402
from agents.items import ModelResponse  # noqa: E402
from agents.models.interface import Model  # noqa: E402
from agents.usage import Usage  # noqa: E402
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText  # noqa: E402
from openai.types.responses.response_reasoning_item import ResponseReasoningItem, Summary  # noqa: E402

import ctxsched as cs  # noqa: E402
from ctxsched.integrations.openai_agents import input_filter  # noqa: E402

pytestmark = pytest.mark.usefixtures("collect_framework_loops")


@function_tool
def read_log(step: int) -> str:
    """Read the build log of one step."""
    return log(step)


class ScriptedModel(Model):
    """Calls ``read_log`` for 30 turns, then answers; records each input with its instructions."""

    def __init__(self, flt: Any = None, reasoning: bool = False) -> None:
        self.inputs: list[tuple[str | None, list[Any]]] = []
        self.reports: list[Any] = []
        self.flt = flt
        self.reasoning = reasoning

    async def get_response(self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any) -> Any:
        turn = len(self.inputs)
        self.inputs.append((system_instructions, list(input) if isinstance(input, list) else [input]))
        self.reports.append(self.flt.last.cache if self.flt is not None and self.flt.last is not None else None)
        if turn < TURNS:
            arguments = json.dumps({"step": turn})
            output: list[Any] = [
                ResponseFunctionToolCall(
                    type="function_call", call_id=f"call_{turn}", name="read_log", arguments=arguments, id=f"fc_{turn}"
                )
            ]
            if self.reasoning:  # a reasoning model's item before its call, which the API wants sent with it
                summary = Summary(type="summary_text", text=f"Step {turn} next: " + "thinking " * 200)
                output.insert(0, ResponseReasoningItem(type="reasoning", id=f"rs_{turn}", summary=[summary]))
        else:
            text = ResponseOutputText(type="output_text", text="Step 3 broke.", annotations=[])
            output = [
                ResponseOutputMessage(type="message", id="msg", role="assistant", status="completed", content=[text])
            ]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def run(flt: Any, model: ScriptedModel) -> Any:
    agent = Agent(name="builder", instructions=INSTRUCTIONS, tools=[read_log], model=model)
    config = RunConfig(call_model_input_filter=flt, tracing_disabled=True)
    return asyncio.run(Runner.run(agent, TASK, run_config=config, max_turns=TURNS + 5))


@pytest.mark.parametrize("reasoning", [False, True], ids=["plain", "reasoning"])
def test_every_model_call_gets_a_packed_valid_input_and_the_run_keeps_its_history(reasoning: bool) -> None:
    flt = input_filter(BUDGET)
    model = ScriptedModel(flt, reasoning)
    result = run(flt, model)
    function = {"name": "read_log", "description": read_log.description, "parameters": read_log.params_json_schema}
    tool = {"type": "function", "function": function}
    assert len(model.inputs) == TURNS + 1
    previous: list[Any] = []
    for (instructions, items), cache in zip(model.inputs, model.reports, strict=True):
        assert instructions == INSTRUCTIONS
        # Within the budget, counted by ctxsched's Responses accounting and, independently, the tools' recipe.
        counted = cs.count_messages([{"role": "system", "content": INSTRUCTIONS}, *items], format="responses")
        assert counted + reference_tools([tool]) <= BUDGET
        # The task is there; each output follows its call.
        assert any(isinstance(item, dict) and item.get("content") == TASK for item in items)
        calls: set[str] = set()
        for item in items:
            kind = item.get("type") if isinstance(item, dict) else getattr(item, "type", None)
            call_id = item.get("call_id") if isinstance(item, dict) else getattr(item, "call_id", None)
            if kind == "function_call":
                calls.add(call_id)
            elif kind == "function_call_output":
                assert call_id in calls, "an output without its call"
        check_reasoning(items, reasoning)
        # Within an epoch the input starts with the previous one.
        assert cache is not None
        if cache.first_change is None:
            assert items[: len(previous)] == previous
        previous = items
    assert previous
    # The SDK's history is whole: every output as the tool returned it.
    history = result.to_input_list()
    outputs = [item for item in history if isinstance(item, dict) and item.get("type") == "function_call_output"]
    assert [item["output"] for item in outputs] == [log(n) for n in range(TURNS)]
    assert flt.last.cache is not None
    assert flt.last.cache.epoch > 1


def field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def check_reasoning(items: list[Any], reasoning: bool) -> None:
    """Each reasoning item is sent right before the call it came with, and a call that came with one has it."""
    kinds = [field(item, "type") for item in items]
    assert ("reasoning" in kinds) == (reasoning and "function_call" in kinds)
    for position, item in enumerate(items):
        if field(item, "type") == "reasoning":
            following = items[position + 1] if position + 1 < len(items) else None
            assert following is not None, "reasoning left alone at the end"
            assert field(following, "type") == "function_call", "reasoning left alone"
            assert field(following, "id") == "fc_" + field(item, "id").removeprefix("rs_")
        elif field(item, "type") == "function_call" and reasoning:
            assert position > 0, "a call without its reasoning"
            assert field(items[position - 1], "type") == "reasoning", "a call without its reasoning"


def test_a_new_conversation_starts_a_new_session() -> None:
    flt = input_filter(BUDGET)
    run(flt, ScriptedModel())
    first = flt._session
    run(flt, ScriptedModel())
    assert flt._session is not first
