"""ctxsched: a context-window scheduler for LLM agents.

Exact, offline token counting and an allocator that packs prompt segments into a token budget, in Rust.
"""

from ctxsched._core import (
    Decision,
    EvictedSegment,
    KindUsage,
    PackResult,
    PlacedSegment,
    Segment,
    Tokenizer,
    __version__,
    count_tokens,
    encodings,
)
from ctxsched.counting import TokenCounter, TokenizerLike, as_token_counter
from ctxsched.exceptions import (
    BudgetError,
    ContextSchedError,
    DuplicateSegmentIdError,
    InvalidTokenError,
    PanicException,
    PolicyError,
    TokenizerError,
    UnknownEncodingError,
)
from ctxsched.policy import Policy, Quota
from ctxsched.scheduler import Scheduler

__all__ = [
    "BudgetError",
    "ContextSchedError",
    "Decision",
    "DuplicateSegmentIdError",
    "EvictedSegment",
    "InvalidTokenError",
    "KindUsage",
    "PackResult",
    "PanicException",
    "PlacedSegment",
    "Policy",
    "PolicyError",
    "Quota",
    "Scheduler",
    "Segment",
    "TokenCounter",
    "Tokenizer",
    "TokenizerError",
    "TokenizerLike",
    "UnknownEncodingError",
    "__version__",
    "as_token_counter",
    "count_tokens",
    "encodings",
]
