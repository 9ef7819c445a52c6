"""The report as one self-contained HTML page.

Nothing is fetched: styles, script and data are inline. The page is rendered from the Jinja template
``templates/report.html.j2``, with autoescaping.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ctxsched.cli.view import Report, colour_of

__all__ = ["render", "write"]

CHART_WIDTH, CHART_HEIGHT = 720, 120


def _template() -> jinja2.Template:
    text = resources.files("ctxsched.cli").joinpath("templates", "report.html.j2").read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.globals["colour"] = colour_of
    return environment.from_string(text)


def _chart(identifier: str, title: str, values: list[float], colour: str, unit: str) -> dict[str, Any]:
    """A line over the calls: its points scaled into the chart, and its range."""
    top = max(values, default=1.0) or 1.0
    last = max(len(values) - 1, 1)
    points = " ".join(
        f"{4 + (CHART_WIDTH - 8) * position / last:.1f},{CHART_HEIGHT - 18 - (CHART_HEIGHT - 36) * value / top:.1f}"
        for position, value in enumerate(values)
    )
    return {
        "id": identifier,
        "title": title,
        "points": points,
        "colour": colour,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "top": f"{top:,.2f} {unit}".strip(),
        "bottom": f"0 {unit} (call 1 to {len(values)})".strip(),
    }


def render(report: Report, replay: dict[str, Any] | None = None) -> str:
    """The page. ``replay``: the replay's totals and, per call, its prefix reuse and cost."""
    template = _template()
    evicted = [row for row in report.rows if row.region is None]
    kinds = sorted({row.kind for row in report.rows})
    texts = {
        str(row.index): {"label": f"{row.id} ({row.kind}, {row.tokens} tokens, {row.shown_action})", "text": row.text}
        for row in report.rows
    }
    context: dict[str, Any] = {"report": report, "evicted": evicted, "kinds": kinds, "texts": texts, "replay": None}
    if replay is not None:
        charts = [
            _chart("reuse", "prefix reuse per call (share of the prompt a prefix cache serves)", replay["reuse"],
                   "#4e79a7", ""),
            _chart("cost", "cost per call (uncached tokens + 10% of cached ones)", replay["costs"], "#e15759",
                   "tokens"),
        ]  # fmt: skip
        context["replay"] = {"totals": replay["totals"], "charts": charts}
    return template.render(**context)


def write(path: Path, report: Report, replay: dict[str, Any] | None = None) -> None:
    """Write the page to ``path``."""
    path.write_text(render(report, replay), encoding="utf-8")
