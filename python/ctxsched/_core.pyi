"""Type stubs for the Rust extension module, checked against it by ``mypy.stubtest``."""

from collections.abc import Iterable
from typing import Literal, final

__all__ = ["PanicException", "Tokenizer", "__version__", "count_tokens", "encodings"]

__version__: str

class PanicException(BaseException):
    """A Rust panic. Always a bug in ctxsched."""

@final
class Tokenizer:
    """Exact token counting, encoding, decoding and truncation for one built-in encoding.

    Counts are identical to ``tiktoken``'s ``encode_ordinary``: special-token strings such as
    ``<|endoftext|>`` are ordinary text. Lone surrogates in a ``str`` are replaced by U+FFFD first, as tiktoken
    does. Instances are immutable, thread-safe, hashable and picklable; work on large texts releases the GIL.
    """

    def __new__(cls, encoding: str = "o200k_base") -> Tokenizer:
        """The tokenizer for a built-in encoding (see ``ctxsched.encodings()``).

        Raises:
            UnknownEncodingError: the name is not a built-in encoding (a ``ValueError``).
        """

    @property
    def name(self) -> str:
        """The encoding's name."""

    @property
    def vocab_size(self) -> int:
        """One past the largest token id, special tokens included (tiktoken's ``n_vocab``)."""

    def count(self, text: str) -> int:
        """Exact number of tokens in ``text``."""

    def count_many(self, texts: Iterable[str]) -> list[int]:
        """Token counts of every text, in one call (the GIL is released while counting)."""

    def count_up_to(self, text: str, limit: int) -> int | None:
        """The token count of ``text`` if it is at most ``limit``, else ``None``; stops early."""

    def fits(self, text: str, max_tokens: int) -> bool:
        """Whether ``text`` takes at most ``max_tokens`` tokens; costs O(max_tokens), not O(len(text))."""

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, identical to ``tiktoken``'s ``encode_ordinary``."""

    def decode(self, tokens: list[int]) -> str:
        """The text of ``tokens``; bytes that are not UTF-8 become U+FFFD.

        Raises:
            InvalidTokenError: an id is not in the encoding (a ``ValueError``).
        """

    def decode_bytes(self, tokens: list[int]) -> bytes:
        """The bytes of ``tokens``.

        Raises:
            InvalidTokenError: an id is not in the encoding (a ``ValueError``).
        """

    def truncate(self, text: str, max_tokens: int, keep: Literal["head", "tail"] = "head") -> str:
        """``text`` cut on a token boundary to at most ``max_tokens`` tokens, keeping its start or its end.

        The result is the longest prefix (``"head"``) or suffix (``"tail"``) of ``text`` that ends on one of
        its token boundaries, is valid text and counts at most ``max_tokens`` tokens; ``text`` itself if it fits.
        """

    def token_byte_values(self) -> list[bytes]:
        """The bytes of every ordinary token, in rank order."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def count_tokens(text: str, encoding: str = "o200k_base") -> int:
    """Exact number of tokens in ``text`` for a built-in encoding.

    Raises:
        UnknownEncodingError: ``encoding`` is not built in (a ``ValueError``).
        TypeError: ``text`` is not a ``str``.
    """

def encodings() -> list[str]:
    """The names of the built-in encodings, the default first."""
