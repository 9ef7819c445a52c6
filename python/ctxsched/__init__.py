"""ctxsched: a context-window scheduler for LLM agents.

Exact, offline token counting for OpenAI's ``o200k_base`` and ``cl100k_base`` encodings, in Rust.
"""

from ctxsched._core import Tokenizer, __version__, count_tokens, encodings
from ctxsched.counting import TokenCounter, TokenizerLike, as_token_counter
from ctxsched.exceptions import (
    ContextSchedError,
    InvalidTokenError,
    PanicException,
    TokenizerError,
    UnknownEncodingError,
)

__all__ = [
    "ContextSchedError",
    "InvalidTokenError",
    "PanicException",
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
