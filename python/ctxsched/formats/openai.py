"""OpenAI accounting: the constants of chat messages and tool definitions, and counting with them.

Conversations are read in Rust (``ctxsched._core``), once, for packing and counting alike. Accounting follows
DESIGN.md's conventions (OpenAI's published counting recipe): each message costs ``tokens_per_message`` (3) +
its role + its content (+ its name + ``tokens_per_name``); each tool call adds ``tokens_per_tool_call`` (3) +
the function name + the arguments; the reply priming (3) is counted once per prompt. Image parts cost
OpenAI's published rule for their detail and size, else ``image_tokens``; audio, file and unknown parts cost
the configured estimates. Tool definitions cost OpenAI's cookbook recipe (``ToolAccounting``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ctxsched._core import Tokenizer, chat_tokens, image_part_tokens
from ctxsched._core import count_tools as _count_tools

__all__ = ["ChatAccounting", "ToolAccounting", "count_messages", "image_tokens", "tool_tokens"]


class ChatAccounting(BaseModel):
    """The constants of chat token accounting (defaults: OpenAI's published recipe)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_message: int = Field(default=3, ge=0)
    tokens_per_name: int = Field(default=1, ge=0)
    tokens_per_tool_call: int = Field(default=3, ge=0)
    reply_priming: int = Field(default=3, ge=0)
    image_tokens: int = Field(default=765, ge=0, description="An image whose size is not known (1024x1024, high).")
    audio_part_tokens: int = Field(
        default=500, ge=0, description="An input_audio part (an estimate: its length is not read)."
    )
    file_part_tokens: int = Field(default=1500, ge=0, description="A file part (an estimate: its pages are not read).")
    unknown_part_tokens: int = Field(default=100, ge=0, description="A content part of a type not known here.")


class ToolAccounting(BaseModel):
    """The constants of OpenAI's cookbook recipe for function definitions (defaults: the gpt-4o family's).

    Per function ``func_init`` + ``"name:description"``; with parameters ``prop_init``, and per property
    ``prop_key`` + ``"key:type:description"`` (``enum_init`` + ``enum_item`` and the item per enum item); once
    per list ``func_end``. For gpt-3.5-turbo and gpt-4, ``func_init`` is 10.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    func_init: int = 7
    prop_init: int = 3
    prop_key: int = 3
    enum_init: int = -3
    enum_item: int = 3
    func_end: int = 12


def tool_tokens(
    tools: Sequence[Any] | None, tokenizer: Tokenizer, accounting: ToolAccounting | None = None
) -> tuple[int, list[tuple[str, int]]]:
    """The tokens of tool definitions: the total (with ``func_end``) and (name, tokens) per tool.

    OpenAI function tools, Responses tools and Anthropic tools are all read, as dicts or the SDKs' objects.

    Raises:
        TypeError: ``tools`` is not a list of tool definitions, or one cannot be written as JSON.
    """
    if not tools:
        return 0, []
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
        raise TypeError(f"tools must be a list of tool definitions, not {type(tools).__name__}")
    accounting = accounting or ToolAccounting()
    constants = (accounting.func_init, accounting.prop_init, accounting.prop_key, accounting.enum_init)
    return _count_tools(list(tools), tokenizer, *constants, accounting.enum_item, accounting.func_end)


def count_messages(
    messages: Sequence[Any],
    encoding: str = "o200k_base",
    accounting: ChatAccounting | None = None,
    *,
    tools: Sequence[Any] | None = None,
    format: str = "openai",
    tool_accounting: ToolAccounting | None = None,
) -> int:
    """Tokens of ``messages`` as a prompt, reply priming and tool definitions included.

    The provider bills both as prompt tokens.

    ``format`` is ``"openai"`` (chat messages: dicts or the SDK's objects), ``"responses"`` (Responses input
    items) or ``"anthropic"`` (counted with ``encoding`` as the stand-in, without the safety margin that
    ``pack_messages`` applies).

    Raises:
        MessageFormatError: a malformed message; the error names it.
    """
    accounting = accounting or ChatAccounting()
    tokenizer = Tokenizer(encoding)
    rows = chat_tokens(messages, tokenizer, accounting, format=format)
    tools_total, _ = tool_tokens(tools, tokenizer, tool_accounting)
    return sum(content + other for _, content, other, _ in rows) + accounting.reply_priming + tools_total


def image_tokens(part: Mapping[str, Any], accounting: ChatAccounting | None = None) -> int:
    """OpenAI's published cost of an image part (chat ``image_url`` or Responses ``input_image``).

    85 at low detail; otherwise the image is scaled to fit 2048x2048, then its short side to 768, and costs
    85 + 170 per 512-pixel tile. The size comes from ``width``/``height`` keys or a PNG, GIF or JPEG data
    URL; without it, ``accounting.image_tokens``.
    """
    return image_part_tokens(part, accounting or ChatAccounting())
