"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs) opens the
page offline, runs its script, and takes a screenshot. The screenshot must not be blank and must show the window
bar in the kinds' colours; the browser's console must show no error from the page's script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "agent_session.json"
POLICY = ROOT / "examples" / "policy.toml"
SCRIPT = Path(sys.executable).with_name("ctxsched")
#: Colours the example's window bar must show (the report's documented kind colours).
SYSTEM, TOOL_RESULT, HISTORY = (0x4E, 0x79, 0xA7), (0xE1, 0x57, 0x59), (0x59, 0xA1, 0x4F)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed, and CI must run this test (.ci/run installs Debian's chromium)")
        pytest.skip("Chromium is not installed here (apt-get install chromium); CI installs it and runs this test")
    return found


def open_in_browser(page: Path, screenshot: Path) -> tuple[str, str]:
    """The page's DOM after its script ran, and the browser's log (console messages included)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    url = page.resolve().as_uri()
    shot = subprocess.run(
        [chromium(), *flags, f"--screenshot={screenshot}", "--window-size=1280,1000", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = subprocess.run([chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return dom.stdout, shot.stderr + dom.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line and re.search(r"Uncaught|Error", line)]


def near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(pixel[:3], colour, strict=True))


def bar_row(image: Image.Image) -> int | None:
    """The first row where the tool results' colour spans a fifth of the page: the window bar (the example's two
    long tool results take most of it; no legend swatch or table cell is that wide)."""
    rgb = image.convert("RGB")
    for y in range(rgb.height):
        row = [rgb.getpixel((x, y)) for x in range(0, rgb.width, 2)]
        if sum(near(pixel, TOOL_RESULT) for pixel in row) > len(row) / 5:  # type: ignore[arg-type]
            return y
    return None


def test_the_report_opens_offline_draws_the_bar_and_its_script_raises_nothing(tmp_path: Path) -> None:
    page, screenshot = tmp_path / "report.html", tmp_path / "report.png"
    made = subprocess.run(
        [SCRIPT, "explain", EXAMPLE, "--budget", "4000", "--policy", POLICY, "--html", page],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    dom, log = open_in_browser(page, screenshot)
    assert console_errors(log) == []
    assert 'data-ready="yes"' in dom, "the page's script ran to its end"
    image = Image.open(screenshot)
    assert image.size == (1280, 1000)
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 20, "not blank"
    row = bar_row(image)
    assert row is not None, "the window bar"
    assert row < image.height / 3, "at the top of the page"
    # The same row, a few pixels down, shows the system prompt and the history too.
    pixels = [image.convert("RGB").getpixel((x, row + 8)) for x in range(image.width)]
    assert any(near(pixel, SYSTEM) for pixel in pixels)  # type: ignore[arg-type]
    assert any(near(pixel, HISTORY) for pixel in pixels)  # type: ignore[arg-type]


def test_the_console_check_catches_a_broken_script(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><div style='background:#4e79a7;height:40px'></div><script>missing();</script>")
    _, log = open_in_browser(page, tmp_path / "broken.png")
    assert console_errors(log), log
