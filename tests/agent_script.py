"""The scripted agent run every framework integration is tested with: 30 tool calls whose results run to tens
of thousands of tokens, packed into 8,000."""

from __future__ import annotations

from typing import Any

TURNS = 30
BUDGET = 8000
INSTRUCTIONS = "You are a careful agent. Read the logs, then say what broke."
TASK = "The nightly build failed. Find out why."


def log(step: int) -> str:
    """The build log ``read_log`` returns for one step (about 2,100 tokens)."""
    return "\n".join(f"step {step} line {line}: compiling module_{line} ... ok" for line in range(150))


def check_pairs(sent: list[dict[str, Any]]) -> None:
    """Every tool result right after its call (nothing between them), every call answered (OpenAI form)."""
    open_calls: set[str] = set()
    for message in sent:
        if message["role"] != "tool":
            assert not open_calls, "a message between calls and their results"
        else:
            assert message["tool_call_id"] in open_calls, "a result without its call"
        open_calls |= {call["id"] for call in message.get("tool_calls") or []}
        open_calls -= {message.get("tool_call_id")}
    assert not open_calls, "a call without its result"
