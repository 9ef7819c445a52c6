"""Type stubs for the Rust extension module, checked against it by ``mypy.stubtest``."""

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeAlias, final

__all__ = [
    "BUILTIN_PATTERNS",
    "DATAMARK",
    "FENCE_CLOSE",
    "FENCE_NOTICES",
    "FENCE_OPEN",
    "PATTERNS_VERSION",
    "RESTATED_KIND",
    "RESTATE_HEADER",
    "CacheReport",
    "ChatSession",
    "ChatSummaries",
    "Decision",
    "EvictedSegment",
    "KindUsage",
    "PackResult",
    "PackedChat",
    "Packer",
    "PanicException",
    "PlacedSegment",
    "Placement",
    "Segment",
    "Tokenizer",
    "Truncated",
    "__version__",
    "chat_tokens",
    "count_tokens",
    "count_tools",
    "encodings",
    "image_part_tokens",
    "image_size",
    "pack_chat",
    "pack_summarised",
    "plan_summaries",
]

__version__: str

#: A built-in truncation strategy.
_Strategy: TypeAlias = Literal["head", "tail", "middle", "lines", "json", "auto"]
#: A user truncation function: ``(text, max_tokens, tokenizer) -> str`` within ``max_tokens``.
_Truncator: TypeAlias = Callable[[str, int, "Tokenizer"], str]

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

    def truncate(
        self,
        text: str,
        max_tokens: int,
        strategy: _Strategy = "head",
        marker: str | None = None,
    ) -> str:
        r"""``text`` cut to at most ``max_tokens`` tokens by ``strategy``; ``text`` itself if it fits.

        ``"head"`` and ``"tail"`` give the longest prefix or suffix of ``text`` that ends on one of its token
        boundaries, is valid text and counts at most ``max_tokens`` tokens. ``"middle"`` keeps the start and
        the end around ``marker`` (default ``"\n[… {n} tokens elided …]\n"``; ``{n}`` becomes the number of
        tokens elided, prefixed with ``~`` when estimated), the marker counted inside the limit, each side as
        long as still fits. ``"lines"`` does the same with whole lines, ``"json"`` returns a smaller valid
        JSON document made of the original's values, and ``"auto"`` picks one of them by the text's shape.
        ``cut`` says which strategy was used and why it differs from the one asked for.

        Raises:
            ValueError: ``strategy`` is not a built-in strategy.
        """

    def cut(
        self,
        text: str,
        max_tokens: int,
        strategy: _Strategy = "auto",
        marker: str | None = None,
    ) -> Truncated:
        """Like ``truncate``, but says which strategy produced the text and why (``Truncated.fallback``)."""

    def token_byte_values(self) -> list[bytes]:
        """The bytes of every ordinary token, in rank order."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Truncated:
    """A text cut to a limit by ``Tokenizer.cut``."""

    @property
    def text(self) -> str: ...
    @property
    def tokens(self) -> int:
        """Exact tokens of ``text``."""

    @property
    def strategy(self) -> Literal["head", "tail", "middle", "lines", "json", "auto"]:
        """The strategy that produced ``text`` (``auto`` only for a text that fitted)."""

    @property
    def fallback(self) -> str | None:
        """Why ``strategy`` is not the one asked for (or what ``auto`` tried first), if so."""

def count_tokens(text: str, encoding: str = "o200k_base") -> int:
    """Exact number of tokens in ``text`` for a built-in encoding.

    Raises:
        UnknownEncodingError: ``encoding`` is not built in (a ``ValueError``).
        TypeError: ``text`` is not a ``str``.
    """

def encodings() -> list[str]:
    """The names of the built-in encodings, the default first."""

@final
class Segment:
    """One piece of the prompt and what the scheduler may do with it. Immutable; cheap to build.

    Args:
        text: the text.
        id: unique within one ``pack`` call; defaults to ``"{kind}-{index}"`` (its position in that call).
        kind: its consumer class (system, instruction, tool_schema, history, tool_call, tool_result,
            retrieval, memory, example, summary, or any kind of your own); quotas, caps and default
            priorities are per kind.
        role: the chat role, passed through.
        priority: higher is kept first; ``None`` takes the policy's priority for the kind.
        pin: ``"head"`` or ``"tail"``: always kept, placed first or last.
        required: always kept, in natural position.
        group: segments sharing a group are kept or evicted together.
        truncate: ``"none"``, a built-in strategy (``"head"``, ``"tail"``, ``"middle"``, ``"lines"``,
            ``"json"``, ``"auto"``; see ``Tokenizer.truncate``) or the name of a truncator registered with the
            ``Scheduler``; ``None`` takes the policy's truncation for the kind.
        min_tokens: a cut segment keeps at least this many tokens, or is not cut.
        summarizable: whether a summariser may replace it when evicted (used by summarisation hooks).
        relevance: for kinds the policy reorders: the most relevant go to the edges of their run.
        trust: ``"trusted"`` or ``"untrusted"`` (text from tools, files or the web): an untrusted segment is
            fenced when sent, scanned for injection patterns, and never pinned (see ``Policy.trust``).
        metadata: anything, passed through untouched.
        overhead: tokens it costs beyond its text (a chat message's framing, its tool calls, images):
            counted in its size, never cut.
        stub: a short stand-in, a template in which ``{n}`` becomes the text's tokens (exact up to 512 bytes,
            else estimated and written ``~``). Before whole units are evicted, the oldest segments that have
            one are replaced by it, as few as make a difference (``action == "stubbed"``).
        observed_at: when its content was true (a timezone-aware datetime, or seconds since the epoch).
        expires_at: when it stops being true; at a pack at or after it, it is evicted as ``expired``.
        ttl: instead of ``expires_at``: how long after ``observed_at`` it holds (a timedelta or seconds).
        key: the memory it is a version of: of the segments sharing a key, only the current version is
            packed (the highest ``version``, then the latest observed, then the latest given); the others
            are evicted as ``superseded``.
        version: its version under ``key``.
        age: how many turns ago it was written, for ``Policy.trust.half_life`` (in the chat formats, the
            assistant messages after it).

    Raises:
        SegmentError: a naive datetime, ``expires_at`` before ``observed_at``, a negative ``ttl``, ``ttl``
            without ``observed_at`` or with ``expires_at``, or an empty key; the message names the segment.
    """

    def __new__(
        cls,
        text: str,
        *,
        id: str | None = None,
        kind: str = "history",
        role: str | None = None,
        priority: int | None = None,
        pin: Literal["head", "tail"] | None = None,
        required: bool = False,
        group: str | None = None,
        truncate: str | None = None,
        min_tokens: int = 0,
        summarizable: bool = False,
        relevance: float = 0.0,
        trust: Literal["trusted", "untrusted"] | None = None,
        metadata: Any = None,
        overhead: int = 0,
        stub: str | None = None,
        observed_at: datetime | float | None = None,
        expires_at: datetime | float | None = None,
        ttl: timedelta | float | None = None,
        key: str | None = None,
        version: int = 0,
        age: int | None = None,
    ) -> Segment: ...
    @property
    def text(self) -> str: ...
    @property
    def id(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def role(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def pin(self) -> Literal["head", "tail"] | None: ...
    @property
    def required(self) -> bool: ...
    @property
    def group(self) -> str | None: ...
    @property
    def truncate(self) -> str | None: ...
    @property
    def min_tokens(self) -> int: ...
    @property
    def overhead(self) -> int: ...
    @property
    def stub(self) -> str | None: ...
    @property
    def summarizable(self) -> bool: ...
    @property
    def relevance(self) -> float: ...
    @property
    def trust(self) -> Literal["trusted", "untrusted"] | None:
        """As given; ``None``: as ``Policy.trust.untrusted_kinds`` says of its kind."""
    @property
    def observed_at(self) -> datetime | None:
        """When its content was observed, in UTC."""

    @property
    def expires_at(self) -> datetime | None:
        """When it stops being true (``expires_at``, or ``observed_at`` plus ``ttl``), in UTC."""

    @property
    def age(self) -> int | None: ...
    @property
    def key(self) -> str | None: ...
    @property
    def version(self) -> int: ...
    @property
    def metadata(self) -> Any: ...

@final
class PlacedSegment:
    """A segment as placed: ``text`` is what is sent (cut, or its stub, if ``action`` says so)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def role(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def tokens(self) -> int: ...
    @property
    def original_tokens(self) -> int: ...
    @property
    def action(self) -> Literal["kept", "truncated", "stubbed"]: ...
    @property
    def rule(self) -> str: ...
    @property
    def index(self) -> int:
        """Position in the input list."""

    @property
    def segment(self) -> Segment:
        """The input segment, with its original text."""

@final
class EvictedSegment:
    """A segment that was not placed, and why."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def tokens(self) -> int:
        """Its tokens; a lower bound when ``counted`` is false."""

    @property
    def counted(self) -> bool:
        """Whether ``tokens`` is exact: a segment that cannot fit is counted only until that is certain."""

    @property
    def rule(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def segment(self) -> Segment: ...

@final
class Decision:
    """What happened to one input segment (``action``) and the rule that caused it (``rule``, ``detail``)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def action(self) -> Literal["kept", "truncated", "stubbed", "evicted"]: ...
    @property
    def rule(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def tokens_before(self) -> int:
        """Its tokens as given; a lower bound when ``counted`` is false."""

    @property
    def counted(self) -> bool: ...
    @property
    def tokens_after(self) -> int: ...
    @property
    def strategy(self) -> str | None:
        """The strategy or truncator that cut it, if it was cut."""

    @property
    def fallback(self) -> str | None:
        """Why its own strategy was not the one used (a failing truncator, JSON that did not parse), if so."""

    @property
    def flags(self) -> list[str]:
        """What trust did to it: a demoted pin, the injection patterns it matched, a quarantine."""

    @property
    def untrusted(self) -> bool:
        """Whether it was packed as untrusted: fenced when sent, never in the head or the tail."""

@final
class Placement:
    """Where one placed segment sits.

    ``region`` is ``"head"`` (head pins), ``"tail"`` (tail pins) or ``"body"``; ``offset`` is the token where
    it starts (separators included); ``high_priority`` says whether it counts for
    ``PackResult.placement_score`` (pinned or required, or priority 90 and above).
    """

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    @property
    def region(self) -> Literal["head", "body", "tail"]: ...
    @property
    def high_priority(self) -> bool: ...

@final
class KindUsage:
    """Tokens of one kind against its quota (``min`` and ``max`` resolved to tokens)."""

    @property
    def tokens(self) -> int: ...
    @property
    def kept(self) -> int: ...
    @property
    def evicted(self) -> int: ...
    @property
    def min(self) -> int: ...
    @property
    def max(self) -> int | None: ...

@final
class PackResult:
    """The packed prompt, and every decision behind it."""

    @property
    def segments(self) -> list[PlacedSegment]:
        """Placed segments, in final order."""

    @property
    def evicted(self) -> list[EvictedSegment]:
        """Segments not placed, in input order."""

    @property
    def decisions(self) -> list[Decision]:
        """One decision per input segment, in input order."""

    @property
    def placement(self) -> list[Placement]:
        """Each placed segment's region and token offset, in prompt order."""

    @property
    def placement_score(self) -> float | None:
        """The share of high-priority tokens in the head or the tail (``None``: none placed)."""

    def decision(self, index: int) -> Decision:
        """The decision about input segment ``index``.

        Raises:
            IndexError: no such segment.
        """

    @property
    def tokens(self) -> int:
        """Exact tokens of ``text()`` (built-in encodings); never above ``usable``."""

    @property
    def budget(self) -> int: ...
    @property
    def usable(self) -> int:
        """The budget minus the policy's output reserve."""

    @property
    def usage(self) -> dict[str, KindUsage]: ...
    @property
    def separator(self) -> str: ...
    def text(self, separator: str | None = None) -> str:
        """The packed prompt: placed segments joined by the policy's separator.

        Another ``separator`` renders the same segments differently; ``tokens`` counts the policy's render.
        """

    def explain(self) -> str:
        """The decision log as text a person can read at a glance."""

@final
class Packer:
    """The allocator in Rust. Use ``ctxsched.Scheduler``, which validates a ``Policy`` and builds this."""

    def __new__(
        cls,
        tokenizer: Tokenizer | None,
        *,
        reserve_output: int = 0,
        quotas: Mapping[str, tuple[int | float, int | float | None]] = ...,
        segment_caps: Mapping[str, int | float] = ...,
        priorities: Mapping[str, int] = ...,
        default_priority: int = 0,
        truncation: Mapping[str, str] = ...,
        reorder: Set[str] = ...,
        separator: str = "\n\n",
        elision_marker: str = ...,
        truncators: Mapping[str, _Truncator] | None = None,
        joined: bool = True,
        max_age: float | None = None,
        stale_penalty: int = 0,
        fence: Literal["delimit", "datamark", "none"] = "delimit",
        demote_pins: bool = False,
        quarantine: bool = False,
        builtin_patterns: bool = True,
        patterns: Sequence[tuple[str, str]] = ...,
        untrusted_kinds: Set[str] = ...,
        half_life: float | None = None,
        notice: bool = False,
        restate: tuple[Sequence[str], str, int] | None = None,
        as_of: bool = False,
    ) -> Packer: ...
    @property
    def memo_size(self) -> int: ...
    @property
    def separator(self) -> str: ...
    def total_up_to(self, segments: list[Segment], limit: int) -> int | None:
        """Tokens of ``segments`` (texts and overheads) if at most ``limit``, else ``None``; memoised."""

    def pack(
        self,
        segments: list[Segment],
        budget: int,
        counts: list[int] | None = None,
        separator_tokens: int = 0,
        *,
        caps: bool = True,
        now: float | None = None,
    ) -> PackResult:
        """Pack ``segments`` into ``budget``.

        ``caps=False`` ignores the policy's per-kind caps; ``now`` (seconds since the epoch) is the time
        expiry and age are judged at (``None``: nothing expires).
        """

class _Accounting(Protocol):
    """``ctxsched.ChatAccounting``: the attributes the reader takes."""

    @property
    def tokens_per_message(self) -> int: ...
    @property
    def tokens_per_name(self) -> int: ...
    @property
    def tokens_per_tool_call(self) -> int: ...
    @property
    def reply_priming(self) -> int: ...
    @property
    def image_tokens(self) -> int: ...
    @property
    def audio_part_tokens(self) -> int: ...
    @property
    def file_part_tokens(self) -> int: ...
    @property
    def unknown_part_tokens(self) -> int: ...

#: (kinds, room for all summaries, merge runs, input tokens per hook call, hook name, cut on failure).
_SummaryArguments: TypeAlias = tuple[set[str], float | int, bool, int, str, bool]
#: (the hook's inputs, tokens its summary may take, the inputs' key, depth).
_SummaryRun: TypeAlias = tuple[list[Segment], int, str, int]
#: (the summary's text, or None and what went wrong).
_Outcome: TypeAlias = tuple[str | None, str | None]

@final
class ChatSummaries:
    """A conversation packed with room kept for summaries, waiting for its hooks."""

    @property
    def runs(self) -> list[_SummaryRun]: ...
    def finish(self, given: dict[str, _Outcome]) -> PackedChat:
        """Pack again with each run's summary in its place; a run without one falls back."""

@final
class PackedChat:
    """A packed conversation, as ``pack_chat`` returns it (``ctxsched.PackedMessages`` wraps it)."""

    @property
    def result(self) -> PackResult: ...
    @property
    def messages(self) -> list[Any]:
        """The packed messages: the caller's objects where kept whole, dict copies where changed."""

    @property
    def indices(self) -> list[int | None]:
        """For each packed message, its index in the input (``None`` for a summary)."""

    @property
    def stubbed(self) -> list[int]: ...
    @property
    def repairs(self) -> list[str]: ...
    @property
    def primary(self) -> list[int | None] | dict[int, int | None]:
        """For each input message, the index of its decision (``None``: a repair dropped it).

        A dict by message index for a session's pack.
        """

    @property
    def note(self) -> str | None: ...

@final
class CacheReport:
    """What a ``Session`` pack kept of the previous prompt, as the provider's prefix cache sees it."""

    @property
    def prefix_tokens(self) -> int:
        """Tokens at the start of this prompt identical to the previous prompt's (tool definitions included)."""

    @property
    def first_change(self) -> int | None:
        """The position in ``messages`` of the first message that differs (``None``: none does)."""

    @property
    def reason(self) -> str | None:
        """Why it differs: the first pack, a new epoch, a new pin, or a fresh pack."""

    @property
    def epoch(self) -> int:
        """The epoch this prompt belongs to (1 after the first pack)."""

    @property
    def frozen_messages(self) -> int:
        """Leading messages kept from before the current epoch's cut point."""

    @property
    def message_tokens(self) -> list[int]:
        """Tokens of each packed message, in order."""

    @property
    def breakpoints(self) -> int:
        """Anthropic: the ``cache_control`` marks placed (0 for the OpenAI formats, cached automatically)."""

    def describe(self) -> str:
        """One line: the prefix kept, where the prompt changed and why, the epoch."""

@final
class ChatSession:
    """One conversation's state between packs (``ctxsched.Session`` wraps it)."""

    def __new__(
        cls,
        packer: Packer,
        budget: int,
        accounting: _Accounting,
        *,
        format: str = "openai",
        reserved: int = 0,
        high: float = 1.0,
        low: float = 0.85,
        recent: float = 0.05,
        system: object = None,
        min_cache_tokens: int = 1024,
    ) -> ChatSession: ...
    def extend(self, messages: object) -> None:
        """Read and append messages; nothing is appended if one is malformed (``MessageFormatError``)."""

    def pack(
        self, summaries: _SummaryArguments | None = None, outcomes: dict[str, _Outcome] | None = None
    ) -> tuple[PackedChat, CacheReport] | list[_SummaryRun]:
        """Pack the conversation; on error the session is as it was.

        With ``summaries`` and no ``outcomes``, a new epoch with history to summarise gives its runs first.
        """

    def earlier(self, index: int) -> Decision | None:
        """The decision about message ``index`` if an earlier pack evicted it."""

    def __len__(self) -> int: ...
    @property
    def pending(self) -> int:
        """Messages appended since the last pack."""

    @property
    def epoch(self) -> int:
        """The current epoch (0 before the first pack)."""

def plan_summaries(
    packer: Packer,
    segments: list[Segment],
    budget: int,
    kinds: set[str],
    reserve: int | float,
    merge: bool,
    now: float | None = None,
) -> list[tuple[list[int], int, str]]:
    """The summary step's first phase: (member indices, tokens the summary may take, a hash of their texts)."""

def pack_summarised(
    packer: Packer,
    segments: list[Segment],
    budget: int,
    runs: list[tuple[list[int], int, str | None, str | None]],
    truncate: bool,
    hook: str,
    now: float | None = None,
) -> PackResult:
    """The summary step's second phase: pack with each run's summary (or its fallback) in place of its first member."""

FENCE_OPEN: str
RESTATE_HEADER: str
RESTATED_KIND: str
FENCE_CLOSE: str
DATAMARK: str
PATTERNS_VERSION: str
BUILTIN_PATTERNS: list[tuple[str, str]]
FENCE_NOTICES: dict[str, str]

def pack_chat(
    messages: object,
    packer: Packer,
    budget: int,
    accounting: _Accounting,
    *,
    format: str = "openai",
    repair: bool = False,
    reserved: int = 0,
    summaries: _SummaryArguments | None = None,
) -> PackedChat | ChatSummaries:
    """Read, link and pack a conversation in one call; ``reserved`` tokens (tool definitions) are kept free.

    With ``summaries``, history that must go may be summarised: then a ``ChatSummaries`` comes back, waiting
    for the hooks' outcomes.

    Raises:
        MessageFormatError: a malformed message, named by its index.
        BudgetError: the mandatory set cannot fit, even cut.
    """

def chat_tokens(
    messages: object, tokenizer: Tokenizer, accounting: _Accounting, *, format: str = "openai"
) -> list[tuple[str, int, int, str]]:
    """Per message: (role, content tokens, other tokens, a preview of the content); no reply priming."""

def count_tools(
    tools: Sequence[Any],
    tokenizer: Tokenizer,
    func_init: int,
    prop_init: int,
    prop_key: int,
    enum_init: int,
    enum_item: int,
    func_end: int,
) -> tuple[int, list[tuple[str, int]]]:
    """Tokens of tool definitions by the cookbook recipe: the total, and (name, tokens) each.

    The definitions are dicts or the SDKs' objects.

    Raises:
        TypeError: not a list of tool definitions, or one that is not JSON data.
    """

def image_part_tokens(part: Mapping[str, Any], accounting: _Accounting) -> int:
    """OpenAI's cost of an image part (``image_url`` or ``input_image``)."""

def image_size(url: str) -> tuple[float, float] | None:
    """The width and height of a PNG, GIF or JPEG image in a base64 data URL, if they can be read."""
