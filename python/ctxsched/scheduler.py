"""``Scheduler.pack(segments, budget)``: the public entry point to the allocator."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ctxsched._core import Packer, PackResult, Segment, Tokenizer, pack_summarised, plan_summaries
from ctxsched.counting import TokenizerLike, as_token_counter
from ctxsched.exceptions import BudgetError, PolicyError
from ctxsched.hooks import Outcome, Run, Summarizer, SummaryStep
from ctxsched.policy import BUILTIN_TRUNCATION, Policy
from ctxsched.stores import MemoryStore, Store

#: A truncation function: ``(text, max_tokens, tokenizer) -> str``, the result within ``max_tokens``.
Truncator = Callable[[str, int, Tokenizer], str]
#: What tells the time a pack happens at: an aware ``datetime`` or seconds since the epoch.
Clock = Callable[[], datetime | float]

__all__ = ["Scheduler"]

# With a tokenizer of your own, counts come from Python; a bounded memo keeps agent loops from recounting.
_MEMO_LIMIT = 100_000
_REPAIR_ROUNDS = 8


class Scheduler:
    """Decides what goes into the context window, how big each piece is, where it sits, and why.

    Args:
        tokenizer: a built-in encoding name (``"o200k_base"``, ``"cl100k_base"``), a ``ctxsched.Tokenizer``,
            or any tokenizer ``as_token_counter`` accepts (tiktoken, HuggingFace, a ``str -> int`` callable).
            Built-in encodings count in Rust and can cut segments on token boundaries; with any other
            tokenizer segments are kept whole or evicted (never cut).
        policy: a ``Policy``, or a dict validated into one. Validated and converted once, here.
        truncators: your own truncation functions by name, for ``Segment(truncate=name)`` and
            ``Policy.truncation``. Each is called as ``function(text, max_tokens, tokenizer)`` and must return
            a ``str`` of at most ``max_tokens`` tokens; if it raises, returns something else, or returns too
            much, the segment is cut by ``"auto"`` instead and its decision says why (``Decision.fallback``).
        summarizer: a summarisation hook, ``function(segments, max_tokens) -> str`` or an ``async def``: the
            evicted segments of the kinds in ``Policy.summarize`` (and those made with ``summarizable=True``)
            are summarised into the room ``Policy.summaries.budget`` keeps back (see ``ctxsched.hooks``).
        summary_cache: where summaries are memoised (a ``ctxsched.stores`` store): a ``MemoryStore`` by
            default; a ``SQLiteStore`` keeps them across processes and restarts.
        clock: what gives the time of each pack, an aware ``datetime`` or seconds since the epoch
            (``time.time`` by default; inject a fixed one in tests). Segments past ``expires_at`` are
            evicted as ``expired``; ones observed longer ago than ``Policy.max_age`` lose
            ``Policy.stale_penalty`` priority.

    Raises:
        PolicyError: the policy names a truncation that is neither built in nor in ``truncators``, or a
            truncator's name is a built-in one.
        TypeError: a truncator is not callable.
    """

    def __init__(
        self,
        tokenizer: TokenizerLike = "o200k_base",
        policy: Policy | Mapping[str, Any] | None = None,
        *,
        truncators: Mapping[str, Truncator] | None = None,
        summarizer: Summarizer | None = None,
        summary_cache: Store | None = None,
        clock: Clock | None = None,
    ):
        self.policy = policy if isinstance(policy, Policy) else Policy.model_validate(policy or {})
        self.tokenizer = as_token_counter(tokenizer)
        self.truncators = dict(truncators or {})
        _check_truncators(self.policy, self.truncators)
        self._builtin = self.tokenizer if isinstance(self.tokenizer, Tokenizer) else None
        self._packer = Packer(self._builtin, **self.policy.core_arguments(), truncators=self.truncators)
        self._memo: dict[str, int] = {}
        self.clock: Clock = clock if clock is not None else time.time
        self.summary_cache = summary_cache if summary_cache is not None else MemoryStore()
        self._summaries: SummaryStep | None = None
        if summarizer is not None:
            if self._builtin is None:
                raise PolicyError("summaries need a built-in encoding (the core cuts and packs them)")
            self._summaries = SummaryStep(summarizer, self.policy.summaries, self.summary_cache, self._builtin.count)

    def pack(self, segments: Iterable[Segment], budget: int) -> PackResult:
        """Pack ``segments`` (in natural order) into ``budget`` tokens.

        Raises:
            BudgetError: the pinned and required segments cannot fit, even cut; the message lists them.
            DuplicateSegmentIdError: two segments share an id.
            PolicyError: a quota's minimum resolves above its maximum for this budget, or a segment names a
                truncation that is neither built in nor a registered truncator.
            TypeError: ``segments`` holds something that is not a ``ctxsched.Segment``.
        """
        segments = _as_list(segments)
        if self._summaries is not None:
            runs = self._plan(segments, budget)
            if runs:
                return self._finish(segments, budget, runs, self._summaries.run([run for _, run in runs]))
        return self._pack_plain(segments, budget)

    async def apack(self, segments: Iterable[Segment], budget: int) -> PackResult:
        """``pack``, with the summarisation hooks awaited, at most ``Policy.summaries.concurrency`` at once.

        Raises:
            The same as ``pack``; and ``SummaryError`` for a failing hook when the policy is ``strict``.
        """
        segments = _as_list(segments)
        if self._summaries is not None:
            runs = self._plan(segments, budget)
            if runs:
                return self._finish(segments, budget, runs, await self._summaries.arun([run for _, run in runs]))
        return self._pack_plain(segments, budget)

    def _pack_plain(self, segments: list[Segment], budget: int) -> PackResult:
        if self._builtin is not None:
            return self._packer.pack(segments, budget, now=self._now())
        return self._pack_counted(segments, budget)

    def _now(self) -> float:
        """The clock's time, in seconds since the epoch."""
        now = self.clock()
        if isinstance(now, datetime):
            if now.utcoffset() is None:
                raise PolicyError("the clock gave a naive datetime; give it a timezone (datetime.timezone.utc)")
            return now.timestamp()
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise PolicyError(f"the clock must give an aware datetime or seconds since the epoch, not {now!r}")
        return float(now)

    def _plan(self, segments: list[Segment], budget: int) -> list[tuple[list[int], Run]]:
        """The core's runs, each as its members and what the hook is given."""
        summaries = self.policy.summaries
        kinds = set(self.policy.summarize)
        planned = plan_summaries(
            self._packer, segments, budget, kinds, summaries.budget, summaries.merge, now=self._now()
        )
        return [(members, ([segments[i] for i in members], limit, key, 1)) for members, limit, key in planned]

    def _finish(
        self, segments: list[Segment], budget: int, runs: list[tuple[list[int], Run]], outcomes: dict[str, Outcome]
    ) -> PackResult:
        assert self._summaries is not None
        given = [(members, run[1], *outcomes.get(run[2], (None, "gave no result"))) for members, run in runs]
        truncate = self.policy.summaries.truncates
        name = self._summaries.name
        return pack_summarised(self._packer, segments, budget, given, truncate, name, now=self._now())

    def _pack_counted(self, segments: list[Segment], budget: int) -> PackResult:
        for index, segment in enumerate(segments):
            if not isinstance(segment, Segment):
                raise TypeError(f"segments[{index}] must be a ctxsched.Segment, not {type(segment).__name__}")
        missing = list({segment.text for segment in segments if segment.text not in self._memo})
        if len(self._memo) + len(missing) > _MEMO_LIMIT:
            self._memo.clear()
            missing = list({segment.text for segment in segments})
        self._memo.update(zip(missing, self.tokenizer.count_many(missing), strict=True))
        counts = [self._memo[segment.text] for segment in segments]
        separator_tokens = self.tokenizer.count(self.policy.separator)
        # Your tokenizer may count the joined text differently from its parts: count what is sent and,
        # if it is over, pack again into a budget smaller by the difference.
        target = budget
        for _ in range(_REPAIR_ROUNDS):
            result = self._packer.pack(segments, target, counts, separator_tokens, now=self._now())
            sent = self.tokenizer.count(result.text())
            if sent <= budget - self.policy.reserve_output:
                return result
            target -= sent - (budget - self.policy.reserve_output)
        raise BudgetError(f"could not fit the rendered text into {budget} tokens with {self.tokenizer.name!r}")

    @property
    def memo_size(self) -> int:
        """How many distinct texts have memoised token counts."""
        return self._packer.memo_size if self._builtin is not None else len(self._memo)

    def __repr__(self) -> str:
        return f"Scheduler(tokenizer={self.tokenizer.name!r}, policy={self.policy!r})"


def _as_list(segments: Iterable[Segment]) -> list[Segment]:
    if isinstance(segments, str | bytes):
        raise TypeError("segments must be a list of ctxsched.Segment, not a single string")
    return segments if isinstance(segments, list) else list(segments)


def _check_truncators(policy: Policy, truncators: Mapping[str, Truncator]) -> None:
    for name, function in truncators.items():
        if name in BUILTIN_TRUNCATION:
            raise PolicyError(f"truncator name {name!r} is taken by a built-in strategy")
        if not callable(function):
            raise TypeError(f"truncator {name!r} must be callable, not {type(function).__name__}")
    for kind, name in policy.effective_truncation().items():
        if name not in BUILTIN_TRUNCATION and name not in truncators:
            known = ", ".join(BUILTIN_TRUNCATION[1:])
            registered = ", ".join(sorted(truncators)) or "none registered"
            raise PolicyError(
                f"truncation {name!r} for kind {kind!r} is neither built in ({known}) nor a truncator ({registered})"
            )
