"""OpenAI chat messages: validation, token accounting, and their segments.

Accounting follows DESIGN.md's conventions (OpenAI's published counting recipe): each message costs
``tokens_per_message`` (3) + its role + its content (+ its name + ``tokens_per_name``); each tool call adds
``tokens_per_tool_call`` (3) + the function name + the arguments; the reply priming (3) is counted once per
prompt. Image parts cost OpenAI's published rule for their detail and size, else ``image_tokens``; parts of
unknown types cost ``unknown_part_tokens``. All constants live in ``ChatAccounting``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ctxsched._core import Tokenizer
from ctxsched.exceptions import MessageFormatError

ROLES = ("system", "developer", "user", "assistant", "tool")


class ChatAccounting(BaseModel):
    """The constants of chat token accounting (defaults: OpenAI's published recipe)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_message: int = Field(default=3, ge=0)
    tokens_per_name: int = Field(default=1, ge=0)
    tokens_per_tool_call: int = Field(default=3, ge=0)
    reply_priming: int = Field(default=3, ge=0)
    image_tokens: int = Field(default=765, ge=0, description="An image whose size is not known (1024x1024, high).")
    unknown_part_tokens: int = Field(default=100, ge=0, description="A content part of a type not known here.")


@dataclass
class Message:
    """One validated message and what it costs."""

    index: int
    role: str
    original: Mapping[str, Any]
    #: The content when it is a string (and may be cut), else ``None``.
    text: str | None
    #: Tokens beyond ``text`` and the tool calls: framing, role, name, and all of a list content.
    overhead: int
    tool_call_ids: list[str] = field(default_factory=list)
    tool_names: dict[str, str] = field(default_factory=dict)
    #: Each tool call's arguments (counted where they are needed: they can be long) and its other tokens
    #: (``tokens_per_tool_call`` and the function name).
    tool_arguments: list[str] = field(default_factory=list)
    tool_overheads: list[int] = field(default_factory=list)

    def calls_cost(self, tokenizer: Tokenizer) -> int:
        """The tokens of the message's tool calls."""
        return sum(self.tool_overheads) + sum(tokenizer.count_many(self.tool_arguments))


def image_tokens(part: Mapping[str, Any], accounting: ChatAccounting) -> int:
    """OpenAI's published cost of an image part.

    85 at low detail; otherwise the image is scaled to fit 2048x2048, then its short side to 768, and costs
    85 + 170 per 512-pixel tile. The size comes from ``width``/``height`` keys or a PNG, GIF or JPEG data
    URL; without it, ``accounting.image_tokens``.
    """
    image = part.get("image_url")
    image = image if isinstance(image, Mapping) else {"url": image}
    if image.get("detail") == "low":
        return 85
    size = image_size(image)
    if size is None:
        return accounting.image_tokens
    width, height = size
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def image_size(image: Mapping[str, Any]) -> tuple[float, float] | None:
    """An image's width and height from `width`/`height` keys or a PNG, GIF or JPEG data URL, if known."""
    width, height = image.get("width"), image.get("height")
    if isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0:
        return float(width), float(height)
    url = image.get("url")
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        return None
    try:
        data = base64.b64decode(url.split(";base64,", 1)[1][:65536] + "==", validate=False)
    except ValueError:
        return None
    return _image_header_size(data)


def _image_header_size(data: bytes) -> tuple[float, float] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return float(int.from_bytes(data[16:20], "big")), float(int.from_bytes(data[20:24], "big"))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return float(int.from_bytes(data[6:8], "little")), float(int.from_bytes(data[8:10], "little"))
    if data[:2] == b"\xff\xd8":  # JPEG: walk the segments to the first start-of-frame
        at = 2
        while at + 9 < len(data) and data[at] == 0xFF:
            marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return float(int.from_bytes(data[at + 7 : at + 9], "big")), float(
                    int.from_bytes(data[at + 5 : at + 7], "big")
                )
            at += 2 + length
    return None


def parse(messages: Sequence[Any], tokenizer: Tokenizer, accounting: ChatAccounting) -> list[Message]:
    """Validate ``messages`` (OpenAI chat format) and cost each one.

    Raises:
        MessageFormatError: a message is not a mapping, has an unknown role, content of the wrong type, a
            malformed tool call, or a tool result with no earlier call; the error names the message.
    """
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise MessageFormatError(None, f"messages must be a list of message dicts, not {type(messages).__name__}")
    parsed: list[Message] = []
    # The framing texts (roles, names, tool names) of every message, counted in one call at the end; tool
    # arguments are left to whoever needs them.
    framing: list[str] = []
    owners: list[tuple[Message, int | None]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise MessageFormatError(index, f"must be a dict, not {type(message).__name__}")
        role = message.get("role")
        if role not in ROLES:
            raise MessageFormatError(index, f"has role {role!r}; the roles are {', '.join(ROLES)}")
        overhead = accounting.tokens_per_message
        name = message.get("name")
        if name is not None:
            if not isinstance(name, str):
                raise MessageFormatError(index, f"has a name of type {type(name).__name__}, not str")
            overhead += accounting.tokens_per_name
        text, content_cost = _content(index, role, message, tokenizer, accounting)
        entry = Message(index, role, message, text, overhead + content_cost)
        framing += [role] if name is None else [role, name]
        owners += [(entry, None)] * (1 if name is None else 2)
        if role == "assistant":
            names = _tool_calls(entry, accounting)
            framing += names
            owners += [(entry, call) for call in range(len(names))]
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise MessageFormatError(index, "is a tool result without a str tool_call_id")
        parsed.append(entry)
    for (entry, call), tokens in zip(owners, tokenizer.count_many(framing), strict=True):
        if call is None:
            entry.overhead += tokens
        else:
            entry.tool_overheads[call] += tokens
    return parsed


def _content(
    index: int, role: str, message: Mapping[str, Any], tokenizer: Tokenizer, accounting: ChatAccounting
) -> tuple[str | None, int]:
    content = message.get("content")
    if isinstance(content, str):
        return content, 0
    if content is None:
        if role == "assistant" or (role == "tool" and "content" in message):
            return "", 0
        raise MessageFormatError(index, f"({role}) has no content")
    if not isinstance(content, list):
        raise MessageFormatError(
            index, f"has content of type {type(content).__name__}; expected str or a list of parts"
        )
    cost = 0
    for number, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise MessageFormatError(index, f"has content part {number} of type {type(part).__name__}, not dict")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise MessageFormatError(index, f"has text part {number} without a str text")
            cost += tokenizer.count(part["text"])
        elif kind == "image_url":
            cost += image_tokens(part, accounting)
        elif kind == "ctxsched_fixed" and isinstance(part.get("tokens"), int):  # made by the Anthropic adapter
            cost += part["tokens"]
        else:
            cost += accounting.unknown_part_tokens
    return None, cost


def _tool_calls(entry: Message, accounting: ChatAccounting) -> list[str]:
    """Validate an assistant message's tool calls and record them; the function names, to count."""
    calls = entry.original.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise MessageFormatError(entry.index, f"has tool_calls of type {type(calls).__name__}, not list")
    texts = []
    for number, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        call_id = call.get("id") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(call_id, str):
            raise MessageFormatError(entry.index, f"has tool call {number} without an id and a function")
        name, arguments = function.get("name"), function.get("arguments", "")
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise MessageFormatError(entry.index, f"has tool call {number} whose name or arguments are not str")
        texts.append(name)
        entry.tool_arguments.append(arguments)
        entry.tool_overheads.append(accounting.tokens_per_tool_call)
        entry.tool_call_ids.append(call_id)
        entry.tool_names[call_id] = name
    return texts


def count_messages(
    messages: Sequence[Any], encoding: str = "o200k_base", accounting: ChatAccounting | None = None
) -> int:
    """Tokens of ``messages`` as a prompt (OpenAI chat format), reply priming included."""
    accounting = accounting or ChatAccounting()
    tokenizer = Tokenizer(encoding)
    parsed = parse(messages, tokenizer, accounting)
    texts = [message.text or "" for message in parsed] + [text for message in parsed for text in message.tool_arguments]
    overheads = sum(message.overhead + sum(message.tool_overheads) for message in parsed)
    return sum(tokenizer.count_many(texts)) + overheads + accounting.reply_priming
