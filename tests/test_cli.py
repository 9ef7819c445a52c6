"""The command line, run in-process (``main(argv)``) and as the installed script."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ctxsched
from ctxsched.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent_session.json"


def test_count_reports_every_message_and_the_exact_total(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(EXAMPLE), "--budget", "8000"]) == 0
    out = capsys.readouterr().out
    messages = json.loads(EXAMPLE.read_text())["messages"]
    # Recompute the total independently: OpenAI's formula over our exact counts.
    total = 3
    for message in messages:
        total += 3 + ctxsched.count_tokens(message["role"]) + ctxsched.count_tokens(message["content"])
        for call in message.get("tool_calls", []):
            function = call["function"]
            total += 3 + ctxsched.count_tokens(function["name"]) + ctxsched.count_tokens(function["arguments"])
    assert f"total: {total:,} tokens" in out
    assert f"over by {total - 8000:,}" in out
    assert out.count("\n") >= len(messages) + 3


def test_count_with_a_budget_that_fits(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "small.json"
    path.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    assert main(["count", str(path), "--budget", "100", "--encoding", "cl100k_base"]) == 0
    assert "budget 100: fits" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ('{"messages": 3}', "expected a list of chat messages"),
        ('[{"content": "no role"}]', "messages[0] has no role; the roles are system, developer"),
        ('[{"role": "user", "content": [1]}]', "messages[0] has content part 0 of type int, not dict"),
    ],
)
def test_bad_files_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["count", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_the_installed_script_runs() -> None:
    script = Path(sys.executable).with_name("ctxsched")
    if not script.exists():
        pytest.fail("the ctxsched script is not installed with the package")
    done = subprocess.run([script, "count", str(EXAMPLE)], capture_output=True, text=True, check=True)
    assert "total:" in done.stdout


POLICY = EXAMPLE.parent / "policy.toml"


def test_pack_explains_every_message_and_fits_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", str(EXAMPLE), "--budget", "4000", "--policy", str(POLICY), "--show-text"]) == 0
    out = capsys.readouterr().out
    explanation, text = out.split("\n--- packed text ---\n")
    messages = json.loads(EXAMPLE.read_text())["messages"]
    # A line per message, and one per tool call (its arguments are a segment of their own).
    lines = [line.split()[1] for line in explanation.splitlines() if line.startswith("  ")]
    calls = sum(len(message.get("tool_calls") or []) for message in messages)
    assert len([id for id in lines if ":" in id]) == len(messages) + calls
    assert len([id for id in lines if ":call-" in id]) == calls
    # The 15k-token test log is cut to the tool_result cap (a fifth of 3,488 usable tokens) by whole lines,
    # keeping its first and last lines.
    # (Sizes include each message's framing, 15,548 tokens of content + 4, and the fence of an untrusted tool
    # result: 10 more.)
    cut = re.search(r"cut 15562 -> (\d+) tokens by lines: above the tool_result cap of 697", explanation)
    assert cut
    assert int(cut.group(1)) <= 697
    log_lines = messages[3]["content"].splitlines()
    assert log_lines[0] in text
    assert log_lines[-1] in text
    assert "tokens elided" in text
    assert ctxsched.count_tokens(text.rstrip("\n")) <= 4000 - 512
    # The task and the system prompt are there.
    assert messages[0]["content"] in text
    assert messages[1]["content"] in text


def test_pack_with_a_budget_too_small_for_the_mandatory_set_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", str(EXAMPLE), "--budget", "12"]) == 2
    assert "mandatory set needs" in capsys.readouterr().err


def test_pack_with_a_bad_policy_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text("reserve_output = -3\n")
    assert main(["pack", str(EXAMPLE), "--budget", "4000", "--policy", str(policy)]) == 2
    assert "cannot load policy" in capsys.readouterr().err
