"""Chat formats: ``pack_messages`` and the accounting behind it."""

from ctxsched.formats.anthropic import AnthropicAccounting
from ctxsched.formats.chat import PackedMessages, chat_policy, pack_messages
from ctxsched.formats.openai import ChatAccounting, ToolAccounting, count_messages, image_tokens, tool_tokens

__all__ = [
    "AnthropicAccounting",
    "ChatAccounting",
    "PackedMessages",
    "ToolAccounting",
    "chat_policy",
    "count_messages",
    "image_tokens",
    "pack_messages",
    "tool_tokens",
]
