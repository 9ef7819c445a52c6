"""``history_processor`` in pydantic-ai's real agent loop, offline: a ``FunctionModel`` makes 30 tool calls whose
returns run to tens of thousands of tokens, and records every history it is sent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent_script import BUDGET, INSTRUCTIONS, TASK, TURNS, check_pairs, log
from tests.fences import with_notice
from tests.test_messages import reference_count

pydantic_ai = pytest.importorskip("pydantic_ai", reason="the processor needs pydantic-ai")
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart  # noqa: E402
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402

from ctxsched.integrations.pydantic_ai import history_processor, to_chat  # noqa: E402

pytestmark = pytest.mark.usefixtures("collect_framework_loops")


def test_every_request_is_packed_valid_and_the_run_keeps_its_history() -> None:
    seen: list[list[ModelMessage]] = []
    reports: list[Any] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = len(seen)
        seen.append(list(messages))
        reports.append(capability.history.last.cache if capability.history.last is not None else None)
        if turn < TURNS:
            return ModelResponse(parts=[ToolCallPart("read_log", {"step": turn}, tool_call_id=f"call_{turn}")])
        return ModelResponse(parts=[TextPart("Step 3 broke.")])

    capability = history_processor(BUDGET)
    agent = Agent(FunctionModel(model), system_prompt=INSTRUCTIONS, capabilities=[capability])

    @agent.tool_plain
    def read_log(step: int) -> str:
        """Read the build log of one step."""
        return log(step)

    result = agent.run_sync(TASK)
    assert len(seen) == TURNS + 1
    previous: list[dict[str, Any]] = []
    for messages, cache in zip(seen, reports, strict=True):
        chat, _ = to_chat(messages)
        # Within an epoch the request starts with the previous one; the first message is the agent's own.
        assert cache is not None
        if cache.first_change is None:
            assert chat[: len(previous)] == previous
        assert reference_count(chat) <= BUDGET
        # The agent's instructions, with the fence's notice.
        assert chat[0] == {"role": "system", "content": with_notice(INSTRUCTIONS)}
        assert any(message.get("content") == TASK for message in chat)
        check_pairs(chat)
        previous = chat
    assert previous
    # The run's own history is whole.
    returns = [part for m in result.all_messages() for part in m.parts if isinstance(part, ToolReturnPart)]
    assert [part.content for part in returns] == [log(n) for n in range(TURNS)]
    packed = capability.history.last
    assert packed is not None
    assert packed.cache is not None
    assert packed.cache.epoch > 1


def test_a_multimodal_prompt_is_counted_with_its_images_and_sent_back_as_pydantic_ai_content() -> None:
    import base64

    from pydantic_ai.messages import BinaryContent, ImageUrl, UserPromptPart

    from tests.packing import words
    from tests.test_chat_reader import image_cost, n, png

    chart = ImageUrl("https://example.com/chart.png", vendor_metadata={"detail": "low"})
    screenshot = BinaryContent(base64.b64decode(png(1024, 1024).split(",")[1]), media_type="image/png")
    long = words(3000)
    prompt = [TASK, chart, screenshot, long]
    seen: list[list[ModelMessage]] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        return ModelResponse(parts=[TextPart("The chart shows a failed step.")])

    capability = history_processor(2000)
    agent = Agent(FunctionModel(model), system_prompt=INSTRUCTIONS, capabilities=[capability])
    result = agent.run_sync(prompt)
    (request,) = seen
    (part,) = [part for message in request for part in message.parts if isinstance(part, UserPromptPart)]
    task, sent_chart, sent_screenshot, cut = part.content
    assert (task, sent_chart, sent_screenshot) == (TASK, chart, screenshot)
    assert sent_chart is chart
    assert sent_screenshot is screenshot
    assert isinstance(cut, str)
    assert len(cut) < len(long)
    # Counted as the provider counts it: each text part, a low-detail image (85), a 1024x1024 one by its tiles.
    packed = capability.history.last
    assert packed is not None
    framing = reference_count(
        [{"role": "system", "content": with_notice(INSTRUCTIONS)}, {"role": "user", "content": ""}]
    )
    assert packed.tokens == framing + n(TASK) + n(cut) + 85 + image_cost(1024, 1024)
    assert packed.tokens <= 2000
    # The run's own history keeps the prompt whole.
    (whole,) = [p for m in result.all_messages() for p in m.parts if isinstance(p, UserPromptPart)]
    assert whole.content == prompt
