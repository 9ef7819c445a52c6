"""Anthropic's Messages format: ``{"system": ..., "messages": [...]}`` with content blocks.

The conversation is read and written back in Rust (``rust/py/anthropic.rs``), through the same reader and
packer as the OpenAI formats. Each message is split into units the allocator decides on separately: a user
message's ``tool_result`` blocks are one unit each (grouped with the assistant message whose ``tool_use``
they answer); the rest of a message (text, images, tool uses, thinking) is one unit. A message whose units
are all kept whole comes back as your object; otherwise a copy holding the kept blocks (cut or stubbed tool
results have only their ``content`` changed). Consecutive messages of the same role that eviction brings
together are merged, so the output alternates user/assistant and starts with the user's task; every
``tool_result`` stays in the user message right after its ``tool_use``.

Claude's tokenizer is not public: counts use a stand-in encoding and the conversation is packed into the
budget divided by ``1 + margin``; ``PackedMessages.note`` says so.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ctxsched.formats.openai import ChatAccounting

__all__ = ["AnthropicAccounting"]


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

    def chat_accounting(self, accounting: ChatAccounting) -> ChatAccounting:
        """``accounting`` with this format's costs for images and unknown blocks."""
        return accounting.model_copy(
            update={"image_tokens": self.image_tokens, "unknown_part_tokens": self.unknown_block_tokens}
        )
