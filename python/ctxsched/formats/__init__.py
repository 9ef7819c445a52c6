"""Chat formats: ``pack_messages`` and the accounting behind it."""

from ctxsched.formats.anthropic import AnthropicAccounting
from ctxsched.formats.chat import PackedMessages, chat_policy, pack_messages
from ctxsched.formats.openai import ChatAccounting, count_messages, image_tokens

__all__ = [
    "AnthropicAccounting",
    "ChatAccounting",
    "PackedMessages",
    "chat_policy",
    "count_messages",
    "image_tokens",
    "pack_messages",
]
