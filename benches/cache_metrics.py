"""Prompt-cache figures for a replayed agent loop, computed the same way for every packer and independent of
ctxsched.

Each prompt is rendered as one token sequence: per message, ``<|im_start|>`` + role + newline + its text (string
content, or its text parts joined) + each tool call's name and arguments + ``<|im_end|>``, encoded with tiktoken's
o200k_base (ordinary tokens). A call's reuse is its hits over its tokens ("reuse": the mean over calls, the first
call of each transcript counting 0; "reuse_after_first": without those; "reuse_by_tokens": all hits over all
tokens). A call's hits are the longest common prefix with the previous call's sequence (what a
provider's prefix cache would serve), its misses the rest. Its new tokens are those of the messages that were not
in the previous call's conversation: miss amplification is misses over new tokens (1.0 when only new text is paid
for), cost per call is misses + 0.1 x hits (cached tokens at 10%).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from tests.reference import reference

Message = dict[str, Any]
Key = tuple[str, str, str]
CACHED_PRICE = 0.1


def key(message: Message) -> Key:
    """What the rendering depends on: role, text, tool calls (as JSON)."""
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    else:
        text = content if isinstance(content, str) else ""
    calls = [_call(call) for call in message.get("tool_calls") or []]
    return message["role"], text, json.dumps(calls) if calls else ""


def _call(call: dict[str, Any]) -> tuple[str, str]:
    function = call.get("function", call)
    arguments = function.get("arguments", "")
    return function["name"], arguments if isinstance(arguments, str) else json.dumps(arguments)


def chatml(message: Message) -> str:
    """The same rendering as one string (for packers that count text themselves)."""
    role, text, calls = key(message)
    return f"<|im_start|>{role}\n{text}" + "".join(name + arguments for name, arguments in _calls(calls)) + "<|im_end|>"


def _calls(calls: str) -> list[tuple[str, str]]:
    return [(name, arguments) for name, arguments in json.loads(calls)] if calls else []


class Renderer:
    """Messages to tokens, each distinct message encoded once."""

    def __init__(self) -> None:
        self._encode = reference("o200k_base").encode_ordinary
        self._start, self._end = self._encode("<|im_start|>"), self._encode("<|im_end|>")
        self._cache: dict[Key, list[int]] = {}

    def message(self, message: Message) -> list[int]:
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
    """Which output messages are among ``new`` (the inputs added since the last call), for packers that do not say
    where each output message came from: the output's tail aligned with ``new`` in order, by rendering key."""
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
    """The calls of one implementation at one budget, over every replayed transcript."""

    renderer: Renderer = field(default_factory=Renderer)
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

    def call(self, conversation: list[Message], out: list[Message], indices: list[int | None] | None) -> None:
        """One prompt sent: ``out`` packed from ``conversation``; ``indices`` the input index of each output
        message, when the packer says."""
        rendered = [self.renderer.message(message) for message in out]
        tokens = [token for message in rendered for token in message]
        hits = common_prefix(tokens, self._previous)
        if indices is None:
            flags = new_flags(out, conversation[self._previous_length :])
        else:
            # A summary (index None) is the packer's text, not the conversation's: not counted as new.
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
        return {
            "reuse": round(statistics.mean(self.reuse), 4) if self.reuse else None,
            "reuse_after_first": round(statistics.mean(self.reuse_after_first), 4) if self.reuse_after_first else None,
            "reuse_by_tokens": round(self.hits / self.tokens, 4) if self.tokens else None,
            "amplification": round(self.misses / self.new_tokens, 3) if self.new_tokens else None,
            "cost_per_call": round(statistics.mean(self.costs), 1) if self.costs else None,
        }
