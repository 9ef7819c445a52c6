"""The stub matches the built module, and the Python sources are lint- and type-clean."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_stub_matches_the_extension_module() -> None:
    _run("mypy.stubtest", "ctxsched._core")


def test_package_is_strictly_typed() -> None:
    _run("mypy")


def test_ruff_lint_and_format() -> None:
    _run("ruff", "check", "python", "tests", "benches")
    _run("ruff", "format", "--check", "python", "tests", "benches")
