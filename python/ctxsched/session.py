"""``Session``: one conversation, packed before every model call, with the prompt's prefix kept stable.

Providers cache the longest prefix a prompt shares with an earlier one (OpenAI automatically, Anthropic at
``cache_control`` breakpoints) and bill it at about a tenth. ``pack_messages`` decides afresh on every call,
so the stubs and cuts of old tool results move and the cache misses. A ``Session`` keeps its decisions:

- within an epoch each prompt is the previous prompt plus the new messages, byte for byte;
- a pack that would pass the high watermark starts a new epoch: evictions, stubs and cuts bring the prompt
  down to the low watermark in one step, from a cut point as late as it can be (the history just before the
  recent window goes, the oldest stays where the cache has it);
- new messages are read and counted once; only the prompt's messages and the new ones are packed;
- with a ``summarizer``, what a new epoch evicts is summarised into one user message where it was; the summary
  is then kept as sent until a later epoch must free more next to it, when a new summary covers both (made from
  the originals while they fit ``Policy.summaries.input_tokens``, else from the earlier summary and the new
  originals: never a summary of a summary of a summary). So the hook runs once per epoch at most.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ctxsched._core import ChatSession, Tokenizer
from ctxsched.exceptions import PolicyError
from ctxsched.formats.anthropic import AnthropicAccounting
from ctxsched.formats.chat import (
    _DEFAULT_POLICY,
    PackedMessages,
    check_room,
    packer_for,
    summary_arguments,
    summary_step,
)
from ctxsched.formats.openai import ChatAccounting, ToolAccounting, tool_tokens
from ctxsched.hooks import Summarizer
from ctxsched.policy import Policy
from ctxsched.stores import Store

__all__ = ["Session"]

_FORMATS = ("openai", "responses", "anthropic")


class Session:
    """One conversation, packed turn after turn; see the module docstring.

    Args:
        budget: the prompt's budget in tokens (the policy's ``reserve_output`` is kept free within it).
        encoding: a built-in encoding.
        policy: a ``Policy`` (or a dict) instead of ``chat_policy()``; its ``watermarks`` set the epochs.
        format: ``"openai"`` (chat messages: dicts or the SDK's objects), ``"responses"`` (Responses items) or
            ``"anthropic"`` (Anthropic messages; ``packed.messages`` is ``{"system", "messages"}`` with
            ``cache_control`` marks where caching pays).
        tools: the tool definitions sent with every prompt; their tokens are reserved before packing.
        accounting: the per-message constants (``ChatAccounting``).
        tool_accounting: the recipe's constants for tool definitions (``ToolAccounting``).
        key: the session's ``prompt_cache_key`` (a new random one if not given).
        system: the Anthropic system prompt (a str or a list of text blocks).
        anthropic: the Anthropic format's stand-in encoding and safety margin (``AnthropicAccounting``).
        min_cache_tokens: Anthropic: the shortest prefix worth a ``cache_control`` mark (1,024 for most models;
            2,048 for Haiku).
        summarizer: a summarisation hook (``ctxsched.hooks``), run at new epochs for the evicted history of the
            kinds in ``Policy.summarize`` (``["history", "tool_result"]`` when that is empty).
        store: where summaries are memoised (``ctxsched.stores``): a ``SQLiteStore`` keeps them across restarts.

    Raises:
        BudgetError: the output reserve, the reply priming and the tool definitions leave no room.
    """

    def __init__(
        self,
        budget: int,
        encoding: str = "o200k_base",
        policy: Policy | Mapping[str, Any] | None = None,
        format: str = "openai",
        tools: Sequence[Any] | None = None,
        *,
        accounting: ChatAccounting | None = None,
        tool_accounting: ToolAccounting | None = None,
        key: str | None = None,
        system: Any = None,
        anthropic: AnthropicAccounting | None = None,
        min_cache_tokens: int = 1024,
        summarizer: Summarizer | None = None,
        store: Store | None = None,
    ) -> None:
        if format not in _FORMATS:
            raise ValueError(f"a Session's format must be one of {', '.join(map(repr, _FORMATS))}, not {format!r}")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise ValueError(f"budget must be an int >= 0, not {budget!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"key must be a non-empty str, not {key!r}")
        self.policy = (
            policy
            if isinstance(policy, Policy)
            else _DEFAULT_POLICY
            if policy is None
            else Policy.model_validate(policy)
        )
        if self.policy.restate is not None:
            # The copy would sit after the latest message, which a session's next prompt extends.
            raise PolicyError("a Session does not restate yet: use pack_messages for Policy.restate")
        self.accounting = accounting or ChatAccounting()
        self.budget = budget
        self.format = format
        self.key = key or f"ctxsched-{uuid.uuid4().hex}"
        self.note: str | None = None
        packed_into = budget
        if format == "anthropic":
            # Claude's tokenizer is not public: a stand-in encoding, a margin, the tool use system prompt.
            anthropic = anthropic or AnthropicAccounting()
            encoding, packed_into = anthropic.stand_in, int(budget / (1 + anthropic.margin))
            self.accounting = anthropic.chat_accounting(self.accounting)
            self.note = (
                f"counted with {anthropic.stand_in} standing in for Claude's tokenizer (not public), and packed into "
                f"{packed_into} of the {budget} tokens: a {anthropic.margin:.0%} safety margin"
            )
        self.tools_tokens, self.tools = tool_tokens(tools, Tokenizer(encoding), tool_accounting)
        if format == "anthropic" and tools:
            assert anthropic is not None
            self.tools_tokens += anthropic.tool_system_prompt_tokens
            self.tools = [*self.tools, ("tool use system prompt", anthropic.tool_system_prompt_tokens)]
        check_room(packed_into, self.policy, self.accounting, self.tools_tokens, self.tools)
        self._summaries = summary_step(summarizer, store, self.policy, encoding)
        self._summary_arguments = summary_arguments(self._summaries, self.policy) if self._summaries else None
        marks = self.policy.watermarks
        packer = packer_for(encoding, self.policy, self.accounting)
        self._core = ChatSession(
            packer, packed_into, self.accounting, format=format, reserved=self.tools_tokens,
            high=marks.high, low=marks.low, recent=marks.recent, system=system, min_cache_tokens=min_cache_tokens,
        )  # fmt: skip

    def append(self, message: Any) -> None:
        """Add one message (a dict or an SDK message object).

        Raises:
            MessageFormatError: the message is malformed, or is a result that answers no earlier call; the
                session is left as it was.
        """
        self._core.extend([message])

    def extend(self, messages: Iterable[Any]) -> None:
        """Add messages; if one is malformed none is added (``MessageFormatError``)."""
        self._core.extend(messages if isinstance(messages, list | tuple) else list(messages))

    def sync(self, conversation: Sequence[Any]) -> None:
        """Add what a server holds beyond what the session has.

        ``conversation`` is the whole conversation so far, of which the session has the first ``len(session)``.

        Raises:
            ValueError: ``conversation`` is shorter than what the session has.
        """
        known = len(self._core)
        if len(conversation) < known:
            raise ValueError(f"the conversation has {len(conversation)} messages but the session has {known} already")
        self.extend(list(conversation[known:]))

    def pack(self) -> PackedMessages:
        """The prompt for the next model call; ``.cache`` says what it kept of the previous one.

        Raises:
            MessageFormatError: a tool call still waits for its result (append the results first); the
                session is left as it was.
            BudgetError: the system messages, the task and the last user message do not fit, even cut.
        """
        if self._summaries is None:
            return self._packed(*self._core.pack())
        arguments = self._summary_arguments
        planned = self._core.pack(arguments)
        if isinstance(planned, list):
            planned = self._core.pack(arguments, self._summaries.run(planned))
        return self._packed(*planned)

    async def apack(self) -> PackedMessages:
        """``pack``, with the summarisation hooks awaited (at most ``Policy.summaries.concurrency`` at once)."""
        if self._summaries is None:
            return self._packed(*self._core.pack())
        arguments = self._summary_arguments
        planned = self._core.pack(arguments)
        if isinstance(planned, list):
            planned = self._core.pack(arguments, await self._summaries.arun(planned))
        return self._packed(*planned)

    def _packed(self, packed: Any, cache: Any) -> PackedMessages:
        return PackedMessages(
            packed.messages,
            packed.result.tokens + self.accounting.reply_priming + self.tools_tokens,
            packed.result,
            packed.repairs,
            sorted(packed.stubbed),
            packed.indices,
            "; ".join(note for note in (self.note, packed.note) if note) or None,
            self.tools,
            self.tools_tokens,
            packed.primary,
            cache,
            self._core.earlier if self.format != "anthropic" else None,
        )

    @property
    def epoch(self) -> int:
        """The current epoch: 0 before the first pack, then 1, and one more at each new epoch."""
        return self._core.epoch

    @property
    def pending(self) -> int:
        """Messages added since the last pack."""
        return self._core.pending

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        return f"Session(budget={self.budget}, messages={len(self)}, epoch={self.epoch}, key={self.key!r})"
