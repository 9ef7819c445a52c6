"""The scheduling policy: a frozen pydantic model, validated once and handed to the Rust core once."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ctxsched._core import RESTATE_HEADER, RESTATED_KIND

__all__ = [
    "BUILTIN_TRUNCATION",
    "DEFAULT_PRIORITIES",
    "DEFAULT_TRUNCATION",
    "RESTATED_KIND",
    "RESTATE_HEADER",
    "Amount",
    "Policy",
    "Quota",
    "Restate",
    "Summaries",
    "Trust",
    "Watermarks",
]

#: A size: an ``int`` number of tokens, or a ``float`` fraction (0 to 1) of the usable budget.
Amount: TypeAlias = Annotated[int, Field(ge=0, strict=True)] | Annotated[float, Field(ge=0.0, le=1.0, strict=True)]

#: Default priority of each standard kind (higher is kept first). ``Policy.priorities`` overrides these.
DEFAULT_PRIORITIES: dict[str, int] = {
    "system": 100,
    "instruction": 90,
    "tool_schema": 80,
    "summary": 60,
    "memory": 50,
    "example": 40,
    "history": 30,
    "tool_call": 30,
    "retrieval": 20,
    "tool_result": 20,
}

#: The built-in truncation strategies (see ``Tokenizer.truncate``); ``"none"`` means never cut.
BUILTIN_TRUNCATION: tuple[str, ...] = ("none", "head", "tail", "middle", "lines", "json", "auto")

#: ``"none"``, a built-in strategy, or the name of a truncator registered with the ``Scheduler``.
TruncationName: TypeAlias = Annotated[str, Field(min_length=1, pattern=r"\S")]

#: Default truncation of each standard kind. ``Policy.truncation`` overrides these.
DEFAULT_TRUNCATION: dict[str, str] = {
    "tool_result": "auto",
    "retrieval": "head",
    "memory": "head",
}

_KIND = Annotated[str, Field(min_length=1)]


class Quota(BaseModel):
    """A per-kind quota, like cgroups' memory.min / memory.max.

    ``min`` is reserved for the kind while it has segments to fill it; ``max`` is never exceeded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: Amount = 0
    max: Amount | None = None

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        # Same units can be compared now; tokens against a fraction only once the budget is known.
        if self.max is not None and type(self.min) is type(self.max) and self.min > self.max:
            raise ValueError(f"quota min ({self.min}) is above its max ({self.max})")
        return self


class Watermarks(BaseModel):
    """When a ``Session`` starts a new epoch.

    Fractions of the usable budget (what is left after the output reserve, the reply priming and the tool
    definitions). Within an epoch the prompt is the previous prompt plus the new messages; a pack that
    would pass ``high`` starts a new epoch, packed down to ``low`` in one step, with at least ``recent`` of
    the newest tokens kept whole behind the point where the prompt changes. The defaults were measured on
    the agent loop of ``benches/test_bench_session.py`` (see the README).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    high: float = Field(default=1.0, gt=0.0, le=1.0, strict=True)
    low: float = Field(default=0.85, gt=0.0, le=1.0, strict=True)
    recent: float = Field(default=0.05, ge=0.0, le=1.0, strict=True)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.recent <= self.low <= self.high:
            raise ValueError(f"watermarks need recent <= low <= high, not {self.recent}, {self.low}, {self.high}")
        return self


class Summaries(BaseModel):
    """How evicted history is summarised (``Policy.summarize`` names the kinds; the hook is the Scheduler's).

    ``budget`` is what all summaries of a pack may take, in tokens or as a fraction of the usable budget; it
    is kept back while packing and shared between the runs in proportion to their sizes. ``merge``: a
    contiguous run of evicted segments becomes one summary (else each its own). When a hook raises, times out,
    returns something that is not a ``str``, an empty string or text over its target, ``fallback`` decides:
    ``"truncate"`` puts a cut of the run's own text in its place, ``"evict"`` leaves it evicted; ``strict``
    raises ``SummaryError`` instead. ``timeout`` is in seconds per hook call; ``concurrency`` bounds the calls
    ``apack`` runs at once. ``input_tokens`` is the most a hook is given at once: a session's growing summary is
    made from the originals when they fit it, else from the earlier summary and the new originals (never from a
    summary of a summary), and inputs still too long are cut in the middle.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    budget: Amount = 0.2
    merge: bool = True
    fallback: Literal["truncate", "evict"] = "truncate"
    strict: bool = False
    timeout: float | None = Field(default=30.0, gt=0.0)
    concurrency: int = Field(default=4, ge=1)
    input_tokens: int = Field(default=32_000, ge=1)

    @property
    def truncates(self) -> bool:
        """Whether a failed hook's run is replaced by a cut of its own text (else it stays evicted)."""
        return self.fallback == "truncate"


class Trust(BaseModel):
    """What happens to untrusted segments (``Segment(trust="untrusted")``; see ``ctxsched.trust``).

    ``fence``: how they are marked when sent: ``"delimit"`` (between ``<untrusted_data>`` markers, the same
    bytes on every call), ``"datamark"`` (words joined by U+02C6, the modifier circumflex) or ``"none"``;
    inside the text, copies of the markers and of special tokens are neutralised either way.
    ``untrusted_pins``: a pin on an untrusted segment is an ``"error"`` (``PolicyError``), or ``"demote"``s it
    to a required segment in its natural place (its decision says so). Untrusted text that matches an
    injection pattern (the built-in list, unless ``builtin_patterns`` is false, and ``patterns``: name to
    regular expression, Rust ``regex`` syntax, case-insensitive) is flagged in its decision; with
    ``quarantine`` it is replaced by a note naming the patterns. ``untrusted_kinds``: segments of these kinds
    are untrusted unless they say otherwise (``Segment(trust="trusted")``); ``None`` is the format's default:
    ``["tool_result"]`` in the chat formats, none for ``Scheduler.pack``. ``half_life``: an untrusted
    segment's priority halves every this many turns of age (``Segment(age=)``; in the chat formats, the
    assistant messages after it), rounded down; ``None``: no ageing. ``notice`` (on by default): when a
    prompt holds fenced untrusted text (in the chat formats: always, so the cache holds from the first prompt),
    the sentence that explains the fence (``ctxsched.trust.notice``) is appended to the first head-pinned
    segment, the system prompt, unless it already says it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fence: Literal["delimit", "datamark", "none"] = "delimit"
    untrusted_pins: Literal["error", "demote"] = "error"
    quarantine: bool = False
    untrusted_kinds: list[Annotated[str, Field(min_length=1)]] | None = None
    half_life: float | None = Field(default=None, gt=0)
    notice: bool = True
    builtin_patterns: bool = True
    patterns: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict
    )


class Restate(BaseModel):
    """Say the task again at the tail when a long body has pushed it into the middle of the prompt.

    The first segment whose id is in ``ids`` (or, when ``ids`` is empty, the first of kind ``kind``:
    in a conversation, the first user message) is copied to the tail, after ``RESTATE_HEADER``,
    when more than ``after_tokens`` tokens come after it. The copy is a segment of kind ``restatement``
    (id: the source's and ``#restated``), pinned to the tail and counted in the budget; its decision names
    the source. An untrusted source is never copied. When the budget cannot hold the copy beside what must
    be kept, the pack is made without it and the source's decision says so.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ids: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    kind: Annotated[str, Field(min_length=1)] = "instruction"
    after_tokens: int = Field(default=2_000, ge=0)


class Policy(BaseModel):
    """How the scheduler shares the budget between kinds of segments.

    Load one from a dict (``Policy.model_validate``), or a JSON, TOML or YAML file (``Policy.from_file``);
    ``Policy.json_schema()`` describes the format. Unknown keys, negative sizes, fractions above 1 and a
    quota minimum above its maximum raise ``pydantic.ValidationError``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reserve_output: int = Field(default=0, ge=0, description="Tokens kept free for the model's answer.")
    quotas: dict[_KIND, Quota] = Field(default_factory=dict, description="Per-kind quotas.")
    segment_caps: dict[_KIND, Amount] = Field(
        default_factory=dict, description="Per-kind cap on one segment: a larger one is cut before admission."
    )
    priorities: dict[_KIND, int] = Field(default_factory=dict, description="Priority overrides per kind.")
    default_priority: int = Field(default=0, description="Priority of kinds with none set.")
    truncation: dict[_KIND, TruncationName] = Field(
        default_factory=dict,
        description="Truncation overrides per kind: 'none', head, tail, middle, lines, json, auto, or the name "
        "of a truncator registered with the Scheduler.",
    )
    reorder: list[_KIND] = Field(
        default_factory=lambda: ["retrieval"],
        description="Kinds whose runs are ordered by relevance, most relevant at the edges.",
    )
    separator: str = Field(default="\n\n", description="What goes between segments in the rendered text.")
    elision_marker: str = Field(
        default="\n[… {n} tokens elided …]\n",
        description="What middle, lines and json truncation put where they cut; {n} becomes the number of "
        "tokens elided (with ~ when estimated).",
    )

    summarize: list[_KIND] = Field(default_factory=list, description="Kinds whose evicted segments are summarised.")
    summaries: Summaries = Field(default_factory=Summaries, description="How they are summarised.")
    watermarks: Watermarks = Field(
        default_factory=Watermarks, description="A Session's epochs: the high and low watermarks, the recent window."
    )
    max_age: timedelta | None = Field(
        default=None,
        description="Segments observed longer ago than this (seconds, or an ISO 8601 duration) are stale: "
        "their priority drops by stale_penalty.",
    )
    stale_penalty: int = Field(default=20, ge=0, description="How much priority a stale segment loses.")
    as_of: bool = Field(
        default=False,
        description="Send a stale segment with the date it was observed: '(as of 2026-03-02) ' before its text.",
    )
    trust: Trust = Field(default_factory=Trust, description="How untrusted segments are fenced, pinned and scanned.")
    restate: Restate | None = Field(
        default=None, description="Say the task again at the tail after a long body (off by default)."
    )

    @model_validator(mode="after")
    def _max_age_positive(self) -> Self:
        if self.max_age is not None and self.max_age.total_seconds() <= 0:
            raise ValueError(f"max_age must be positive, not {self.max_age}")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """A policy from a ``.json``, ``.toml``, ``.yaml`` or ``.yml`` file."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        suffix = path.suffix.lower()
        data: Any
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as error:  # pragma: no cover - depends on the environment
                raise ImportError("reading YAML policies needs PyYAML: pip install 'ctxsched[yaml]'") from error
            data = yaml.safe_load(text)
        else:
            raise ValueError(f"unknown policy file type {suffix!r}; use .json, .toml, .yaml or .yml")
        return cls.model_validate(data)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of a policy document."""
        return cls.model_json_schema()

    def effective_priorities(self) -> dict[str, int]:
        """The default priorities with this policy's overrides applied."""
        return DEFAULT_PRIORITIES | self.priorities

    def effective_truncation(self) -> dict[str, str]:
        """The default truncation with this policy's overrides applied."""
        return DEFAULT_TRUNCATION | self.truncation

    def core_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``ctxsched._core.Packer``: primitives only."""
        return {
            "reserve_output": self.reserve_output,
            "quotas": {kind: (quota.min, quota.max) for kind, quota in self.quotas.items()},
            "segment_caps": dict(self.segment_caps),
            "priorities": self.effective_priorities(),
            "default_priority": self.default_priority,
            "truncation": self.effective_truncation(),
            "reorder": set(self.reorder),
            "separator": self.separator,
            "elision_marker": self.elision_marker,
            "max_age": None if self.max_age is None else self.max_age.total_seconds(),
            "stale_penalty": self.stale_penalty,
            "as_of": self.as_of,
            "fence": self.trust.fence,
            "demote_pins": self.trust.untrusted_pins == "demote",
            "quarantine": self.trust.quarantine,
            "builtin_patterns": self.trust.builtin_patterns,
            "patterns": list(self.trust.patterns.items()),
            "untrusted_kinds": set(self.trust.untrusted_kinds or ()),
            "half_life": self.trust.half_life,
            "notice": self.trust.notice,
            "restate": None
            if self.restate is None
            else (list(self.restate.ids), self.restate.kind, self.restate.after_tokens),
        }
