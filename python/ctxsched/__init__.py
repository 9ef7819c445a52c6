"""ctxsched: a context-window scheduler for LLM agents.

Exact, offline token counting and an allocator that packs prompt segments into a token budget, in Rust.
"""

from ctxsched._core import (
    CacheReport,
    Decision,
    EvictedSegment,
    KindUsage,
    PackResult,
    PlacedSegment,
    Segment,
    Tokenizer,
    Truncated,
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
    MessageFormatError,
    PanicException,
    PolicyError,
    SegmentError,
    StoreError,
    SummaryError,
    TokenizerError,
    UnknownEncodingError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ctxsched.formats import (
        AnthropicAccounting,
        ChatAccounting,
        PackedMessages,
        ToolAccounting,
        chat_policy,
        count_messages,
        pack_messages,
    )
    from ctxsched.policy import Policy, Quota, Summaries, Watermarks
    from ctxsched.scheduler import Scheduler, Truncator
    from ctxsched.session import Session

# The policy layer imports pydantic (~0.3 s). Import it on first use, so that counting alone starts fast.
_LAZY = {
    "Policy": "ctxsched.policy",
    "Quota": "ctxsched.policy",
    "Watermarks": "ctxsched.policy",
    "Summaries": "ctxsched.policy",
    "Session": "ctxsched.session",
    "Scheduler": "ctxsched.scheduler",
    "Truncator": "ctxsched.scheduler",
    "AnthropicAccounting": "ctxsched.formats",
    "ChatAccounting": "ctxsched.formats",
    "ToolAccounting": "ctxsched.formats",
    "PackedMessages": "ctxsched.formats",
    "chat_policy": "ctxsched.formats",
    "count_messages": "ctxsched.formats",
    "pack_messages": "ctxsched.formats",
}


def __getattr__(name: str) -> object:
    if name in ("stores", "hooks", "trust"):
        import importlib

        return importlib.import_module(f"ctxsched.{name}")
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ctxsched' has no attribute {name!r}")


__all__ = [
    "AnthropicAccounting",
    "BudgetError",
    "CacheReport",
    "ChatAccounting",
    "ContextSchedError",
    "Decision",
    "DuplicateSegmentIdError",
    "EvictedSegment",
    "InvalidTokenError",
    "KindUsage",
    "MessageFormatError",
    "PackResult",
    "PackedMessages",
    "PanicException",
    "PlacedSegment",
    "Policy",
    "PolicyError",
    "Quota",
    "Scheduler",
    "Segment",
    "SegmentError",
    "Session",
    "StoreError",
    "Summaries",
    "SummaryError",
    "TokenCounter",
    "Tokenizer",
    "TokenizerError",
    "TokenizerLike",
    "ToolAccounting",
    "Truncated",
    "Truncator",
    "UnknownEncodingError",
    "Watermarks",
    "__version__",
    "as_token_counter",
    "chat_policy",
    "count_messages",
    "count_tokens",
    "encodings",
    "pack_messages",
]
