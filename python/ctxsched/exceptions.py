"""The exceptions ctxsched raises on purpose, under one root, each also a subclass of the matching built-in.

The Rust core raises these classes too: ``rust/py/errors.rs`` imports them from here, so there is one
hierarchy whichever side of the boundary an error starts on.
"""

from ctxsched import _core

__all__ = [
    "BudgetError",
    "ContextSchedError",
    "DuplicateSegmentIdError",
    "InvalidTokenError",
    "MessageFormatError",
    "PanicException",
    "PolicyError",
    "SegmentError",
    "StoreError",
    "SummaryError",
    "TokenizerError",
    "UnknownEncodingError",
]


class ContextSchedError(Exception):
    """Root of every error ctxsched raises on purpose."""


class UnknownEncodingError(ContextSchedError, ValueError):
    """An encoding name that is not built in; the message lists the ones that are."""


class InvalidTokenError(ContextSchedError, ValueError):
    """A token id that the encoding does not have."""


class TokenizerError(ContextSchedError, ValueError):
    """A user-supplied tokenizer returned something that is not a token count."""


class BudgetError(ContextSchedError):
    """The mandatory set (pinned and required segments and their groups) cannot fit the budget.

    The message lists what the mandatory set holds and how many tokens it needs at its smallest.
    """


class DuplicateSegmentIdError(ContextSchedError, ValueError):
    """Two segments given to one ``pack`` call share an id."""


class SegmentError(ContextSchedError, ValueError):
    """A segment's settings are of the wrong kind or contradict each other; the message names the segment.

    For example a naive datetime, a negative ``ttl``, or ``expires_at`` before ``observed_at``.
    """


class PolicyError(ContextSchedError, ValueError):
    """A policy that is valid on its own but not for a given budget (a quota minimum above its maximum)."""


class SummaryError(ContextSchedError, RuntimeError):
    """A summarisation hook failed and the policy is ``strict`` (otherwise the failure falls back)."""


class StoreError(ContextSchedError, OSError):
    """A store (the summary cache, session state) could not be read or written."""


class MessageFormatError(ContextSchedError, ValueError):
    """A chat message that is not valid in its format; ``index`` is its position (``None``: the list itself)."""

    def __init__(self, index: int | None, problem: str) -> None:
        self.index = index
        self.problem = problem
        super().__init__(problem if index is None else f"messages[{index}] {problem}")


#: Raised if the Rust core ever panics. It is a bug in ctxsched, never the caller's fault: please report it.
PanicException = _core.PanicException
