"""ctxsched in LlamaIndex: ``ContextSchedMemory`` (a memory) and ``ContextSchedLLM`` (a function-calling LLM).

Needs ``llama-index-core`` (``pip install 'ctxsched[llama-index]'``). The memory goes where ``ChatMemoryBuffer`` or
``Memory`` does: it holds every message put into it, and ``get()`` packs them with a ``Session`` (the prompt's
prefix stable across calls) and returns a valid history: tool calls with their results, the system prompt and
the task kept, messages kept whole as the objects put in, cut ones as copies, a summary as a user message.
``get_all()`` is the whole history, unchanged. The LLM wraps any function-calling LLM and packs every request it
is sent, so it also reaches what no memory sees: a ``FunctionAgent``'s scratchpad within one run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, LLMMetadata, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.memory import BaseMemory
from llama_index.core.tools import BaseTool
from pydantic import ConfigDict, PrivateAttr

from ctxsched.formats import PackedMessages
from ctxsched.integrations._sessions import SessionRecipe
from ctxsched.session import Session

__all__ = ["ContextSchedLLM", "ContextSchedMemory"]


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
        return restored(packed, self._messages)

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


class _Packed(list):  # type: ignore[type-arg]
    """A request ``ContextSchedLLM`` packed already (while preparing a call with tools): not packed again."""


class ContextSchedLLM(FunctionCallingLLM):
    """A function-calling LLM that packs every request into ``budget`` tokens, then sends it to ``llm``.

    It is where a memory cannot reach: a ``FunctionAgent`` sends its memory's history followed by the current
    run's scratchpad (that run's tool calls and results), and only the LLM sees both. Tool definitions are
    counted (as OpenAI function definitions); one ``Session`` lasts while the requests grow, and other tools or
    a request that does not start with the previous one start a new one. Completions (a prompt, not a
    conversation) go to ``llm`` as they are. ``last`` is the latest ``PackedMessages`` (``explain()``,
    ``cache``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llm: Any
    budget: int
    encoding: str = "o200k_base"
    policy: Any = None
    summarizer: Any = None
    store: Any = None
    last: PackedMessages | None = None
    _recipe: SessionRecipe = PrivateAttr()
    _session: Session | None = PrivateAttr(default=None)
    _made_for: list[dict[str, Any]] | None = PrivateAttr(default=None)
    _seen: list[ChatMessage] = PrivateAttr(default_factory=list)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def model_post_init(self, context: Any) -> None:
        """Check the arguments now, not at the first call."""
        if not isinstance(self.llm, FunctionCallingLLM):
            raise TypeError(f"llm must be a LlamaIndex FunctionCallingLLM, not {type(self.llm).__name__}")
        self._recipe = SessionRecipe(self.budget, self.policy, self.summarizer, self.store, self.encoding)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name for the class."""
        return "ContextSchedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """The wrapped LLM's."""
        return self.llm.metadata  # type: ignore[no-any-return]

    def pack(self, messages: Sequence[ChatMessage], tools: Sequence[Any] = ()) -> list[ChatMessage]:
        """``messages`` packed into the budget, ``tools`` (LlamaIndex tools) counted."""
        if isinstance(messages, _Packed):
            return messages
        definitions = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        with self._lock:
            grows = self._seen == list(messages[: len(self._seen)])
            if self._session is None or self._made_for != definitions or not grows:
                self._session, self._made_for, self._seen = self._recipe.session(definitions), definitions, []
            self._session.sync([as_openai(message) for message in messages])
            self._seen = list(messages)
            packed = self._session.pack()
        self.last = packed
        return restored(packed, messages)

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        history = list(chat_history or [])
        if user_msg:
            history.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        prepared: dict[str, Any] = self.llm._prepare_chat_with_tools_compat(
            tools, chat_history=self.pack(history, tools), verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls, tool_required=tool_required, **kwargs,
        )  # fmt: skip
        if isinstance(prepared.get("messages"), list):
            prepared["messages"] = _Packed(prepared["messages"])
        return prepared

    def _validate_chat_with_tools_response(
        self, response: ChatResponse, tools: Sequence[BaseTool], allow_parallel_tool_calls: bool = False, **kwargs: Any
    ) -> ChatResponse:
        return self.llm._validate_chat_with_tools_response(  # type: ignore[no-any-return]
            response, tools, allow_parallel_tool_calls=allow_parallel_tool_calls, **kwargs
        )

    def get_tool_calls_from_response(self, response: Any, error_on_no_tool_call: bool = True, **kwargs: Any) -> Any:
        """The wrapped LLM's reading of the calls a response makes."""
        return self.llm.get_tool_calls_from_response(response, error_on_no_tool_call=error_on_no_tool_call, **kwargs)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        """The wrapped LLM's ``chat`` with ``messages`` packed."""
        return self.llm.chat(self.pack(messages), **kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        """The wrapped LLM's ``stream_chat`` with ``messages`` packed."""
        return self.llm.stream_chat(self.pack(messages), **kwargs)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        """The wrapped LLM's ``achat`` with ``messages`` packed."""
        return await self.llm.achat(self.pack(messages), **kwargs)

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        """The wrapped LLM's ``astream_chat`` with ``messages`` packed."""
        return await self.llm.astream_chat(self.pack(messages), **kwargs)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        """The wrapped LLM's, unchanged."""
        return self.llm.complete(prompt, formatted=formatted, **kwargs)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        """The wrapped LLM's, unchanged."""
        return self.llm.stream_complete(prompt, formatted=formatted, **kwargs)

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        """The wrapped LLM's, unchanged."""
        return await self.llm.acomplete(prompt, formatted=formatted, **kwargs)

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        """The wrapped LLM's, unchanged."""
        return await self.llm.astream_complete(prompt, formatted=formatted, **kwargs)


def restored(packed: PackedMessages, originals: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``packed`` as LlamaIndex messages.

    The object of ``originals`` where kept whole, a copy with the kept text where cut (``content`` is derived from
    the blocks, so a cut message is a new one), a summary as a user message.
    """
    out = []
    for message, index in zip(packed.messages, packed.indices, strict=True):
        if index is None:
            out.append(ChatMessage(role=MessageRole.USER, content=message["content"]))
            continue
        original = originals[index]
        if message.get("content") == (original.content or ""):
            out.append(original)
        else:
            extra = dict(original.additional_kwargs)
            out.append(ChatMessage(role=original.role, content=message["content"], additional_kwargs=extra))
    return out


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
