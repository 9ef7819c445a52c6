"""An agent loop replayed over logged conversations, and what each prompt would cost with a provider's prefix cache.

``replay`` packs, before every assistant turn that follows the first user message, the conversation so far (a
``Session`` is given only the messages new since its last pack) and measures each prompt. ``ctxsched replay``
and the benchmarks use these figures; the benchmarks pass tiktoken's encoder so their figures do not depend
on ctxsched's counting.

Each prompt is rendered as one token sequence: per message, ``<|im_start|>`` + role + newline + its text (string
content, or its text parts joined) + each tool call's name and arguments + ``<|im_end|>``, encoded as ordinary
text. A call's hits are the longest common prefix with the previous call's sequence (what a prefix cache
serves), its misses the rest. Its new tokens are those of the messages that were not in the previous call's
conversation. Prefix reuse is hits over tokens ("reuse": the mean over calls, a transcript's first call counting
0; "reuse_after_first": without those; "reuse_by_tokens": all hits over all tokens). Miss amplification is misses
over new tokens (1.0 when only new text is paid for); cost per call is misses + 0.1 x hits (cached tokens at 10%).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CACHED_PRICE",
    "CacheFigures",
    "Prompt",
    "Renderer",
    "Replay",
    "ReplayFailure",
    "agent_turns",
    "chatml",
    "common_prefix",
    "problems",
    "replay",
]

Message = dict[str, Any]
Key = tuple[str, str, str]
#: The price of a cached input token, as a share of an uncached one.
CACHED_PRICE = 0.1


def key(message: Message) -> Key:
    """What the rendering depends on: role, text, tool calls (as JSON)."""
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    else:
        text = content if isinstance(content, str) else ""
    calls = [_call(call) for call in message.get("tool_calls") or []]
    return str(message.get("role", "")), text, json.dumps(calls) if calls else ""


def _call(call: dict[str, Any]) -> tuple[str, str]:
    function = call.get("function", call)
    arguments = function.get("arguments", "")
    return str(function.get("name", "")), arguments if isinstance(arguments, str) else json.dumps(arguments)


def _calls(calls: str) -> list[tuple[str, str]]:
    return [(name, arguments) for name, arguments in json.loads(calls)] if calls else []


def chatml(message: Message) -> str:
    """The rendering as one string (for packers that count text themselves)."""
    role, text, calls = key(message)
    return f"<|im_start|>{role}\n{text}" + "".join(name + arguments for name, arguments in _calls(calls)) + "<|im_end|>"


class Renderer:
    """Messages to tokens with ``encode``, each distinct message encoded once."""

    def __init__(self, encode: Callable[[str], list[int]]) -> None:
        self._encode = encode
        self._start, self._end = encode("<|im_start|>"), encode("<|im_end|>")
        self._cache: dict[Key, list[int]] = {}

    def message(self, message: Message) -> list[int]:
        """The tokens of one message as rendered."""
        found = key(message)
        tokens = self._cache.get(found)
        if tokens is None:
            role, text, calls = found
            tokens = self._start + self._encode(f"{role}\n{text}")
            for name, arguments in _calls(calls):
                tokens += self._encode(name) + self._encode(arguments)
            tokens += self._end
            self._cache[found] = tokens
        return tokens


def common_prefix(first: list[int], second: list[int]) -> int:
    """Length of the longest common prefix, compared a slice at a time."""
    limit, at, step = min(len(first), len(second)), 0, 4096
    while step:
        while at + step <= limit and first[at : at + step] == second[at : at + step]:
            at += step
        step //= 2
    return at


def new_flags(out: list[Message], new: list[Message]) -> list[bool]:
    """Which output messages are among ``new``, the inputs added since the last call.

    For packers that do not say where each output message came from: the output's tail aligned with ``new`` in
    order, by rendering key.
    """
    flags = [False] * len(out)
    keys = [key(message) for message in new]
    at = len(keys) - 1
    for position in range(len(out) - 1, -1, -1):
        found = key(out[position])
        while at >= 0 and keys[at] != found:
            at -= 1
        if at < 0:
            break
        flags[position] = True
        at -= 1
    return flags


@dataclass
class CacheFigures:
    """The prompts of one packer at one budget, over every replayed transcript."""

    renderer: Renderer
    reuse: list[float] = field(default_factory=list)
    #: Reuse of the calls that had a previous call (the first call of a transcript has nothing to reuse).
    reuse_after_first: list[float] = field(default_factory=list)
    hits: int = 0
    tokens: int = 0
    costs: list[float] = field(default_factory=list)
    misses: int = 0
    new_tokens: int = 0
    _previous: list[int] = field(default_factory=list)
    _previous_length: int = 0

    def start(self) -> None:
        """A new transcript: nothing is cached."""
        self._previous, self._previous_length = [], 0

    def call(self, conversation: list[Message], out: list[Message], indices: Sequence[int | None] | None) -> None:
        """One prompt sent: ``out`` packed from ``conversation``.

        ``indices`` is the input index of each output message, when the packer says.
        """
        rendered = [self.renderer.message(message) for message in out]
        tokens = [token for message in rendered for token in message]
        hits = common_prefix(tokens, self._previous)
        if indices is None:
            flags = new_flags(out, conversation[self._previous_length :])
        else:
            # A summary or a restatement (index None) is the packer's text, not the conversation's: not new.
            flags = [index is not None and index >= self._previous_length for index in indices]
        self.new_tokens += sum(len(message) for message, new in zip(rendered, flags, strict=True) if new)
        self.misses += len(tokens) - hits
        self.reuse.append(hits / len(tokens) if tokens else 0.0)
        if self._previous:
            self.reuse_after_first.append(self.reuse[-1])
        self.hits += hits
        self.tokens += len(tokens)
        self.costs.append(len(tokens) - hits + CACHED_PRICE * hits)
        self._previous, self._previous_length = tokens, len(conversation)

    def summary(self) -> dict[str, float | None]:
        """The figures, rounded."""
        return {
            "reuse": round(statistics.mean(self.reuse), 4) if self.reuse else None,
            "reuse_after_first": round(statistics.mean(self.reuse_after_first), 4) if self.reuse_after_first else None,
            "reuse_by_tokens": round(self.hits / self.tokens, 4) if self.tokens else None,
            "amplification": round(self.misses / self.new_tokens, 3) if self.new_tokens else None,
            "cost_per_call": round(statistics.mean(self.costs), 1) if self.costs else None,
        }


def agent_turns(messages: Sequence[Message]) -> list[int]:
    """The calls an agent loop makes, as the ``turn`` of each (the call packs ``messages[:turn]``).

    One before each assistant message after the first user message.
    """
    first_user = next((i for i, message in enumerate(messages) if message.get("role") == "user"), len(messages))
    return [turn for turn in range(first_user + 1, len(messages)) if messages[turn].get("role") == "assistant"]


def problems(original: Sequence[Message], out: Sequence[Message], budget: int, tokens: int) -> list[str]:
    """What is wrong with a packed prompt of ``tokens`` (counted with its tools).

    Over the budget, a tool result without its call or a call without its result, the task or the system
    prompt dropped.
    """
    found = []
    if tokens > budget:
        found.append("over budget")
    calls: set[str] = set()
    answered: set[str] = set()
    for message in out:
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in calls:
                found.append("orphaned tool result")
            answered.add(str(message.get("tool_call_id", "")))
        calls.update(str(call.get("id")) for call in message.get("tool_calls") or [])
    if calls - answered:
        found.append("call without its result")
    contents = [message.get("content") for message in out]
    task = next((m for m in original if m.get("role") == "user"), None)
    text = task.get("content") if task else None
    if isinstance(text, str) and not any(isinstance(c, str) and c and text.startswith(c[:200]) for c in contents):
        found.append("task dropped")
    if any(m.get("role") == "system" for m in original) and not any(m.get("role") == "system" for m in out):
        found.append("system prompt dropped")
    return found


@dataclass
class Replay:
    """The figures of a replay: per call, and in total."""

    budget: int
    conversations: int = 0
    seconds: list[float] = field(default_factory=list)
    #: Prompt tokens over the budget, for each call whose conversation did not fit whole.
    utilisation: list[float] = field(default_factory=list)
    invalid: list[tuple[int, int, list[str]]] = field(default_factory=list)
    figures: CacheFigures | None = None

    def totals(self) -> dict[str, Any]:
        """Everything, rounded for people and scripts alike."""
        ms = sorted(second * 1000 for second in self.seconds)
        cache = self.figures.summary() if self.figures else {}
        return {
            "budget": self.budget,
            "conversations": self.conversations,
            "calls": len(ms),
            "ms_per_turn": {
                "mean": round(statistics.mean(ms), 3) if ms else None,
                "median": round(statistics.median(ms), 3) if ms else None,
                "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 3) if ms else None,
            },
            "utilisation": round(statistics.median(self.utilisation), 4) if self.utilisation else None,
            "invalid": len(self.invalid),
            "reuse": cache.get("reuse"),
            "reuse_after_first": cache.get("reuse_after_first"),
            "amplification": cache.get("amplification"),
            "cost_per_call": cache.get("cost_per_call"),
        }


class ReplayFailure(Exception):
    """A pack failed during a replay: the conversation (by position), the call (before message ``turn``), why."""

    def __init__(self, conversation: int, turn: int, error: Exception) -> None:
        super().__init__(f"conversation {conversation}, the call before message {turn}: {error}")
        self.conversation, self.turn, self.error = conversation, turn, error


@dataclass(frozen=True)
class Prompt:
    """One packed prompt.

    Its messages, each one's input index (``None``: the packer's own), its tokens as counted (tools included),
    and whether anything had to give (the conversation did not fit whole).
    """

    messages: list[Message]
    indices: Sequence[int | None]
    tokens: int
    squeezed: bool


#: Packs ``conversation[:turn]``.
Step = Callable[[list[Message], int], Prompt]


def replay(
    conversations: Iterable[list[Message]],
    budget: int,
    start: Callable[[], Step],
    encode: Callable[[str], list[int]],
    on_call: Callable[[], None] | None = None,
) -> Replay:
    """Replay the agent loop of each conversation with a fresh packer from ``start``, measuring every prompt."""
    result = Replay(budget=budget, figures=CacheFigures(Renderer(encode)))
    assert result.figures is not None
    for number, messages in enumerate(conversations):
        result.conversations += 1
        result.figures.start()
        step = start()
        for turn in agent_turns(messages):
            began = time.perf_counter()
            try:
                prompt = step(messages, turn)
            except (ValueError, TypeError) as error:  # the package's errors are ValueErrors and TypeErrors
                raise ReplayFailure(number, turn, error) from error
            result.seconds.append(time.perf_counter() - began)
            result.figures.call(messages[:turn], prompt.messages, prompt.indices)
            if found := problems(messages[:turn], prompt.messages, budget, prompt.tokens):
                result.invalid.append((number, turn, found))
            if prompt.squeezed:
                result.utilisation.append(prompt.tokens / budget)
            if on_call is not None:
                on_call()
    return result
