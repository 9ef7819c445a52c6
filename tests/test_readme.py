"""The README's Python examples run as written, and its first lines are the two commands."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(code: str) -> None:
    exec(compile(code, str(README), "exec"), {})


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    lines = README.read_text().splitlines()
    assert lines[3].startswith("make demo")
    assert lines[4].startswith("make test")
    makefile = (README.parent / "Makefile").read_text()
    assert "\ndemo:" in makefile
    assert "\ntest:" in makefile
    assert "make test" in (README.parent / ".ci" / "run").read_text()


def test_the_printed_decision_log_in_the_readme_is_what_the_example_prints(capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text()
    example = next(code for code in EXAMPLES if "print(result.explain())" in code)
    exec(compile(example, str(README), "exec"), {})
    shown = text.split("prints (ids default to `{kind}-{position}`):\n\n```text\n", 1)[1].split("```", 1)[0]
    assert capsys.readouterr().out == shown
