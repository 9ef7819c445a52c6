"""The ``ctxsched`` command line: ``count``, ``pack``, ``explain``, ``replay`` and ``policy``.

Bad input (an unreadable file, invalid JSON, a malformed message, a budget that is not a positive integer, an
invalid policy, an unknown format) is one line on stderr naming the problem, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ctxsched._core import encodings
from ctxsched.cli import commands
from ctxsched.cli.inputs import InputError, positive_int

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog.split()[0]} --help)\n")


def _conversation_options(command: argparse.ArgumentParser, *, formats: bool = True) -> None:
    command.add_argument("input", type=Path, help="a JSON messages list, an object with 'messages', or JSON Lines")
    command.add_argument("--budget", type=positive_int, required=True, help="the token budget (a positive integer)")
    command.add_argument("--policy", type=Path, help="a policy file (.json, .toml, .yaml)")
    if formats:
        command.add_argument("--format", default="openai", choices=["openai", "anthropic"], help="the input's format")
    command.add_argument("--tools", type=Path, help="tool definitions (JSON), sent with every call")
    command.add_argument("--encoding", default="o200k_base", choices=encodings())


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ctxsched", description="Context-window scheduling for LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    count = sub.add_parser("count", help="count the tokens of an OpenAI-format conversation")
    count.add_argument("input", type=Path, help="a JSON messages list, or an object with 'messages'")
    count.add_argument("--encoding", default="o200k_base", choices=encodings())
    count.add_argument("--budget", type=positive_int, help="a token budget to compare the conversation against")
    count.set_defaults(run=commands.count)
    pack = sub.add_parser("pack", help="pack conversations into a budget and write them as JSON")
    _conversation_options(pack)
    pack.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    pack.set_defaults(run=commands.pack)
    explain = sub.add_parser("explain", help="show what went into the window and why")
    _conversation_options(explain)
    explain.add_argument("--html", type=Path, help="also write a self-contained HTML report here")
    explain.set_defaults(run=commands.explain)
    replay = sub.add_parser("replay", help="run the agent loop over logged conversations and measure it")
    _conversation_options(replay, formats=False)
    replay.add_argument("--session", action="store_true", help="pack with a Session (else pack_messages per call)")
    replay.add_argument("--json", action="store_true", help="write the figures as JSON")
    replay.add_argument("--html", type=Path, help="also write an HTML report with the figures per call")
    replay.set_defaults(run=commands.replay)
    policy = sub.add_parser("policy", help="the policy format: its JSON Schema, or check a file")
    policies = policy.add_subparsers(dest="policy_command", required=True, parser_class=_Parser)
    policies.add_parser("schema", help="print the policy's JSON Schema").set_defaults(run=commands.policy_schema)
    check = policies.add_parser("check", help="validate a policy file")
    check.add_argument("file", type=Path)
    check.set_defaults(run=commands.policy_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except InputError as error:
        print(f"ctxsched: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        return 0
    return status
