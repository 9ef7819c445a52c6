"""ctxsched in the OpenAI Agents SDK: ``RunConfig(call_model_input_filter=input_filter(budget))``.

Needs ``openai-agents`` (``pip install 'ctxsched[openai-agents]'``). Before every model call the SDK hands the
filter the Responses input items and the agent's instructions; the filter packs the items with a ``Session``
(``format="responses"``: reasoning items stay with the item that follows them), the instructions and the agent's
function tools counted, and gives the SDK the packed items. The SDK's own history (``result.to_input_list()``)
is not changed: only what the model is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ctxsched.formats import PackedMessages
from ctxsched.hooks import Summarizer
from ctxsched.integrations._sessions import SessionRecipe
from ctxsched.policy import Policy
from ctxsched.session import Session
from ctxsched.stores import Store

__all__ = ["ContextSchedInputFilter", "input_filter"]


class ContextSchedInputFilter:
    """A ``call_model_input_filter``: packs each model call's input into ``budget`` tokens with one ``Session``.

    The session lasts while the input grows (one run, and later runs given ``result.to_input_list()`` plus new
    items); an input that does not start with what the session has, other instructions or other tools start a
    new one. ``last`` is the latest ``PackedMessages`` (``explain()``, ``cache``).
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
        self.recipe = SessionRecipe(budget, policy, summarizer, store, encoding, format="responses")
        self.last: PackedMessages | None = None
        self._session: Session | None = None
        self._made_for: tuple[str | None, list[dict[str, Any]]] | None = None
        self._seen: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, data: Any) -> Any:
        """The packed ``ModelInputData`` for a ``CallModelData`` (the SDK's call)."""
        from agents.run import ModelInputData

        instructions: str | None = data.model_data.instructions
        items = list(data.model_data.input)
        tools = _function_tools(getattr(data.agent, "tools", None) or [])
        with self._lock:
            session = self._session_for(instructions, tools, items)
            head = [{"role": "system", "content": instructions}] if instructions else []
            session.sync([*head, *items])
            self._seen = items
            packed = session.pack()
        self.last = packed
        # The instructions went in as the first item, to be counted and kept: they go back as instructions.
        offset = len(head)
        pairs = zip(packed.messages, packed.indices, strict=True)
        out = [item for item, index in pairs if index is None or index >= offset]
        return ModelInputData(input=out, instructions=instructions)

    def _session_for(self, instructions: str | None, tools: list[dict[str, Any]], items: list[Any]) -> Session:
        made_for = (instructions, tools)
        grows = self._seen == items[: len(self._seen)]
        if self._session is None or self._made_for != made_for or not grows:
            self._session = self.recipe.session(tools)
            self._made_for, self._seen = made_for, []
        return self._session


def input_filter(
    budget: int,
    policy: Policy | Mapping[str, Any] | None = None,
    summarizer: Summarizer | None = None,
    store: Store | None = None,
    *,
    encoding: str = "o200k_base",
) -> ContextSchedInputFilter:
    """A filter for ``RunConfig(call_model_input_filter=...)``; see ``ContextSchedInputFilter``."""
    return ContextSchedInputFilter(budget, policy, summarizer, store, encoding=encoding)


def _function_tools(tools: list[Any]) -> list[dict[str, Any]]:
    """The agent's function tools as the Chat Completions tool definitions they are counted as."""
    definitions = []
    for tool in tools:
        schema = getattr(tool, "params_json_schema", None)
        if schema is None:  # hosted tools (web search, file search...): their definitions are the provider's
            continue
        function = {"name": tool.name, "description": getattr(tool, "description", "") or "", "parameters": schema}
        definitions.append({"type": "function", "function": function})
    return definitions
