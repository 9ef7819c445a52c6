"""The ``ctxsched`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsched._core import Tokenizer, chat_tokens, encodings
from ctxsched.exceptions import ContextSchedError
from ctxsched.formats import ChatAccounting, pack_messages
from ctxsched.policy import Policy

__all__ = ["main"]


class _InputError(Exception):
    """A conversation file that cannot be read; the message says why."""


def _load_messages(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _InputError(f"cannot read {path}: {error}") from error
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list):
        raise _InputError(f"{path}: expected a list of chat messages or an object with a 'messages' list")
    return messages


def _count(args: argparse.Namespace) -> int:
    messages = _load_messages(args.file)
    tokenizer = Tokenizer(args.encoding)
    accounting = ChatAccounting()
    try:
        rows = chat_tokens(messages, tokenizer, accounting)  # read once, in Rust
    except ContextSchedError as error:
        raise _InputError(f"{args.file}: {error}") from error
    total = sum(content + overhead for _, content, overhead, _ in rows) + accounting.reply_priming

    print(f"{args.file}  ({len(messages)} messages, encoding {tokenizer.name})")
    print(f"{'#':>3}  {'role':<10} {'content':>8} {'+format':>8}  preview")
    for index, (role, content, overhead, preview) in enumerate(rows):
        print(f"{index:>3}  {role:<10} {content:>8,} {overhead:>8,}  {preview!r}")
    print(f"total: {total:,} tokens as sent (including {accounting.reply_priming} for the reply priming)")
    if args.budget is not None:
        verdict = "fits" if total <= args.budget else f"over by {total - args.budget:,}"
        print(f"budget {args.budget:,}: {verdict}")
        biggest = max(range(len(rows)), key=lambda index: rows[index][1], default=None)
        if biggest is not None and total > args.budget:
            role, content, _, _ = rows[biggest]
            print(f"largest message: #{biggest} ({role}, {content:,} tokens, {content * 100 // total}% of the total)")
    return 0


def _pack(args: argparse.Namespace) -> int:
    messages = _load_messages(args.file)
    try:
        policy = Policy.from_file(args.policy) if args.policy else None
    except (OSError, ValueError) as error:
        raise _InputError(f"cannot load policy {args.policy}: {error}") from error
    try:
        packed = pack_messages(messages, args.budget, args.encoding, policy)
    except ContextSchedError as error:
        raise _InputError(str(error)) from error
    print(packed.explain(), end="")
    print(
        f"sent: {len(packed.messages)} messages, {packed.tokens:,} tokens of {args.budget:,} (reply priming included)"
    )
    if args.show_text:
        print("\n--- packed text ---")
        print("\n\n".join(str(message.get("content") or "") for message in packed.messages))
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
