"""A pack seen at a glance: its decisions and a map of the window.

Built once from a ``PackResult``, and drawn in the terminal (rich: colour when the terminal has it, none in
pipes or with ``NO_COLOR``) or in the HTML report.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ctxsched._core import PackResult

__all__ = ["Report", "Row", "colour_of", "print_report", "report_of"]

#: Colours by kind (colour-blind safe, from the Tableau 10 palette); other kinds take one by their name's hash.
KIND_COLOURS = {
    "system": "#4e79a7",
    "instruction": "#f28e2b",
    "history": "#59a14f",
    "tool_call": "#76b7b2",
    "tool_result": "#e15759",
    "retrieval": "#edc948",
    "memory": "#b07aa1",
    "summary": "#ff9da7",
    "restatement": "#9c755f",
    "example": "#bab0ac",
}
_OTHERS = ["#86bcb6", "#d37295", "#8cd17d", "#b6992d", "#499894", "#f1ce63", "#a0cbe8", "#ffbe7d"]
#: How much of each text the report carries (the hover shows it).
PREVIEW_CHARS = 1_500


def colour_of(kind: str) -> str:
    """The colour of a kind, stable across runs."""
    return KIND_COLOURS.get(kind) or _OTHERS[zlib.crc32(kind.encode()) % len(_OTHERS)]


@dataclass(frozen=True)
class Row:
    """One input segment's decision, and where it sits if placed."""

    index: int
    id: str
    kind: str
    action: str
    rule: str
    detail: str
    tokens_before: int
    tokens_after: int
    flags: list[str]
    untrusted: bool
    region: str | None  # head, body, tail; None when evicted
    offset: int | None
    text: str

    @property
    def shown_action(self) -> str:
        """The action, with ``summarised`` for an eviction into a summary."""
        return "summarised" if self.rule == "summarised" else self.action

    @property
    def tokens(self) -> str:
        """``a -> b`` for a cut, else the tokens."""
        if self.action in ("truncated", "stubbed"):
            return f"{self.tokens_before:,} \u2192 {self.tokens_after:,}"
        return f"{self.tokens_before:,}"


@dataclass(frozen=True)
class Report:
    """What a pack decided: rows in input order, the placed ones in prompt order, usage by kind, totals."""

    title: str
    rows: list[Row]
    window: list[Row]
    usage: list[dict[str, Any]]
    tokens: int
    usable: int
    budget: int
    placement_score: float | None
    notes: list[str]

    def summary(self) -> dict[str, int]:
        """How many segments each action took."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.action] = counts.get(row.action, 0) + 1
        return counts


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else f"{text[:PREVIEW_CHARS]}\u2026 ({len(text):,} characters)"


def report_of(result: PackResult, title: str, notes: list[str] | None = None) -> Report:
    """The report of one pack."""
    places = {place.index: place for place in result.placement}
    texts = {placed.index: placed.text for placed in result.segments}
    texts.update({evicted.index: evicted.segment.text for evicted in result.evicted})
    rows = []
    for decision in result.decisions:
        place = places.get(decision.index)
        rows.append(
            Row(
                index=decision.index,
                id=decision.id,
                kind=decision.kind,
                action=decision.action,
                rule=decision.rule,
                detail=decision.detail,
                tokens_before=decision.tokens_before,
                tokens_after=decision.tokens_after,
                flags=list(decision.flags),
                untrusted=decision.untrusted,
                region=place.region if place else None,
                offset=place.offset if place else None,
                text=_preview(texts.get(decision.index, "")),
            )
        )
    by_index = {row.index: row for row in rows}
    window = [by_index[place.index] for place in result.placement if place.index in by_index]
    usage = [
        {"kind": kind, "tokens": use.tokens, "kept": use.kept, "evicted": use.evicted, "min": use.min, "max": use.max}
        for kind, use in sorted(result.usage.items())
    ]
    return Report(
        title=title,
        rows=rows,
        window=window,
        usage=usage,
        tokens=result.tokens,
        usable=result.usable,
        budget=result.budget,
        placement_score=result.placement_score,
        notes=notes or [],
    )


_ACTION_STYLES = {"kept": "green", "truncated": "yellow", "stubbed": "yellow", "summarised": "magenta"}


def _window_map(report: Report) -> Text:
    """One line: the tokens of each kind in each region, in prompt order, coloured by kind."""
    line = Text("window: ")
    for region in ("head", "body", "tail"):
        kinds: dict[str, int] = {}
        for row in report.window:
            if row.region == region:
                kinds[row.kind] = kinds.get(row.kind, 0) + row.tokens_after
        line.append(f"{region} ", style="bold")
        if not kinds:
            line.append("-")
        for position, (kind, tokens) in enumerate(kinds.items()):
            line.append(", " if position else "")
            line.append(f"{kind} {tokens:,}", style=colour_of(kind))
        line.append(" | " if region != "tail" else "")
    share = report.tokens / report.usable if report.usable else 0.0
    line.append(f"   {report.tokens:,} of {report.usable:,} usable tokens ({share:.0%})")
    return line


def print_report(report: Report, console: Console) -> None:
    """The decision table and the window map."""
    table = Table(title=report.title, title_justify="left", expand=False)
    for name, justify in (("#", "right"), ("id", "left"), ("kind", "left"), ("action", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("tokens", justify="right")
    table.add_column("why", overflow="fold")
    for row in report.rows:
        action = row.shown_action
        why = row.detail + "".join(f"\n{flag}" for flag in row.flags)
        kind = Text(row.kind + (" (untrusted)" if row.untrusted else ""), style=colour_of(row.kind))
        table.add_row(
            str(row.index), row.id, kind, Text(action, style=_ACTION_STYLES.get(action, "red")), row.tokens, why
        )
    console.print(table)
    console.print(_window_map(report))
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
