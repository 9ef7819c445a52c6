"""What each command does.

Every command reads its input through ``inputs`` and reports bad input as an ``InputError``; ``main`` turns that
into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ctxsched import replay as replaying
from ctxsched._core import Tokenizer, chat_tokens
from ctxsched.cli import html
from ctxsched.cli.inputs import Conversation, InputError, load_policy, load_tools, read_conversations
from ctxsched.cli.view import Report, print_report, report_of
from ctxsched.exceptions import ContextSchedError
from ctxsched.formats import ChatAccounting, PackedMessages, count_messages, pack_messages
from ctxsched.policy import Policy
from ctxsched.session import Session

__all__ = ["count", "explain", "pack", "policy_check", "policy_schema", "replay"]


def console(stderr: bool = False) -> Console:
    """A console that colours only a terminal, and never with ``NO_COLOR`` (rich reads both).

    Written to a pipe or a file, it is as wide as ``COLUMNS`` says, else 160 columns: wide enough that a
    decision's reason is not folded into a narrow column.
    """
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else shutil.get_terminal_size((160, 24)).columns
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def _pack(conversation: Conversation, args: argparse.Namespace, policy: Policy | None) -> PackedMessages:
    tools = conversation.tools if conversation.tools is not None else load_tools(args.tools)
    try:
        return pack_messages(conversation.messages, args.budget, args.encoding, policy, args.format, tools=tools)
    except (ContextSchedError, ValueError) as error:
        raise InputError(f"{conversation.name}: {error}") from error


def _packed_json(conversation: Conversation, packed: PackedMessages) -> Any:
    """The packed conversation in the shape it came in."""
    if conversation.listed:
        return packed.messages["messages"] if isinstance(packed.messages, dict) else packed.messages
    out = dict(conversation.extra)
    if isinstance(packed.messages, dict):
        out.update(packed.messages)
    else:
        out["messages"] = packed.messages
    if conversation.tools is not None:
        out["tools"] = conversation.tools
    return out


def pack(args: argparse.Namespace) -> int:
    """``ctxsched pack``: the packed conversations as JSON (JSON Lines for JSON Lines), to stdout or ``-o``."""
    conversations, jsonl = read_conversations(args.input, args.format)
    policy = load_policy(args.policy)
    packed = [_packed_json(conversation, _pack(conversation, args, policy)) for conversation in conversations]
    if jsonl:
        text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in packed)
    else:
        text = json.dumps(packed[0], ensure_ascii=False, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise InputError(f"cannot write {args.output}: {error.strerror or error}") from error
    return 0


def _report(conversation: Conversation, packed: PackedMessages, budget: int) -> Report:
    notes = [note for note in (packed.note, *packed.repairs) if note]
    if packed.tools:
        notes.append(f"tool definitions: {packed.tools_tokens:,} tokens, reserved before packing")
    title = f"{conversation.name}: {packed.tokens:,} of {budget:,} tokens as sent"
    return report_of(packed.result, title, notes)


def _write_html(path: Path, report: Report, replayed: dict[str, Any] | None = None) -> None:
    try:
        html.write(path, report, replayed)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from error


def explain(args: argparse.Namespace) -> int:
    """``ctxsched explain``: the decision table and window map of each conversation, and ``--html``."""
    conversations, _ = read_conversations(args.input, args.format)
    policy = load_policy(args.policy)
    out = console()
    reports = []
    for conversation in conversations:
        report = _report(conversation, _pack(conversation, args, policy), args.budget)
        print_report(report, out)
        reports.append(report)
    if args.html is not None:
        first = reports[0]
        if len(reports) > 1:
            first.notes.append(f"the first of {len(reports)} conversations; the terminal shows all of them")
        _write_html(args.html, first)
        out.print(f"report: {args.html}")
    return 0


class _Replayer:
    """A fresh packer for each conversation, and the last pack, for the report.

    The packer is a ``Session``, or ``pack_messages`` on the whole conversation at each call.
    """

    def __init__(self, args: argparse.Namespace, policy: Policy | None) -> None:
        self.args, self.policy, self.tools = args, policy, load_tools(args.tools)
        self.last: PackedMessages | None = None

    def _prompt(self, packed: PackedMessages) -> replaying.Prompt:
        self.last = packed
        squeezed = any(decision.action != "kept" for decision in packed.result.decisions)
        return replaying.Prompt(packed.messages, list(packed.indices), packed.tokens, squeezed)

    def start(self) -> replaying.Step:
        args = self.args
        if not args.session:
            return lambda messages, turn: self._prompt(
                pack_messages(messages[:turn], args.budget, args.encoding, self.policy, tools=self.tools)
            )
        session = Session(args.budget, args.encoding, self.policy, tools=self.tools)
        seen = 0

        def step(messages: list[dict[str, Any]], turn: int) -> replaying.Prompt:
            nonlocal seen
            session.extend(messages[seen:turn])
            seen = turn
            return self._prompt(session.pack())

        return step


def replay(args: argparse.Namespace) -> int:
    """``ctxsched replay``: the agent loop over each conversation, with a progress bar, and its figures."""
    conversations, _ = read_conversations(args.input, "openai")
    replayer = _Replayer(args, load_policy(args.policy))
    for conversation in conversations:  # read whole first: a malformed message fails before any call is timed
        try:
            count_messages(conversation.messages, encoding=args.encoding)
        except (ContextSchedError, ValueError) as error:
            raise InputError(f"{conversation.name}: {error}") from error
    total = sum(len(replaying.agent_turns(conversation.messages)) for conversation in conversations)
    tokenizer = Tokenizer(args.encoding)
    progress_console = console(stderr=True)
    with Progress(console=progress_console, transient=True, disable=not progress_console.is_terminal) as progress:
        task = progress.add_task("replaying", total=total)
        try:
            result = replaying.replay(
                (conversation.messages for conversation in conversations),
                args.budget,
                replayer.start,
                tokenizer.encode,
                on_call=lambda: progress.advance(task),
            )
        except replaying.ReplayFailure as failure:
            name = conversations[failure.conversation].name
            raise InputError(f"{name}, the call before message {failure.turn}: {failure.error}") from failure
    totals = result.totals()
    if args.json:
        sys.stdout.write(json.dumps(totals, indent=2) + "\n")
    else:
        _print_totals(totals, "Session" if args.session else "pack_messages")
    if args.html is not None and replayer.last is not None and result.figures is not None:
        last = Conversation([], None, f"{conversations[-1].name}, its last call")
        figures = {"totals": totals, "reuse": result.figures.reuse, "costs": result.figures.costs}
        _write_html(args.html, _report(last, replayer.last, args.budget), figures)
    return 0


def _print_totals(totals: dict[str, Any], packer: str) -> None:
    table = Table(title=f"replay with {packer} at {totals['budget']:,} tokens", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    ms = totals["ms_per_turn"]
    rows = [
        ("conversations", totals["conversations"]),
        ("calls", totals["calls"]),
        ("ms per turn (mean / median / p95)", f"{ms['mean']} / {ms['median']} / {ms['p95']}"),
        ("utilisation (median, calls that did not fit whole)", totals["utilisation"]),
        ("invalid outputs", totals["invalid"]),
        ("prefix reuse (mean over calls)", totals["reuse"]),
        ("prefix reuse after each first call", totals["reuse_after_first"]),
        ("miss amplification", totals["amplification"]),
        ("cost per call (cached tokens at 10%)", totals["cost_per_call"]),
    ]
    for name, value in rows:
        table.add_row(name, "-" if value is None else str(value))
    console().print(table)


def policy_schema(args: argparse.Namespace) -> int:
    """``ctxsched policy schema``: the policy's JSON Schema."""
    sys.stdout.write(json.dumps(Policy.json_schema(), indent=2) + "\n")
    return 0


def policy_check(args: argparse.Namespace) -> int:
    """``ctxsched policy check FILE``: whether the file is a valid policy."""
    load_policy(args.file)
    print(f"{args.file}: a valid policy")
    return 0


def count(args: argparse.Namespace) -> int:
    """``ctxsched count``: each message's tokens and the total as sent."""
    conversations, _ = read_conversations(args.input, "openai")
    conversation = conversations[0]
    messages = conversation.messages
    tokenizer = Tokenizer(args.encoding)
    accounting = ChatAccounting()
    try:
        rows = chat_tokens(messages, tokenizer, accounting)  # read once, in Rust
    except ContextSchedError as error:
        raise InputError(f"{conversation.name}: {error}") from error
    total = sum(content + overhead for _, content, overhead, _ in rows) + accounting.reply_priming
    print(f"{conversation.name}  ({len(messages)} messages, encoding {tokenizer.name})")
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
