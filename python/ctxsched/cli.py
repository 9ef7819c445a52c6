"""The ``ctxsched`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsched._core import Segment, Tokenizer, encodings
from ctxsched.exceptions import ContextSchedError
from ctxsched.policy import Policy
from ctxsched.scheduler import Scheduler

__all__ = ["main"]

# OpenAI's published chat accounting (DESIGN.md, "Token accounting conventions").
_PER_MESSAGE = 3
_PER_NAME = 1
_PER_TOOL_CALL = 3
_REPLY_PRIMING = 3


class _InputError(Exception):
    """A conversation file that cannot be read; the message says why."""


def _load_messages(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _InputError(f"cannot read {path}: {error}") from error
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list):
        raise _InputError(f"{path}: expected a list of chat messages or an object with a 'messages' list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _InputError(f"{path}: message {index} is not an object with a string 'role'")
        if not isinstance(message.get("content") or "", str):
            raise _InputError(f"{path}: message {index} has non-string content")
    return messages


def _message_texts(message: dict[str, Any]) -> list[str]:
    """The strings of one message that the chat format counts, in a fixed order."""
    texts = [message["role"], message.get("content") or ""]
    if isinstance(message.get("name"), str):
        texts.append(message["name"])
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        texts += [str(function.get("name", "")), str(function.get("arguments", ""))]
    return texts


def _count(args: argparse.Namespace) -> int:
    messages = _load_messages(args.file)
    tokenizer = Tokenizer(args.encoding)
    # One call into Rust for every string of the conversation.
    per_message = [_message_texts(message) for message in messages]
    counts = iter(tokenizer.count_many([text for texts in per_message for text in texts]))
    rows = []
    for message in messages:
        role_tokens, content_tokens = next(counts), next(counts)
        overhead = _PER_MESSAGE + role_tokens
        if isinstance(message.get("name"), str):
            overhead += next(counts) + _PER_NAME
        for _call in message.get("tool_calls") or []:
            overhead += _PER_TOOL_CALL + next(counts) + next(counts)
        rows.append((message["role"], content_tokens, overhead, (message.get("content") or "")[:60]))
    total = sum(content + overhead for _, content, overhead, _ in rows) + _REPLY_PRIMING

    print(f"{args.file}  ({len(messages)} messages, encoding {tokenizer.name})")
    print(f"{'#':>3}  {'role':<10} {'content':>8} {'+format':>8}  preview")
    for index, (role, content, overhead, preview) in enumerate(rows):
        print(f"{index:>3}  {role:<10} {content:>8,} {overhead:>8,}  {preview!r}")
    print(f"total: {total:,} tokens as sent (including {_REPLY_PRIMING} for the reply priming)")
    if args.budget is not None:
        verdict = "fits" if total <= args.budget else f"over by {total - args.budget:,}"
        print(f"budget {args.budget:,}: {verdict}")
        biggest = max(range(len(rows)), key=lambda index: rows[index][1], default=None)
        if biggest is not None and total > args.budget:
            role, content, _, _ = rows[biggest]
            print(f"largest message: #{biggest} ({role}, {content:,} tokens, {content * 100 // total}% of the total)")
    return 0


def _segments(messages: list[dict[str, Any]]) -> list[Segment]:
    """Chat messages as segments, plainly mapped until the chat front-ends arrive.

    System messages are pinned to the head, the first user message (the task) is required, and an
    assistant turn with tool calls is grouped with its tool results.
    """
    groups: dict[str, str] = {}
    first_user = next((index for index, message in enumerate(messages) if message["role"] == "user"), None)
    segments = []
    for index, message in enumerate(messages):
        role = message["role"]
        group = None
        for call in message.get("tool_calls") or []:
            groups[str(call.get("id"))] = group = f"turn-{index}"
        if role == "tool":
            group = groups.get(str(message.get("tool_call_id")))
        kind = {"system": "system", "tool": "tool_result"}.get(role, "history")
        if index == first_user:
            kind = "instruction"
        segments.append(
            Segment(
                message.get("content") or "",
                id=f"{index}:{role}",
                kind=kind,
                role=role,
                pin="head" if role == "system" else None,
                required=index == first_user,
                group=group,
                metadata=message,
            )
        )
    return segments


def _pack(args: argparse.Namespace) -> int:
    messages = _load_messages(args.file)
    try:
        policy = Policy.from_file(args.policy) if args.policy else Policy()
    except (OSError, ValueError) as error:
        raise _InputError(f"cannot load policy {args.policy}: {error}") from error
    try:
        result = Scheduler(args.encoding, policy).pack(_segments(messages), args.budget)
    except ContextSchedError as error:
        raise _InputError(str(error)) from error
    print(result.explain(), end="")
    if args.show_text:
        print("\n--- packed text ---")
        print(result.text())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctxsched", description="Context-window scheduling for LLM agents.")
    commands = parser.add_subparsers(dest="command", required=True)
    count = commands.add_parser("count", help="count the tokens of an OpenAI-format conversation (JSON)")
    count.add_argument("file", type=Path, help="a JSON list of chat messages, or an object with 'messages'")
    count.add_argument("--encoding", default="o200k_base", choices=encodings())
    count.add_argument("--budget", type=int, help="a token budget to compare the conversation against")
    count.set_defaults(run=_count)
    pack = commands.add_parser("pack", help="pack an OpenAI-format conversation into a budget and explain it")
    pack.add_argument("file", type=Path, help="a JSON list of chat messages, or an object with 'messages'")
    pack.add_argument("--budget", type=int, required=True, help="the token budget")
    pack.add_argument("--policy", type=Path, help="a policy file (.json, .toml, .yaml)")
    pack.add_argument("--encoding", default="o200k_base", choices=encodings())
    pack.add_argument("--show-text", action="store_true", help="print the packed text too")
    pack.set_defaults(run=_pack)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except _InputError as error:
        print(f"ctxsched: {error}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
