"""ctxsched in pydantic-ai: ``Agent(..., capabilities=[history_processor(budget)])``.

Needs ``pydantic-ai`` 2.x (``pip install 'ctxsched[pydantic-ai]'``). The capability's ``before_model_request``
hook changes the request's messages only (pydantic-ai's history processors would store what they return).
Before each model request the agent's message history (``ModelRequest`` and ``ModelResponse`` with their
parts) is read as OpenAI chat messages (system and user prompts, tool calls, tool returns and retries), packed
with a ``Session``, and written back as the same kinds of messages: a message kept whole is the agent's own
object; one with parts dropped or cut is a copy holding the kept parts; a summary is a ``ModelRequest`` with one
``UserPromptPart``. Tool calls and their returns stay paired. The run's own history is not changed.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from ctxsched.formats import PackedMessages
from ctxsched.hooks import Summarizer
from ctxsched.integrations._sessions import SessionRecipe
from ctxsched.policy import Policy
from ctxsched.session import Session
from ctxsched.stores import Store

__all__ = ["ContextSchedHistory", "history_processor"]

#: For each chat message: the index of the pydantic-ai message it came from, and the parts it holds.
Origin = tuple[int, list[int]]


class ContextSchedHistory:
    """A history processor: packs the message history of each model request into ``budget`` tokens.

    One ``Session`` lasts while the history grows (a run, and later runs given ``message_history``); a history
    that does not start with what it has starts a new one. ``last`` is the latest ``PackedMessages``.
    """

    def __init__(
        self,
        budget: int,
        policy: Policy | Mapping[str, Any] | None = None,
        summarizer: Summarizer | None = None,
        store: Store | None = None,
        *,
        encoding: str = "o200k_base",
    ) -> None:
        self.recipe = SessionRecipe(budget, policy, summarizer, store, encoding)
        self.last: PackedMessages | None = None
        self._session: Session | None = None
        self._seen: list[dict[str, Any]] = []
        self._tools: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, messages: list[Any], tools: list[dict[str, Any]] | None = None) -> list[Any]:
        """The packed history for the next model request (``tools``: the request's tool definitions)."""
        conversation, origins = to_chat(messages)
        with self._lock:
            grows = self._seen == conversation[: len(self._seen)]
            if self._session is None or not grows or self._tools != (tools or []):
                self._session = self.recipe.session(tools)
                self._tools = tools or []
            self._session.sync(conversation)
            self._seen = conversation
            packed = self._session.pack()
        self.last = packed
        return from_chat(messages, conversation, origins, packed)


def history_processor(
    budget: int,
    policy: Policy | Mapping[str, Any] | None = None,
    summarizer: Summarizer | None = None,
    store: Store | None = None,
    *,
    encoding: str = "o200k_base",
) -> Any:
    """A capability for ``Agent(capabilities=[...])`` that packs each model request.

    ``.history`` is its ``ContextSchedHistory`` (``.history.last``: the latest ``PackedMessages``).
    """
    from pydantic_ai.capabilities import AbstractCapability

    @dataclasses.dataclass
    class ContextSched(AbstractCapability[Any]):
        history: ContextSchedHistory = dataclasses.field(kw_only=True)

        async def before_model_request(self, ctx: Any, request_context: Any) -> Any:
            parameters = request_context.model_request_parameters
            tools = [_definition(tool) for tool in parameters.function_tools]
            request_context.messages = self.history(request_context.messages, tools)
            return request_context

    return ContextSched(history=ContextSchedHistory(budget, policy, summarizer, store, encoding=encoding))


def to_chat(messages: list[Any]) -> tuple[list[dict[str, Any]], list[Origin]]:
    """pydantic-ai messages as OpenAI chat messages, with where each came from."""
    from pydantic_ai.messages import (
        ModelResponse,
        RetryPromptPart,
        SystemPromptPart,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )

    chat: list[dict[str, Any]] = []
    origins: list[Origin] = []
    for index, message in enumerate(messages):
        if isinstance(message, ModelResponse):
            texts = [part.content for part in message.parts if isinstance(part, TextPart)]
            calls = [_call(part) for part in message.parts if isinstance(part, ToolCallPart)]
            out: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
            if calls:
                out["tool_calls"] = calls
            chat.append(out)
            origins.append((index, list(range(len(message.parts)))))
            continue
        for number, part in enumerate(message.parts):
            if isinstance(part, SystemPromptPart):
                chat.append({"role": "system", "content": part.content})
            elif isinstance(part, UserPromptPart):
                content = part.content if isinstance(part.content, str) else _parts_of(part.content)[0]
                chat.append({"role": "user", "content": content})
            elif isinstance(part, ToolReturnPart):
                chat.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": part.model_response_str()})
            elif isinstance(part, RetryPromptPart) and part.tool_name is not None:
                chat.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": part.model_response()})
            elif isinstance(part, RetryPromptPart):
                chat.append({"role": "user", "content": part.model_response()})
            else:
                continue  # parts the model is not sent as messages
            origins.append((index, [number]))
    return chat, origins


def from_chat(
    messages: list[Any], conversation: list[dict[str, Any]], origins: list[Origin], packed: PackedMessages
) -> list[Any]:
    """The packed chat messages as pydantic-ai messages: the agent's objects where nothing of them changed."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    out: list[Any] = []
    kept: dict[int, dict[int, Any]] = {}  # message index -> part index -> the part as sent
    order: list[int | dict[str, Any]] = []
    for message, source in zip(packed.messages, packed.indices, strict=True):
        if source is None:
            order.append(message)  # a summary
            continue
        index, parts = origins[source]
        if index not in kept:
            order.append(index)
        changed = message != conversation[source]
        response = isinstance(messages[index], ModelResponse)
        text_placed = False
        for number in parts:
            part = messages[index].parts[number]
            if changed and response and isinstance(part, TextPart):
                if text_placed:
                    continue  # the cut text is the first text part's
                part, text_placed = dataclasses.replace(part, content=message["content"]), True
            elif changed and not response:
                part = dataclasses.replace(part, content=_content_back(part.content, message["content"]))
            kept.setdefault(index, {})[number] = part
    for entry in order:
        if isinstance(entry, dict):
            out.append(ModelRequest(parts=[UserPromptPart(content=entry["content"])]))
            continue
        original = messages[entry]
        placed = kept[entry]
        if len(placed) == len(original.parts) and all(placed[n] is original.parts[n] for n in placed):
            out.append(original)
        else:
            out.append(dataclasses.replace(original, parts=[placed[n] for n in sorted(placed)]))
    return out


def _definition(tool: Any) -> dict[str, Any]:
    """A pydantic-ai ``ToolDefinition`` as the Chat Completions definition it is counted as."""
    function = {"name": tool.name, "description": tool.description or "", "parameters": tool.parameters_json_schema}
    return {"type": "function", "function": function}


def _call(part: Any) -> dict[str, Any]:
    return {"id": part.tool_call_id, "type": "function",
            "function": {"name": part.tool_name, "arguments": part.args_as_json_str()}}  # fmt: skip


def _parts_of(content: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """A user prompt's list content as OpenAI content parts, and the index in ``content`` of each part.

    Each part is then counted as the provider counts it (an image by its size, when its data says it).
    """
    from pydantic_ai.messages import BinaryContent, CachePoint, DocumentUrl, ImageUrl, TextContent

    parts: list[dict[str, Any]] = []
    positions: list[int] = []
    for position, item in enumerate(content):
        if isinstance(item, str | TextContent):
            part: dict[str, Any] = {"type": "text", "text": item if isinstance(item, str) else item.content}
        elif isinstance(item, ImageUrl):
            detail = (item.vendor_metadata or {}).get("detail", "auto")
            part = {"type": "image_url", "image_url": {"url": item.url, "detail": detail}}
        elif isinstance(item, BinaryContent) and item.is_image:
            detail = (item.vendor_metadata or {}).get("detail", "auto")
            part = {"type": "image_url", "image_url": {"url": item.data_uri, "detail": detail}}
        elif isinstance(item, BinaryContent) and item.is_audio:
            part = {"type": "input_audio", "input_audio": {"data": item.base64, "format": item.format}}
        elif isinstance(item, BinaryContent) and item.is_document:
            part = {"type": "file", "file": {"file_data": item.data_uri, "filename": f"document.{item.format}"}}
        elif isinstance(item, DocumentUrl):
            part = {"type": "file", "file": {"file_id": item.url}}
        elif isinstance(item, CachePoint):
            continue  # a marker for the provider's cache, not content
        else:  # audio and video links, uploaded files, structured content: the accounting's unknown-part cost
            part = {"type": str(getattr(item, "kind", type(item).__name__))}
        parts.append(part)
        positions.append(position)
    return parts, positions


def _content_back(content: Any, sent: Any) -> Any:
    """The user prompt's content with the text the pack kept.

    ``sent`` is a string for a string ``content``, else its parts in the order of ``_parts_of``, where only text can
    have changed.
    """
    if isinstance(content, str) or not isinstance(sent, list):
        return sent
    out = list(content)
    _, positions = _parts_of(content)
    for position, part in zip(positions, sent, strict=True):
        if part.get("type") != "text":
            continue
        item = out[position]
        out[position] = part["text"] if isinstance(item, str) else dataclasses.replace(item, content=part["text"])
    return out
