"""Prompt-cache-aware sessions on real transcripts: ``ctxsched.Session`` against stateless packing
(``pack_messages`` on the whole conversation at every turn), LangChain's ``trim_messages``, LlamaIndex's
``ChatMemoryBuffer`` and prompt-poet's cache-aware truncation (``Prompt.truncate`` with a ``truncation_step``).

The agent loop of the 12 largest transcripts at 8k and 32k: before every assistant turn that follows a user message,
the prompt is packed from the conversation so far (a session is given the messages new since its last pack). Each
row records (``benchmark.extra_info``): calls, invalid calls (the messages benchmark's ``problems()``), the median
utilisation on conversations larger than the budget, prefix reuse, miss amplification and cost per call with
cached tokens at 10% (``benches/cache_metrics.py``: every prompt rendered and tokenised the same way, independent
of ctxsched), and the time per turn (mean, median). The session's and LangChain's time per turn against the
conversation's length is plotted to ``benches/results/session_time_per_turn.png``. Peers are skipped when not
installed (``pip install '.[bench]'``); a peer that raises on a call counts it as invalid ("raised ...").
``BENCH_SESSION_TRANSCRIPTS=2`` replays fewer transcripts, for a quick check.
"""

from __future__ import annotations

import inspect
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import ctxsched as cs
from benches.cache_metrics import CacheFigures, chatml
from benches.test_bench_messages import BUDGETS, CONVERSATIONS, _langchain, _llamaindex, problems
from ctxsched.formats import chat
from tests.reference import reference

TRANSCRIPTS = int(os.environ.get("BENCH_SESSION_TRANSCRIPTS", "12"))
FENCE_OPEN = cs.trust.FENCE_OPEN
#: What one fence costs, its two markers counted with tiktoken.
FENCE_TOKENS = sum(
    len(reference("o200k_base").encode_ordinary(marker)) for marker in (FENCE_OPEN, cs.trust.FENCE_CLOSE)
)
PLOTTED = ("session", "langchain")
PLOT = Path(__file__).resolve().parent / "results" / "session_time_per_turn.png"

Message = dict[str, Any]
#: Packs ``transcript[:turn]``: the prompt, and the input index of each of its messages when the packer says.
Step = Callable[[list[Message], int], tuple[list[Message], list[int | None] | None]]
#: A packer for one budget: each call starts a transcript (a new session) and returns its step.
Start = Callable[[], Step]


#: Calls of the fake summariser, by budget.
HOOK_CALLS: dict[int, int] = {}


def fake_summariser(budget: int) -> Callable[[list[cs.Segment], int], str]:
    """A deterministic summariser that returns at once (what is measured is ctxsched's work): the first words
    of each input, within its target."""
    encoding = reference("o200k_base")

    def summarise(segments: list[cs.Segment], max_tokens: int) -> str:
        HOOK_CALLS[budget] = HOOK_CALLS.get(budget, 0) + 1
        gist = " | ".join(" ".join(segment.text.split()[:8]) for segment in segments)
        return encoding.decode(encoding.encode_ordinary(f"{len(segments)} earlier messages: {gist}")[:max_tokens])

    return summarise


#: Tool results sent as they are: the cost of the default fence is the difference from this row.
UNFENCED = cs.chat_policy().model_copy(update={"trust": cs.Policy.model_validate({"trust": {"fence": "none"}}).trust})


def _session(budget: int, summaries: bool = False, fence: bool = True) -> Start:
    if not hasattr(cs, "Session"):
        pytest.skip("ctxsched.Session is not in this build")
    HOOK_CALLS[budget] = 0

    def start() -> Step:
        hook = fake_summariser(budget) if summaries else None
        policy = None if fence else UNFENCED
        session = cs.Session(budget, policy=policy, summarizer=hook, store=cs.stores.MemoryStore())
        seen = 0

        def step(messages: list[Message], turn: int) -> tuple[list[Message], list[int | None] | None]:
            nonlocal seen
            session.extend(messages[seen:turn])
            seen = turn
            packed = session.pack()
            return packed.messages, list(packed.indices)

        return step

    return start


def _stateless(budget: int) -> Start:
    chat._PACKERS.clear()  # no counts remembered from an earlier run

    def step(messages: list[Message], turn: int) -> tuple[list[Message], list[int | None] | None]:
        packed = cs.pack_messages(messages[:turn], budget)
        return packed.messages, list(packed.indices)

    return lambda: step


# prompt-poet's YAML stage rejects control characters and reads U+0085, U+2028, U+2029 as line breaks: what a user
# has to take out of a message before it goes into a template (its count changes by a token or so at most).
_NOT_YAML = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# One part per message; its docs' idiom for chat history: the same truncation priority on every message, truncated
# oldest first. The system prompt and the task have priority 0, which it never truncates.
TEMPLATE = """{% for message in messages %}
- name: "{{ loop.index0 }}"
  role: {{ message.role }}
  truncation_priority: {{ message.priority }}
  content: |
    {{ escape_special_characters(message.text) }}
{% endfor %}"""


def _prompt_poet() -> Callable[[list[Message], int], list[Message]]:
    path = list(sys.path)
    poet = pytest.importorskip("prompt_poet")
    sys.path[:] = path  # it puts its own folder (modules named template, tokenizer, prompt...) first on the path
    encoding = reference("o200k_base")  # o200k_base, offline

    class Tokenizer(poet.AbstractTokenizer):  # type: ignore[misc,name-defined]
        vocab_size = encoding.n_vocab
        vocab: ClassVar[dict[str, int]] = {}  # not used for counting
        inv_vocab: ClassVar[dict[int, str]] = {}

        def tokenize(self, text: str) -> list[int]:
            return encoding.encode_ordinary(text)

    newer = "encode_func" in inspect.signature(poet.Prompt).parameters  # 0.0.38 on: a function, not a class
    counting = {"encode_func": encoding.encode_ordinary} if newer else {"tokenizer": Tokenizer("o200k_base")}

    def truncate(messages: list[Message], budget: int) -> list[Message]:
        task = next((i for i, message in enumerate(messages) if message["role"] == "user"), None)
        parts = [
            {
                "role": message["role"],
                "priority": 0 if message["role"] == "system" or position == task else 1,
                "text": _NOT_YAML.sub("", chatml(message)),  # each part is the message as sent, framing included
            }
            for position, message in enumerate(messages)
        ]
        # Its cache-aware truncation: cut in multiples of the step (its docs: 4,000 at 128k; its default step
        # elsewhere is 1,000), so that the cut, and so the prefix, stays put while the surplus grows within a step.
        prompt = poet.Prompt(
            template_data={"messages": parts}, raw_template=TEMPLATE, token_limit=budget, truncation_step=budget // 8,
            **counting,
        )  # fmt: skip
        prompt.tokenize()
        prompt.truncate()
        return [messages[int(part.name)] for part in prompt.parts]

    return truncate


def _peer(factory: Callable[[], Callable[[list[Message], int], list[Message]]]) -> Callable[[int], Start]:
    """A stateless peer, packing the whole conversation at every turn."""

    def make(budget: int) -> Start:
        pack = factory()

        def step(messages: list[Message], turn: int) -> tuple[list[Message], list[int | None] | None]:
            try:
                return pack(messages[:turn], budget), None
            except Exception as error:
                return [{"role": "error", "content": f"raised {type(error).__name__}"}], None

        return lambda: step

    return make


IMPLEMENTATIONS: dict[str, Callable[[int], Start]] = {
    "session": _session,
    "session_summaries": lambda budget: _session(budget, summaries=True),
    "session_unfenced": lambda budget: _session(budget, fence=False),
    "stateless": _stateless,
    "langchain": _peer(_langchain),
    "llamaindex": _peer(_llamaindex),
    "prompt_poet": _peer(_prompt_poet),
}
#: (implementation, budget) -> (messages in the conversation, ms for the pack), for the plot.
TIMES: dict[tuple[str, int], list[tuple[int, float]]] = {}
#: (implementation, budget) -> mean ms per turn, for the summary step's extra time.
MEAN_MS: dict[tuple[str, int], float] = {}


def _turns(messages: list[Message]) -> list[int]:
    first_user = next((i for i, message in enumerate(messages) if message["role"] == "user"), len(messages))
    return [turn for turn in range(first_user + 1, len(messages)) if messages[turn]["role"] == "assistant"]


def _plot() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return
    figure, axes = pyplot.subplots(1, len(BUDGETS), figsize=(12, 4.5), sharey=True, squeeze=False)
    for axis, budget in zip(axes[0], BUDGETS, strict=True):
        for name in PLOTTED:
            if points := TIMES.get((name, budget)):
                axis.scatter(*zip(*points, strict=True), s=8, alpha=0.6, label=name)
        axis.set(title=f"agent loop at {budget:,} tokens", xlabel="messages in the conversation", yscale="log")
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    axes[0][0].set_ylabel("ms per pack")
    PLOT.parent.mkdir(exist_ok=True)
    figure.savefig(PLOT, dpi=120, bbox_inches="tight")
    pyplot.close(figure)


@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("budget", BUDGETS)
def test_session_loop(benchmark: BenchmarkFixture, implementation: str, budget: int) -> None:
    start = IMPLEMENTATIONS[implementation](budget)
    transcripts = [(messages, _turns(messages)) for messages in CONVERSATIONS[:TRANSCRIPTS]]
    outputs: list[list[tuple[list[Message], list[int | None] | None]]] = []
    seconds: list[float] = []

    def run() -> None:
        outputs.clear()
        seconds.clear()
        for messages, turns in transcripts:
            step, packed = start(), []
            for turn in turns:
                began = time.perf_counter()
                packed.append(step(messages, turn))
                seconds.append(time.perf_counter() - began)
            outputs.append(packed)

    benchmark.group = f"session: {len(transcripts)} largest transcripts, every assistant turn, at {budget}"
    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)

    figures = CacheFigures()
    fences = 0
    found: dict[str, int] = {}
    invalid_calls = 0
    utilisation = []
    for (messages, turns), packed in zip(transcripts, outputs, strict=True):
        figures.start()
        for turn, (out, indices) in zip(turns, packed, strict=True):
            conversation = messages[:turn]
            wrong = problems(conversation, out, budget)
            invalid_calls += bool(wrong)
            for problem in wrong:
                found[problem] = found.get(problem, 0) + 1
            if out and out[0]["role"] == "error":  # nothing was sent
                continue
            if cs.count_messages(conversation) > budget:
                utilisation.append(cs.count_messages(out) / budget)
            figures.call(conversation, out, indices)
            fences += sum(isinstance(m.get("content"), str) and m["content"].startswith(FENCE_OPEN) for m in out)
    milliseconds = [second * 1e3 for second in seconds]
    benchmark.extra_info.update(
        transcripts=len(transcripts),
        calls=len(seconds),
        invalid_calls=invalid_calls,
        problems=found,
        median_utilisation=round(statistics.median(utilisation), 3) if utilisation else None,
        **figures.summary(),
        ms_per_turn_mean=round(statistics.mean(milliseconds), 3),
        ms_per_turn_median=round(statistics.median(milliseconds), 3),
        fence_tokens_per_call=round(fences * FENCE_TOKENS / len(seconds), 1),
    )
    if implementation == "session_summaries":
        benchmark.extra_info["hook_calls_per_turn"] = round(HOOK_CALLS[budget] / len(seconds), 4)
    if implementation.startswith("session"):
        MEAN_MS[implementation, budget] = statistics.mean(milliseconds)
        if ("session", budget) in MEAN_MS and implementation == "session_summaries":
            extra = MEAN_MS[implementation, budget] - MEAN_MS["session", budget]
            benchmark.extra_info["summary_step_ms_per_turn"] = round(extra, 3)
    if implementation in PLOTTED:
        lengths = [turn for _, turns in transcripts for turn in turns]
        TIMES[implementation, budget] = list(zip(lengths, milliseconds, strict=True))
        _plot()
    if implementation in ("session", "session_summaries", "stateless"):
        assert not found, found
