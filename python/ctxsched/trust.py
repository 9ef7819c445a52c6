"""Trust: text from tools, files and the web is data, never instructions.

Mark such segments ``Segment(trust="untrusted")``; ``Policy.trust`` (a ``ctxsched.policy.Trust``) says how
they are fenced when sent, what a pin on one does, and whether text that matches an injection pattern is
quarantined. The rules live in the Rust core; this module shows its constants:

- ``FENCE_OPEN`` and ``FENCE_CLOSE``: the markers around delimited text (the same bytes on every call);
- ``DATAMARK``: the character that joins the words of datamarked text;
- ``PATTERNS_VERSION`` and ``BUILTIN_PATTERNS``: the built-in injection patterns, ``(name, regex)``;
- ``notice(fence)``: the sentence for your system prompt that tells the model what the fence means.
"""

from __future__ import annotations

from typing import Literal

from ctxsched._core import BUILTIN_PATTERNS, DATAMARK, FENCE_CLOSE, FENCE_NOTICES, FENCE_OPEN, PATTERNS_VERSION

__all__ = ["BUILTIN_PATTERNS", "DATAMARK", "FENCE_CLOSE", "FENCE_OPEN", "PATTERNS_VERSION", "notice"]


def notice(fence: Literal["delimit", "datamark", "none"] = "delimit") -> str:
    """The system-prompt sentence that explains ``fence`` to the model (empty for ``"none"``)."""
    try:
        return FENCE_NOTICES[fence]
    except KeyError:
        raise ValueError(f"fence must be 'delimit', 'datamark' or 'none', not {fence!r}") from None
