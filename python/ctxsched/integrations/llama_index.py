"""ctxsched in LlamaIndex: ``ContextSchedMemory``, a memory usable where ``ChatMemoryBuffer`` or ``Memory`` is.

Needs ``llama-index-core`` (``pip install 'ctxsched[llama-index]'``). It holds every message put into it;
``get()`` packs them with a ``Session`` (the prompt's prefix stable across calls) and returns a valid history:
tool calls with their results, the system prompt and the task kept, messages kept whole as the objects put
in, cut ones as copies, a summary as a user message. ``get_all()`` is the whole history, unchanged.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory import BaseMemory
from pydantic import ConfigDict, PrivateAttr

from ctxsched.formats import PackedMessages
from ctxsched.integrations._sessions import SessionRecipe
from ctxsched.session import Session

__all__ = ["ContextSchedMemory"]


class ContextSchedMemory(BaseMemory):
    """A memory whose ``get()`` is the history packed into ``budget`` tokens (see the module docs).

    ``last`` is the latest ``PackedMessages`` (``explain()``, ``cache``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    budget: int
    encoding: str = "o200k_base"
    policy: Any = None
    summarizer: Any = None
    store: Any = None
    _messages: list[ChatMessage] = PrivateAttr(default_factory=list)
    _session: Session | None = PrivateAttr(default=None)
    _given: int = PrivateAttr(default=0)  # messages the session has
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _recipe: SessionRecipe = PrivateAttr()
    last: PackedMessages | None = None

    def model_post_init(self, context: Any) -> None:
        """Check the arguments now, not at the first ``get()``."""
        self._recipe = SessionRecipe(self.budget, self.policy, self.summarizer, self.store, self.encoding)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name for the class."""
        return "ContextSchedMemory"

    @classmethod
    def from_defaults(cls, budget: int = 8000, **kwargs: Any) -> ContextSchedMemory:
        """A memory of ``budget`` tokens (``policy``, ``summarizer``, ``store`` and ``encoding`` as keywords)."""
        return cls(budget=budget, **kwargs)

    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        """The history packed into the budget."""
        with self._lock:
            session = self._current()
            conversation = [as_openai(message) for message in self._messages[self._given :]]
            session.extend(conversation)
            self._given = len(self._messages)
            packed = session.pack()
        self.last = packed
        out = []
        for message, index in zip(packed.messages, packed.indices, strict=True):
            if index is None:
                out.append(ChatMessage(role=MessageRole.USER, content=message["content"]))
                continue
            original = self._messages[index]
            same = message.get("content") == (original.content or "")
            # ``content`` is derived from the message's blocks: a cut message is a new one with its text.
            extra = dict(original.additional_kwargs)
            out.append(
                original
                if same
                else ChatMessage(role=original.role, content=message["content"], additional_kwargs=extra)
            )
        return out

    def get_all(self) -> list[ChatMessage]:
        """Every message put in, unchanged."""
        return list(self._messages)

    def put(self, message: ChatMessage) -> None:
        """Add a message."""
        with self._lock:
            self._messages.append(message)

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace the history (the session starts again unless it only grew)."""
        with self._lock:
            grows = messages[: len(self._messages)] == self._messages
            if not grows:
                self._session, self._given = None, 0
            self._messages = list(messages)

    def reset(self) -> None:
        """Forget everything."""
        with self._lock:
            self._messages, self._session, self._given = [], None, 0

    def _current(self) -> Session:
        if self._session is None:
            self._session = self._recipe.session()
        return self._session


def as_openai(message: ChatMessage) -> dict[str, Any]:
    """A LlamaIndex ``ChatMessage`` as an OpenAI chat message: its role, text, tool calls and call id."""
    role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
    out: dict[str, Any] = {"role": role if role in _ROLES else "user", "content": message.content or ""}
    extra = message.additional_kwargs or {}
    calls = [_call(call) for call in extra.get("tool_calls") or []]
    for block in getattr(message, "blocks", None) or []:
        if getattr(block, "block_type", None) == "tool_call":
            arguments = block.tool_kwargs if isinstance(block.tool_kwargs, str) else json.dumps(block.tool_kwargs)
            function = {"name": block.tool_name, "arguments": arguments}
            calls.append({"id": block.tool_call_id, "type": "function", "function": function})
    if calls and role == "assistant":
        out["tool_calls"] = calls
    if role == "tool":
        out["tool_call_id"] = extra.get("tool_call_id", "")
    return out


_ROLES = ("system", "developer", "user", "assistant", "tool")


def _call(call: Any) -> dict[str, Any]:
    if isinstance(call, Mapping):
        function = call.get("function") or {}
        return {"id": call.get("id"), "type": "function",
                "function": {"name": function.get("name", ""), "arguments": function.get("arguments", "")}}  # fmt: skip
    function = call.function
    return {"id": call.id, "type": "function", "function": {"name": function.name, "arguments": function.arguments}}
