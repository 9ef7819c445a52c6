"""``pack_messages`` for LangChain: a ``list[BaseMessage]`` in, a ``list[BaseMessage]`` out.

Needs ``langchain-core`` (``pip install 'ctxsched[langchain]'``). Messages are converted to the OpenAI chat
format with LangChain's own ``convert_to_openai_messages``, packed, and mapped back: a message kept whole is
the very object you passed; a cut or stubbed one is a copy of it with only its content changed.

``ContextSchedMiddleware`` (``langchain>=1``) does the same for every model call of a ``create_agent`` agent,
with a ``Session`` per graph thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ctxsched.formats import ChatAccounting, PackedMessages
from ctxsched.formats import pack_messages as pack_openai_messages
from ctxsched.policy import Policy

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

__all__ = ["ContextSchedMiddleware", "pack_messages", "pack_messages_with_result"]  # noqa: F822 - lazily


def __getattr__(name: str) -> Any:
    # The middleware needs ``langchain>=1`` (``create_agent``); the helpers below need only langchain-core.
    if name == "ContextSchedMiddleware":
        try:
            from ctxsched.integrations._langchain_agents import ContextSchedMiddleware
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "ContextSchedMiddleware needs langchain 1.x: pip install 'ctxsched[langchain]'"
            ) from error
        return ContextSchedMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pack_messages_with_result(
    messages: Sequence[BaseMessage],
    budget: int,
    encoding: str = "o200k_base",
    policy: Policy | Mapping[str, Any] | None = None,
    *,
    accounting: ChatAccounting | None = None,
) -> tuple[list[BaseMessage], PackedMessages]:
    """The packed messages and the full ``PackedMessages`` (tokens, decisions, ``explain()``)."""
    try:
        from langchain_core.messages import BaseMessage, HumanMessage, convert_to_openai_messages
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the LangChain integration needs langchain-core: pip install 'ctxsched[langchain]'"
        ) from error
    messages = list(messages)
    for index, message in enumerate(messages):
        if not isinstance(message, BaseMessage):
            raise TypeError(f"messages[{index}] must be a langchain BaseMessage, not {type(message).__name__}")
    converted = convert_to_openai_messages(messages)
    packed = pack_openai_messages(converted, budget, encoding, policy, accounting=accounting)
    out: list[BaseMessage] = []
    for source, message in zip(packed.indices, packed.messages, strict=True):
        if source is None:  # a summary of messages that had to go
            out.append(HumanMessage(content=message["content"]))
            continue
        original = messages[source]
        if message is converted[source]:
            out.append(original)
        else:
            out.append(original.model_copy(update={"content": message["content"]}))
    return out, packed


def pack_messages(
    messages: Sequence[BaseMessage],
    budget: int,
    encoding: str = "o200k_base",
    policy: Policy | Mapping[str, Any] | None = None,
    *,
    accounting: ChatAccounting | None = None,
) -> list[BaseMessage]:
    """Pack LangChain messages into ``budget`` tokens (see ``ctxsched.pack_messages``)."""
    return pack_messages_with_result(messages, budget, encoding, policy, accounting=accounting)[0]
