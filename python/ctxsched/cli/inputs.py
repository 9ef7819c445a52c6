"""What the command line reads: conversations, tool definitions and policies.

A conversations file is a JSON messages list, an object with ``messages``, or JSON Lines of either, gzipped or
not. Anything the command line cannot use is an ``InputError`` whose message is one line naming the file, and
the line, message or field at fault.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ctxsched.policy import Policy

__all__ = ["Conversation", "InputError", "load_policy", "load_tools", "positive_int", "read_conversations"]


class InputError(Exception):
    """Input the command line cannot use; the message says what and where, in one line."""


@dataclass
class Conversation:
    """One conversation read.

    Its messages (for ``anthropic``, the ``{"system", "messages"}`` object), its tools, the other keys of its
    object (written back around the packed messages), and where it came from.
    """

    messages: Any
    tools: list[Any] | None
    name: str
    extra: dict[str, Any] = field(default_factory=dict)
    listed: bool = False  # given as a bare list of messages


def positive_int(text: str) -> int:
    """An argparse type: a budget, a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from error


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{where}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from error


def _is_jsonl(path: Path, text: str) -> bool:
    names = path.name.lower().removesuffix(".gz")
    if names.endswith((".jsonl", ".ndjson")):
        return True
    if names.endswith(".json"):
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) > 1 and all(line.lstrip().startswith(("{", "[")) for line in lines)


def _conversation(data: Any, where: str, format: str) -> Conversation:
    if isinstance(data, list):
        messages: Any = {"messages": data} if format == "anthropic" else data
        return Conversation(messages, None, where, listed=True)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise InputError(f"{where}: expected a list of chat messages or an object with a 'messages' list")
    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InputError(f"{where}: 'tools' must be a list of tool definitions")
    name = str(data.get("id") or where)
    extra = {key: value for key, value in data.items() if key not in ("messages", "tools", "system")}
    if format == "anthropic":
        conversation = {key: data[key] for key in ("system", "messages") if key in data}
        return Conversation(conversation, tools, name, extra)
    return Conversation(data["messages"], tools, name, extra)


def read_conversations(path: Path, format: str) -> tuple[list[Conversation], bool]:
    """The conversations in ``path``, and whether it is JSON Lines (one conversation per line)."""
    text = _read_text(path)
    if not _is_jsonl(path, text):
        return [_conversation(_parse(text, str(path)), str(path), format)], False
    conversations = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            where = f"{path} line {number}"
            conversations.append(_conversation(_parse(line, where), where, format))
    if not conversations:
        raise InputError(f"{path}: no conversations (the file is empty)")
    return conversations, True


def load_tools(path: Path | None) -> list[Any] | None:
    """Tool definitions from a JSON file: a list, or an object with a ``tools`` list."""
    if path is None:
        return None
    data = _parse(_read_text(path), str(path))
    tools = data.get("tools") if isinstance(data, dict) else data
    if not isinstance(tools, list):
        raise InputError(f"{path}: expected a list of tool definitions or an object with a 'tools' list")
    return tools


def load_policy(path: Path | None) -> Policy | None:
    """A policy from a ``.json``, ``.toml``, ``.yaml`` or ``.yml`` file; an invalid one names the field and line."""
    if path is None:
        return None
    text = _read_text(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml  # type: ignore[import-untyped]

            data = yaml.safe_load(text)
        else:
            raise InputError(f"{path}: unknown policy file type {suffix!r}; use .json, .toml, .yaml or .yml")
    except ImportError as error:
        raise InputError(f"{path}: reading YAML policies needs PyYAML: pip install 'ctxsched[yaml]'") from error
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, ValueError) as error:
        raise InputError(f"{path}: not valid {suffix.lstrip('.').upper()}: {error}") from error
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        raise InputError(describe_invalid(path, text, error)) from error


def describe_invalid(path: Path, text: str, error: ValidationError) -> str:
    """The first validation error of a policy file as one line: file, line, field, what is wrong."""
    errors = error.errors()
    first = errors[0]
    location = [part for part in first["loc"] if isinstance(part, str)]
    dotted = ".".join(str(part) for part in first["loc"]) or "the policy"
    line = _line_of(text, location)
    at = f" line {line}" if line else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}{at}: {dotted}: {first['msg']}{more}"


def _line_of(text: str, keys: list[str]) -> int | None:
    """The line where the last of ``keys`` appears, found in order (a key of JSON, TOML or YAML)."""
    offset, found = 0, None
    for part in keys:
        name = re.escape(part)
        pattern = re.compile(rf"(?m)(?:^|[\s\"'\[.{{,])({name})(?:[\"']?\s*[:=]|[\"']?\])|\.{name}\b|\b{name}\.")
        match = pattern.search(text, offset)
        if match is None:
            continue
        offset = match.end()
        start = match.start(1) if match.group(1) else match.start()
        found = text.count("\n", 0, start) + 1
    return found
