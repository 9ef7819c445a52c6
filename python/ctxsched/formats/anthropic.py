"""Anthropic's Messages format: ``{"system": ..., "messages": [...]}`` with content blocks.

Each message is split into units the allocator can decide on separately: a user message's ``tool_result``
blocks are one unit each (grouped with the assistant message whose ``tool_use`` they answer); the rest of a
message (text, images, tool uses) is one unit. The units go through the OpenAI-format engine and come back
as blocks: a message whose units are all kept whole is your object; otherwise a copy holding the kept
blocks (cut or stubbed tool results have only their ``content`` changed). Consecutive messages of the same
role that eviction brings together are merged, so the output alternates user/assistant and starts with the
user's task; every ``tool_result`` stays in the user message right after its ``tool_use``.

Claude's tokenizer is not public: counts use a stand-in encoding and the conversation is packed into the
budget divided by ``1 + margin``; ``PackedMessages.note`` says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ctxsched._core import image_size
from ctxsched.exceptions import MessageFormatError

__all__ = ["AnthropicAccounting", "Unit", "from_anthropic", "to_anthropic"]


class AnthropicAccounting(BaseModel):
    """How Anthropic conversations are counted without Claude's tokenizer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stand_in: str = Field(default="cl100k_base", description="The encoding that stands in for Claude's.")
    margin: float = Field(default=0.2, ge=0.0, le=4.0, description="Packed into budget / (1 + margin).")
    image_tokens: int = Field(default=1600, ge=0, description="An image whose size is not known.")
    unknown_block_tokens: int = Field(default=100, ge=0, description="A block of a type not known here.")
    tool_system_prompt_tokens: int = Field(
        default=346, ge=0, description="The system prompt Anthropic adds when tools are sent (tool_choice auto)."
    )


@dataclass
class Unit:
    """Where an OpenAI-format unit came from: its message, and its blocks (``None``: a string content)."""

    message: int
    blocks: list[int] | None


def _plain(value: Any) -> Any:
    """The SDK's pydantic objects (content blocks, messages) as dicts; anything else as it is."""
    if hasattr(value, "model_dump") and not isinstance(value, Mapping):
        return value.model_dump(exclude_none=True)
    return value


def _blocks(index: int, content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = [_plain(block) for block in content] if isinstance(content, list) else None
    if blocks is None or not all(isinstance(block, Mapping) for block in blocks):
        raise MessageFormatError(
            index, f"has content of type {type(content).__name__}; expected str or a list of blocks"
        )
    return blocks


def _image_tokens(block: Mapping[str, Any], accounting: AnthropicAccounting) -> int:
    """Anthropic's published estimate, width x height / 750 (after scaling the long edge to 1568)."""
    source = block.get("source")
    source = source if isinstance(source, Mapping) else {}
    width, height = source.get("width"), source.get("height")
    if isinstance(source.get("data"), str) and source.get("type") == "base64":
        size = image_size(f"data:image/x;base64,{source['data'][:65536]}")
        width, height = size if size is not None else (width, height)
    if not (isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0):
        return accounting.image_tokens
    scale = min(1.0, 1568 / max(width, height))
    return int(width * scale * height * scale / 750) + 1


def from_anthropic(conversation: Any, accounting: AnthropicAccounting) -> tuple[list[dict[str, Any]], list[Unit]]:
    """The conversation as OpenAI-format units (counting images and unknown blocks as ``name``-less parts).

    Raises:
        MessageFormatError: not a ``{"system", "messages"}`` mapping, a role other than user/assistant, a first
            message that is not the user's, malformed blocks.
    """
    if not isinstance(conversation, Mapping) or not isinstance(conversation.get("messages"), list):
        raise MessageFormatError(None, 'an Anthropic conversation is a dict with a "messages" list')
    units: list[dict[str, Any]] = []
    origins: list[Unit] = []
    system = conversation.get("system")
    if system is not None:
        blocks = _blocks(-1, system)
        text = "".join(block.get("text", "") for block in blocks if block.get("type") == "text")
        units.append({"role": "system", "content": text})
        origins.append(Unit(-1, None))
    for index, message in enumerate(conversation["messages"]):
        message = _plain(message)
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            role = message.get("role") if isinstance(message, Mapping) else type(message).__name__
            raise MessageFormatError(index, f"has role {role!r}; Anthropic roles are 'user' and 'assistant'")
        if index == 0 and message["role"] != "user":
            raise MessageFormatError(0, "is not the user's; an Anthropic conversation starts with a user turn")
        _units(index, message, accounting, units, origins)
    return units, origins


def _units(
    index: int,
    message: Mapping[str, Any],
    accounting: AnthropicAccounting,
    units: list[dict[str, Any]],
    origins: list[Unit],
) -> None:
    content = message.get("content")
    blocks = _blocks(index, content)
    rest: list[int] = []
    for number, block in enumerate(blocks):
        if message["role"] == "user" and block.get("type") == "tool_result":
            tool_use_id = block.get("tool_use_id")
            if not isinstance(tool_use_id, str):
                raise MessageFormatError(index, f"has tool_result block {number} without a str tool_use_id")
            result = block.get("content", "")
            text = result if isinstance(result, str) else None
            parts = [] if text is not None else _parts(index, result, accounting)
            units.append({"role": "tool", "tool_call_id": tool_use_id, "content": text if text is not None else parts})
            origins.append(Unit(index, [number]))
        else:
            rest.append(number)
    if not rest:
        return
    if isinstance(content, str):
        units.append({"role": message["role"], "content": content})
        origins.append(Unit(index, None))
        return
    parts, calls = [], []
    for number in rest:
        block = blocks[number]
        if block.get("type") == "tool_use" and message["role"] == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise MessageFormatError(index, f"has tool_use block {number} without a str id and name")
            arguments = json.dumps(block.get("input", {}), ensure_ascii=False)
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        else:
            parts.extend(_parts(index, [block], accounting))
    unit: dict[str, Any] = {"role": message["role"], "content": parts or ("" if message["role"] == "user" else None)}
    if calls:
        unit["tool_calls"] = calls
    units.append(unit)
    origins.append(Unit(index, rest))


def _still_called(unit: Mapping[str, Any], block: Mapping[str, Any]) -> bool:
    return any(call["id"] == block.get("id") for call in unit.get("tool_calls") or [])


def _parts(index: int, blocks: Any, accounting: AnthropicAccounting) -> list[dict[str, Any]]:
    """Content blocks as OpenAI parts: text as text; images and the rest as fixed-cost parts."""
    parts: list[dict[str, Any]] = []
    for number, block in enumerate(_blocks(index, blocks)):
        kind = block.get("type")
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise MessageFormatError(index, f"has text block {number} without a str text")
            parts.append({"type": "text", "text": block["text"]})
        else:
            tokens = _image_tokens(block, accounting) if kind == "image" else accounting.unknown_block_tokens
            parts.append({"type": "ctxsched_fixed", "tokens": tokens})
    return parts


def to_anthropic(
    conversation: Mapping[str, Any],
    units: list[dict[str, Any]],
    origins: list[Unit],
    out: list[Any],
    indices: list[int],
) -> dict[str, Any]:
    """The packed units back as an Anthropic conversation (see the module docstring)."""
    messages = [_plain(message) for message in conversation["messages"]]
    originals = conversation["messages"]
    result: dict[str, Any] = {key: value for key, value in conversation.items() if key != "messages"}
    for position, unit_index in enumerate(indices):
        if origins[unit_index].message == -1 and out[position] is not units[unit_index]:  # the system prompt, cut
            text = out[position]["content"]
            result["system"] = text if isinstance(conversation["system"], str) else [{"type": "text", "text": text}]
    kept: dict[int, dict[int | None, Any]] = {}
    for position, unit_index in enumerate(indices):
        origin = origins[unit_index]
        if origin.message < 0:
            continue
        changed = out[position] is not units[unit_index]
        numbers: list[int | None] = list(origin.blocks) if origin.blocks is not None else [None]
        for number in numbers:
            kept.setdefault(origin.message, {})[number] = out[position] if changed else None
    rebuilt: list[Any] = []
    for index in sorted(kept):
        original = messages[index]
        blocks = kept[index]
        whole = isinstance(original["content"], str) or len(blocks) == len(original["content"])
        if whole and all(value is None for value in blocks.values()):
            message: Any = originals[index]
        elif isinstance(original["content"], str):
            message = {**original, "content": blocks[None]["content"]}
        else:
            content = []
            for number in sorted(block for block in blocks if block is not None):
                block, unit = _plain(original["content"][number]), blocks[number]
                if unit is not None and block.get("type") == "tool_result":
                    block = {**block, "content": unit["content"]}
                if unit is not None and block.get("type") == "tool_use" and not _still_called(unit, block):
                    continue  # removed by a repair: it had no result
                content.append(block)
            message = {**original, "content": content}
        if rebuilt and _plain(rebuilt[-1])["role"] == original["role"]:
            previous = _plain(rebuilt.pop())
            message = _plain(message)
            merged = _blocks(-1, previous["content"]) + _blocks(-1, message["content"])
            message = {**previous, "content": list(merged)}
        rebuilt.append(message)
    result["messages"] = rebuilt
    return result
