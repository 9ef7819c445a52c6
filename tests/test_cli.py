"""The command line, end to end through a subprocess (the installed ``ctxsched`` script): every command, and
every kind of bad input, which must be one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ctxsched as cs
from tests.reference import reference

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "agent_session.json"
POLICY = ROOT / "examples" / "policy.toml"
SCRIPT = Path(sys.executable).with_name("ctxsched")
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|38;[0-9;]+)m")


def run(
    *arguments: str | Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.fail("the ctxsched script is not installed with the package")
    environment = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "FORCE_COLOR")}
    environment.update(env or {})
    return subprocess.run(
        [str(SCRIPT), *map(str, arguments)], capture_output=True, text=True, env=environment, input=stdin, timeout=300
    )


def tokens(text: str) -> int:
    return len(reference("o200k_base").encode_ordinary(text))


def example() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads(EXAMPLE.read_text())["messages"]
    return messages


def agent_loop(results: int, size: int = 300) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You fix bugs."},
        {"role": "user", "content": "Fix the failing test."},
    ]
    for number in range(results):
        call = {"id": f"c{number}", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{number}", "content": f"line {number}\n" * size})
    messages.append({"role": "assistant", "content": "Done."})
    return messages


def test_count_reports_every_message_and_the_exact_total() -> None:
    done = run("count", EXAMPLE, "--budget", "8000")
    assert done.returncode == 0, done.stderr
    # Recomputed independently: OpenAI's formula over tiktoken's counts.
    total = 3
    for message in example():
        total += 3 + tokens(message["role"]) + tokens(message["content"])
        for call in message.get("tool_calls", []):
            total += 3 + tokens(call["function"]["name"]) + tokens(call["function"]["arguments"])
    assert f"total: {total:,} tokens" in done.stdout
    assert f"over by {total - 8000:,}" in done.stdout


def test_pack_writes_the_packed_conversation_as_json_within_the_budget(tmp_path: Path) -> None:
    done = run("pack", EXAMPLE, "--budget", "4000", "--policy", POLICY)
    assert done.returncode == 0, done.stderr
    packed = json.loads(done.stdout)
    assert list(packed) == ["messages"]
    messages = packed["messages"]
    assert cs.count_messages(messages) <= 4000 - 512
    original = example()
    assert messages[1] == original[1]  # the task, as given
    assert messages[0]["content"].startswith(original[0]["content"])  # the system prompt (and the fence's notice)
    log = next(message for message in messages if message.get("tool_call_id") == original[3]["tool_call_id"])
    assert "tokens elided" in log["content"]
    assert original[3]["content"].splitlines()[0] in log["content"]
    # -o writes the same to a file.
    out = tmp_path / "packed.json"
    assert run("pack", EXAMPLE, "--budget", "4000", "--policy", POLICY, "-o", out).stdout == ""
    assert json.loads(out.read_text()) == packed


def test_pack_keeps_the_shape_a_list_an_object_with_tools_and_json_lines(tmp_path: Path) -> None:
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {}}}}]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(agent_loop(3)))
    out = json.loads(run("pack", listed, "--budget", "600").stdout)
    assert isinstance(out, list)
    assert cs.count_messages(out) <= 600
    with_tools = tmp_path / "tools.json"
    with_tools.write_text(json.dumps({"id": "run-7", "messages": agent_loop(3), "tools": tools}))
    out = json.loads(run("pack", with_tools, "--budget", "600").stdout)
    assert out["id"] == "run-7"
    assert out["tools"] == tools
    assert cs.count_messages(out["messages"], tools=tools) <= 600
    lines = tmp_path / "many.jsonl.gz"
    lines.write_bytes(gzip.compress(b"\n".join(json.dumps({"messages": agent_loop(n)}).encode() for n in (1, 4))))
    done = run("pack", lines, "--budget", "500")
    packed = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(packed) == 2
    assert all(cs.count_messages(item["messages"]) <= 500 for item in packed)
    separate = tmp_path / "tools-file.json"
    separate.write_text(json.dumps(tools))
    out = json.loads(run("pack", listed, "--budget", "600", "--tools", separate).stdout)
    assert cs.count_messages(out, tools=tools) <= 600


def test_pack_anthropic() -> None:
    conversation = {
        "system": "You fix bugs.",
        "messages": [
            {"role": "user", "content": "Fix it."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok\n" * 2000}]},
        ],
    }
    done = run("pack", "/dev/stdin", "--budget", "1000", "--format", "anthropic", stdin=json.dumps(conversation))
    assert done.returncode == 0, done.stderr
    packed = json.loads(done.stdout)
    assert set(packed) == {"system", "messages"}
    result = packed["messages"][-1]["content"][0]
    assert result["type"] == "tool_result"
    assert tokens(result["content"]) < 1000


def test_explain_prints_the_decisions_and_the_window_without_colour_in_a_pipe(tmp_path: Path) -> None:
    done = run("explain", EXAMPLE, "--budget", "4000", "--policy", POLICY)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert not ESCAPE.search(out), "no escape codes in a pipe"
    assert re.search(r"truncated\s+│\s+15,562 → \d{3}", out), out
    assert "cut 15562 ->" in out
    assert "(untrusted)" in out
    window = next(line for line in out.splitlines() if line.startswith("window: "))
    assert "head system" in window
    assert "tool_result" in window
    assert "usable tokens" in window
    # Every message and tool call has a row.
    ids = re.findall(r"│\s+\d+\s+│ (\d+:[a-z]+(?:-\d+)?)\s", out)
    original = example()
    calls = sum(len(message.get("tool_calls") or []) for message in original)
    assert len(ids) == len(original) + calls


def test_explain_uses_colour_when_forced_and_never_with_no_color() -> None:
    coloured = run("explain", EXAMPLE, "--budget", "4000", env={"FORCE_COLOR": "1", "COLUMNS": "160"})
    assert coloured.returncode == 0, coloured.stderr
    assert COLOUR.search(coloured.stdout), "colour codes when the terminal has colour"
    plain = run("explain", EXAMPLE, "--budget", "4000", env={"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "160"})
    assert not COLOUR.search(plain.stdout), "no colour with NO_COLOR"
    assert ESCAPE.sub("", coloured.stdout) == ESCAPE.sub("", plain.stdout)


def test_explain_writes_a_self_contained_html_report(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = run("explain", EXAMPLE, "--budget", "4000", "--policy", POLICY, "--html", page)
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert not re.search(r"(?:src|href)=\"?(?:https?:)?//", html), "nothing fetched"
    assert html.count('class="seg ') == sum(1 for _ in re.finditer(r"data-row=\"\d+\" title", html)) > 0
    assert "truncated" in html
    assert "untrusted" in html
    # The hover text is the sent text, escaped into the page's JSON.
    texts = json.loads(re.search(r'<script type="application/json" id="texts">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert texts["1"]["text"] == example()[1]["content"]


def test_replay_prints_the_figures_and_writes_them_as_json(tmp_path: Path) -> None:
    logged = tmp_path / "runs.jsonl"
    logged.write_text("".join(json.dumps({"id": f"run-{n}", "messages": agent_loop(n + 6)}) + "\n" for n in range(3)))
    table = run("replay", logged, "--budget", "1500")
    assert table.returncode == 0, table.stderr
    assert "prefix reuse" in table.stdout
    assert "invalid outputs" in table.stdout
    for session in (False, True):
        done = run("replay", logged, "--budget", "1500", "--json", *(["--session"] if session else []))
        assert done.returncode == 0, done.stderr
        figures = json.loads(done.stdout)
        # One call before each assistant message after the task: n + 6 calls and the final answer.
        assert figures["calls"] == sum(n + 7 for n in range(3))
        assert figures["conversations"] == 3
        assert figures["invalid"] == 0
        assert 0 < figures["utilisation"] <= 1
        assert 0 <= figures["reuse"] <= 1
        assert figures["cost_per_call"] > 0
        assert figures["ms_per_turn"]["median"] > 0
    page = tmp_path / "replay.html"
    assert run("replay", logged, "--budget", "1500", "--session", "--html", page).returncode == 0
    html = page.read_text()
    assert 'id="reuse"' in html
    assert 'id="cost"' in html


def test_policy_schema_and_check(tmp_path: Path) -> None:
    schema = json.loads(run("policy", "schema").stdout)
    assert schema == cs.Policy.json_schema()
    assert run("policy", "check", POLICY).returncode == 0


@pytest.mark.parametrize(
    ("text", "suffix", "where"),
    [
        ("reserve_output = 10\n\n[quotas.tool_result]\nmax = 2.5\n", ".toml", "line 4: quotas.tool_result.max"),
        ('{\n  "reserve_output": 1,\n  "separatr": "x"\n}', ".json", "line 3: separatr: Extra inputs"),
        ("reserve_output: 1\ntrust:\n  fence: loud\n", ".yaml", "line 3: trust.fence"),
    ],
)
def test_an_invalid_policy_names_the_field_and_the_line(tmp_path: Path, text: str, suffix: str, where: str) -> None:
    path = tmp_path / f"policy{suffix}"
    path.write_text(text)
    for arguments in (("policy", "check", path), ("pack", EXAMPLE, "--budget", "4000", "--policy", path)):
        done = run(*arguments)
        assert done.returncode == 2
        assert where in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def bad_inputs(tmp_path: Path) -> list[tuple[list[str | Path], str]]:
    def file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    malformed = file("malformed.json", json.dumps([{"role": "user", "content": "hi"}, {"content": "no role"}]))
    lines = file("runs.jsonl", json.dumps({"messages": agent_loop(1)}) + "\n" + "{oops\n")
    return [
        (["pack", tmp_path / "missing.json", "--budget", "100"], "cannot read"),
        (["pack", file("broken.json", '{"messages": ['), "--budget", "100"], "invalid JSON at line 1"),
        (["explain", lines, "--budget", "100"], "runs.jsonl line 2: invalid JSON"),
        (["pack", file("shape.json", '{"messages": 3}'), "--budget", "100"], "expected a list of chat messages"),
        (["pack", malformed, "--budget", "100"], "messages[1] has no role"),
        (["replay", malformed, "--budget", "100"], "messages[1] has no role"),
        (["pack", EXAMPLE, "--budget", "-5"], "argument --budget: must be a positive integer, not '-5'"),
        (["explain", EXAMPLE, "--budget", "lots"], "must be a positive integer, not 'lots'"),
        (["pack", EXAMPLE, "--budget", "0"], "must be a positive integer"),
        (["pack", EXAMPLE, "--budget", "4000", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["pack", EXAMPLE, "--budget", "12"], "mandatory set needs"),
        (["pack", EXAMPLE, "--budget", "4000", "--policy", file("p.ini", "x")], "unknown policy file type"),
        (["pack", EXAMPLE, "--budget", "4000", "--policy", file("p.toml", "= nope")], "not valid TOML"),
        (["pack", EXAMPLE, "--budget", "4000", "--tools", file("t.json", '{"tools": 1}')], "list of tool definitions"),
        (["explain", EXAMPLE, "--budget", "4000", "--html", tmp_path / "no" / "such" / "dir.html"], "cannot write"),
        (["policy", "check", tmp_path / "absent.toml"], "cannot read"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ]


def test_every_kind_of_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for arguments, message in bad_inputs(tmp_path):
        done = run(*arguments)
        assert done.returncode == 2, (arguments, done.stdout, done.stderr)
        assert message in done.stderr, (arguments, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (arguments, done.stderr)
        assert "Traceback" not in done.stderr


def test_python_m_ctxsched_runs_the_same_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "ctxsched", "count", str(EXAMPLE)], capture_output=True, text=True)
    assert done.returncode == 0
    assert "total:" in done.stdout
