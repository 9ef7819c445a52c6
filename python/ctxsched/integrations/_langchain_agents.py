"""``ContextSchedMiddleware``: ctxsched inside LangChain v1's ``create_agent`` (needs ``langchain>=1``).

Imported through ``ctxsched.integrations.langchain`` only when asked for, so that the message helpers there
work with ``langchain-core`` alone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, convert_to_openai_messages
from langchain_core.utils.function_calling import convert_to_openai_tool

from ctxsched.formats import PackedMessages
from ctxsched.hooks import Summarizer
from ctxsched.integrations._sessions import SessionRecipe
from ctxsched.policy import Policy
from ctxsched.session import Session
from ctxsched.stores import Store

__all__ = ["ContextSchedMiddleware"]

#: Threads whose sessions are kept (the least recently used goes first).
_MAX_THREADS = 1024


class _Thread:
    """One thread's session, and what it was made for (a changed history or tool list starts a new one)."""

    def __init__(self, session: Session, tools: list[dict[str, Any]]) -> None:
        self.session = session
        self.tools = tools
        self.ids: list[str | None] = []  # the LangChain ids of the messages it has, to notice an edited history
        self.lock = threading.Lock()


class ContextSchedMiddleware(AgentMiddleware):
    """Packs each model request of a ``create_agent`` agent into ``budget`` tokens.

    One ``ctxsched.Session`` per graph thread (``config["configurable"]["thread_id"]``) keeps the prompt's
    prefix stable across turns. Only the request changes: the graph's stored messages are left as they are.

    Args:
        budget: the prompt's budget in tokens, the system prompt and the request's tools included.
        policy: a ``ctxsched.Policy`` for the sessions (``chat_policy()`` by default).
        summarizer: a summarisation hook for the sessions (``ctxsched.hooks``).
        store: where summaries are memoised (``ctxsched.stores``).
        encoding: a built-in encoding.

    ``last`` is the latest ``PackedMessages`` (``explain()``, ``cache``), and ``packed(thread_id)`` a thread's.
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
        super().__init__()
        self.recipe = SessionRecipe(budget, policy, summarizer, store, encoding)
        self._threads: OrderedDict[str, _Thread] = OrderedDict()
        self._packs: dict[str, PackedMessages] = {}
        self._lock = threading.Lock()
        self.last: PackedMessages | None = None

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse | Any:
        thread, conversation, originals = self._prepare(request)
        with thread.lock:
            packed = thread.session.pack()
        return handler(self._finish(request, thread, packed, conversation, originals))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse | Any:
        thread, conversation, originals = self._prepare(request)
        with thread.lock:
            packed = await thread.session.apack()
        return await handler(self._finish(request, thread, packed, conversation, originals))

    def packed(self, thread_id: str) -> PackedMessages | None:
        """The latest pack of a thread, if it has one."""
        return self._packs.get(thread_id)

    def _prepare(self, request: ModelRequest) -> tuple[_Thread, list[dict[str, Any]], list[BaseMessage]]:
        """The thread's session, given the messages it does not have yet."""
        system = request.system_message
        originals: list[BaseMessage] = [*([system] if system is not None else []), *request.messages]
        conversation = convert_to_openai_messages(originals)
        tools = [convert_to_openai_tool(tool) for tool in request.tools or []]
        key = _thread_id()
        with self._lock:
            thread = self._threads.get(key)
            ids = [getattr(message, "id", None) for message in originals]
            if thread is None or thread.tools != tools or thread.ids != ids[: len(thread.ids)]:
                thread = self._threads[key] = _Thread(self.recipe.session(tools), tools)
            self._threads.move_to_end(key)
            while len(self._threads) > _MAX_THREADS:
                gone, _ = self._threads.popitem(last=False)
                self._packs.pop(gone, None)
        with thread.lock:
            thread.session.sync(conversation)
            thread.ids = ids
        return thread, conversation, originals

    def _finish(
        self,
        request: ModelRequest,
        thread: _Thread,
        packed: PackedMessages,
        conversation: list[dict[str, Any]],
        originals: list[BaseMessage],
    ) -> ModelRequest:
        """The request with the packed messages: the graph's own objects where kept whole."""
        self.last = self._packs[_thread_id()] = packed
        system = request.system_message
        out: list[BaseMessage] = []
        new_system: SystemMessage | None = system
        for source, message in zip(packed.indices, packed.messages, strict=True):
            if source is None:  # a summary of messages that had to go
                out.append(HumanMessage(content=message["content"]))
                continue
            original = originals[source]
            kept = message is conversation[source] or message == conversation[source]
            copy = original if kept else original.model_copy(update={"content": message["content"]})
            if system is not None and source == 0:
                new_system = copy  # type: ignore[assignment]
            else:
                out.append(copy)
        return request.override(messages=out, system_message=new_system)  # type: ignore[arg-type]


def _thread_id() -> str:
    """The graph thread being run (one session each); runs without a checkpointer share ``"default"``."""
    try:
        from langgraph.config import get_config

        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # not inside a graph run
        return "default"
    thread = configurable.get("thread_id")
    return str(thread) if thread is not None else "default"
