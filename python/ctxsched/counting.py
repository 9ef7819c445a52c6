"""One small interface for everything that can count tokens.

The built-in encodings (``ctxsched.Tokenizer``) count in Rust and are what the scheduler uses directly, with
no Python in the loop. Any other tokenizer — a ``tiktoken.Encoding``, a HuggingFace ``tokenizers.Tokenizer``
or a plain ``str -> int`` callable — is wrapped in an adapter with the same two methods, and the scheduler
asks it for all counts in one ``count_many`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

from ctxsched._core import Tokenizer, encodings
from ctxsched.exceptions import TokenizerError

__all__ = [
    "CallableCounter",
    "HuggingFaceCounter",
    "TiktokenCounter",
    "TokenCounter",
    "TokenizerLike",
    "as_token_counter",
]


@runtime_checkable
class TokenCounter(Protocol):
    """Anything that counts tokens: ``ctxsched.Tokenizer`` and the adapters below."""

    @property
    def name(self) -> str:
        """A name for logs and decision records."""
        ...

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        ...

    def count_many(self, texts: Iterable[str]) -> list[int]:
        """Tokens in each of ``texts``, in order."""
        ...


#: What ``as_token_counter`` accepts: a built-in encoding name, a counter, a ``tiktoken.Encoding``,
#: a HuggingFace ``tokenizers.Tokenizer`` or a callable ``str -> int``.
TokenizerLike: TypeAlias = "str | TokenCounter | Callable[[str], int] | Any"


def _checked(count: object, source: str, text: str) -> int:
    # bool is an int subclass, and True is not a token count.
    if isinstance(count, bool) or not isinstance(count, int):
        raise TokenizerError(f"{source} returned {type(count).__name__} {count!r}; a token count must be an int")
    if count < 0:
        raise TokenizerError(f"{source} returned {count} for a text of {len(text)} characters; counts are >= 0")
    return count


def _texts(texts: Iterable[str]) -> Sequence[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of str, not a single str")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be str, not {type(text).__name__}")
    return texts


class TiktokenCounter:
    """Counts with a ``tiktoken.Encoding``, as ``len(encoding.encode_ordinary(text))``."""

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding
        self.name = f"tiktoken:{encoding.name}"

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return len(self.encoding.encode_ordinary(text))

    def count_many(self, texts: Iterable[str]) -> list[int]:
        """Tokens in each of ``texts``, through tiktoken's threaded batch encoder."""
        return [len(tokens) for tokens in self.encoding.encode_ordinary_batch(list(_texts(texts)))]


class HuggingFaceCounter:
    """Counts with a HuggingFace ``tokenizers.Tokenizer``, without special tokens (they are not content)."""

    def __init__(self, tokenizer: Any, name: str = "huggingface") -> None:
        self.tokenizer = tokenizer
        self.name = name

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Iterable[str]) -> list[int]:
        """Tokens in each of ``texts``, through the tokenizer's parallel batch encoder."""
        encodings = self.tokenizer.encode_batch(list(_texts(texts)), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


class CallableCounter:
    """Counts with any ``str -> int`` callable, checking every answer it gives."""

    def __init__(self, function: Callable[[str], int], name: str | None = None) -> None:
        self.function = function
        self.name = name or getattr(function, "__qualname__", None) or repr(function)

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return _checked(self.function(text), f"token counter {self.name!r}", text)

    def count_many(self, texts: Iterable[str]) -> list[int]:
        """Tokens in each of ``texts``."""
        return [_checked(self.function(text), f"token counter {self.name!r}", text) for text in _texts(texts)]


def as_token_counter(tokenizer: TokenizerLike) -> TokenCounter:
    """The counter for ``tokenizer``: built-in ``Tokenizer`` objects for encoding names, adapters otherwise.

    Raises:
        UnknownEncodingError: ``tokenizer`` is a name that is not a built-in encoding.
        TypeError: ``tokenizer`` is none of the accepted kinds.
    """
    if isinstance(tokenizer, str):
        return Tokenizer(tokenizer)
    if isinstance(tokenizer, Tokenizer | TiktokenCounter | HuggingFaceCounter | CallableCounter):
        return tokenizer
    # Duck-typed so that neither tiktoken nor tokenizers has to be installed.
    if hasattr(tokenizer, "encode_ordinary") and hasattr(tokenizer, "encode_ordinary_batch"):
        return TiktokenCounter(tokenizer)
    if hasattr(tokenizer, "encode_batch") and hasattr(tokenizer, "get_vocab_size"):
        return HuggingFaceCounter(tokenizer)
    if isinstance(tokenizer, TokenCounter):
        return tokenizer
    if callable(tokenizer):
        return CallableCounter(tokenizer)
    raise TypeError(
        f"tokenizer must be an encoding name ({', '.join(encodings())}), a ctxsched.Tokenizer, a "
        f"tiktoken.Encoding, a tokenizers.Tokenizer or a callable str -> int, not {type(tokenizer).__name__}"
    )
