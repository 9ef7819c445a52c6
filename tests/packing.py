"""Helpers for the packing tests: segments of known size, and a model of the allocator's costs."""

from __future__ import annotations

import re

import ctxsched


def words(tokens: int) -> str:
    """A text of exactly ``tokens`` tokens in both encodings (one per " w"), that never merges with "\\n\\n"."""
    return "" if tokens == 0 else "w" + " w" * (tokens - 1)


def planned_size(segment: ctxsched.Segment, count: int, policy: ctxsched.Policy, usable: int) -> int:
    """The size a segment enters the fill phase with: its count, or its kind's cap when it may be cut to it."""
    cap = policy.segment_caps.get(segment.kind)
    if cap is None:
        return count
    cap_tokens = cap if isinstance(cap, int) else min(int(cap * usable), usable)
    truncation = segment.truncate or policy.effective_truncation().get(segment.kind, "none")
    if count > cap_tokens and truncation != "none" and cap_tokens >= max(segment.min_tokens, 1):
        return cap_tokens
    return count


def derived_from(original: str, cut: str, marker: str) -> bool:
    """Whether ``cut`` is a prefix or a suffix of ``original``, or a prefix and a suffix around ``marker``
    (with ``{n}`` the token count of what it replaced, or within 5% of it when written as an estimate)."""
    if original.startswith(cut) or original.endswith(cut):
        return True
    before, after = marker.split("{n}", 1)
    pattern = re.escape(before) + r"(~?)([0-9,]+)" + re.escape(after)
    for match in re.finditer(pattern, cut):
        start, end = cut[: match.start()], cut[match.end() :]
        if original.startswith(start) and original.endswith(end) and len(start) + len(end) <= len(original):
            elided = original[len(start) : len(original) - len(end)]
            exact, stated = ctxsched.count_tokens(elided), int(match.group(2).replace(",", ""))
            if stated == exact or (match.group(1) and abs(stated - exact) <= exact * 0.05):
                return True
    return False


def units(segments: list[ctxsched.Segment]) -> list[list[int]]:
    """Indices of each unit (a group, or one ungrouped segment), in order of first appearance."""
    by_group: dict[str, list[int]] = {}
    result: list[list[int]] = []
    for index, segment in enumerate(segments):
        if segment.group is None:
            result.append([index])
        elif segment.group in by_group:
            by_group[segment.group].append(index)
        else:
            by_group[segment.group] = [index]
            result.append(by_group[segment.group])
    return result
