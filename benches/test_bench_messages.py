"""Chat packing on real transcripts: ctxsched's ``pack_messages`` against LangChain's ``trim_messages``,
priompt, tokentrim and LlamaIndex's ``ChatMemoryBuffer``.

One-shot: the 40 largest transcripts, each packed once, reported twice: cold (a fresh interpreter that has never
seen them, ``benches/cold_pack.py``) and warm (the same pass again in this process). Agent loop: the 40 largest,
packed before every assistant turn (what an agent does), ctxsched beside LangChain (the slower peers run it on
the 5 largest). Tools: a 40-tool schema list counted by the cookbook recipe, against the recipe computed with
tiktoken. All at 8k and 32k tokens, everything counted by the same formula
(OpenAI's recipe, computed with tiktoken for the peers). Each row records, besides time, how many outputs
were invalid (over budget, a tool result without its call, a call without its results, the task or the
system prompt dropped) and the median budget utilisation on conversations larger than the budget.
Peers are skipped when not installed (``pip install '.[bench]'``); a peer that raises on a conversation
counts it as invalid ("raised ...").
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import ctxsched as cs
from benches.conftest import TRANSCRIPTS
from ctxsched import replay
from ctxsched.formats import chat, tool_tokens
from tests.reference import rank_file, reference, reference_tools

BUDGETS = [8_000, 32_000]


def _conversations() -> list[list[dict[str, Any]]]:
    if TRANSCRIPTS.exists():
        with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8") as lines:
            conversations = [json.loads(line)["messages"] for line in lines]
    else:  # a generated stand-in: long tool-using sessions
        conversations = []
        for seed in range(60):
            messages: list[dict[str, Any]] = [{"role": "system", "content": "You are an agent. " * 50},
                                              {"role": "user", "content": f"Task {seed}: fix the build."}]  # fmt: skip
            for turn in range(20 + seed):
                call = {"id": f"c{turn}", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
                output = "log line\n" * (50 * (turn % 7 + 1))
                messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": f"c{turn}", "content": output}]  # fmt: skip
            conversations.append(messages)
    return sorted(conversations, key=cs.count_messages, reverse=True)


CONVERSATIONS = _conversations()


def problems(original: list[dict[str, Any]], out: list[dict[str, Any]], budget: int) -> list[str]:
    """What is wrong with a packed conversation, by the issue's definition of invalid (``ctxsched.replay``'s)."""
    if out and out[0]["role"] == "error":
        return [out[0]["content"]]
    return replay.problems(original, out, budget, cs.count_messages(out))


def _ctxsched() -> Callable[[list[dict[str, Any]], int], list[dict[str, Any]]]:
    chat._PACKERS.clear()  # each run starts with no counts remembered from an earlier one
    return lambda messages, budget: cs.pack_messages(messages, budget).messages


def _langchain() -> Callable[[list[dict[str, Any]], int], list[dict[str, Any]]]:
    core = pytest.importorskip("langchain_core.messages")
    encode = reference("o200k_base").encode_ordinary

    def count(batch: list[Any]) -> int:  # the same formula, with tiktoken, as a LangChain user would write it
        total = 3
        for message in core.convert_to_openai_messages(batch):
            content = message.get("content") or ""
            total += 3 + len(encode(message["role"])) + len(encode(content if isinstance(content, str) else ""))
            for call in message.get("tool_calls") or []:
                total += 3 + len(encode(call["function"]["name"])) + len(encode(call["function"]["arguments"]))
        return total

    def trim(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        kept = core.trim_messages(
            core.convert_to_messages(messages), max_tokens=budget, token_counter=count,
            strategy="last", include_system=True, start_on="human", allow_partial=False,
        )  # fmt: skip
        return core.convert_to_openai_messages(kept)  # type: ignore[no-any-return]

    return trim


def _offline_tiktoken() -> None:
    """Give tiktoken its offline cache (each rank file under the sha1 of its download URL), rebuilt from our
    vocabulary, for peers that call ``tiktoken.get_encoding()``: nothing is downloaded."""
    folder = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", tempfile.mkdtemp(prefix="tiktoken-")))
    for encoding in ("o200k_base", "cl100k_base"):
        url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
        (folder / hashlib.sha1(url.encode()).hexdigest()).write_bytes(rank_file(encoding))


def _priompt() -> Callable[[list[dict[str, Any]], int], list[dict[str, Any]]]:
    priompt = pytest.importorskip("priompt")
    _offline_tiktoken()
    tokenizer = priompt.O200KTokenizer()

    def element(message: dict[str, Any]) -> Any:
        content = message.get("content") or ""
        if message["role"] == "system":
            return priompt.SystemMessage(content)
        if message["role"] == "user":
            return priompt.UserMessage(content)
        if message["role"] == "tool":
            return priompt.ToolResultMessage(content, name="tool", to=message["tool_call_id"])
        return priompt.AssistantMessage(content, tool_calls=message.get("tool_calls"))

    def render(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        # priompt's idiom: priorities by recency (the system prompt highest), a tool call and its results in
        # one scope so that they go together.
        scopes: list[Any] = []
        for position, message in enumerate(messages):
            if message["role"] == "tool" and scopes:
                scopes[-1][1].append(element(message))
            else:
                scopes.append((len(messages) * 2 if message["role"] == "system" else position, [element(message)]))
        prompt = priompt.Scope(*(priompt.Scope(*children, p=priority) for priority, children in scopes))
        out = priompt.render(prompt, {"token_limit": budget, "tokenizer": tokenizer})["prompt"]["messages"]
        for message in out:
            if message["role"] == "tool":
                message["tool_call_id"] = message.pop("to")
                message.pop("name", None)
        return out  # type: ignore[no-any-return]

    return render


def _tokentrim() -> Callable[[list[dict[str, Any]], int], list[dict[str, Any]]]:
    tokentrim = pytest.importorskip("tokentrim")
    _offline_tiktoken()  # tokentrim falls back to cl100k_base

    def trim(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        rest = copy.deepcopy([m for m in messages if m["role"] != "system"])  # tokentrim edits messages in place
        try:
            kept = tokentrim.trim(rest, model="gpt-4o", system_message=system, max_tokens=budget)
        except Exception as error:
            return [{"role": "error", "content": f"raised {type(error).__name__}"}]
        return kept  # type: ignore[no-any-return]

    return trim


def _llamaindex() -> Callable[[list[dict[str, Any]], int], list[dict[str, Any]]]:
    llms = pytest.importorskip("llama_index.core.llms")
    memory = pytest.importorskip("llama_index.core.memory")
    encode = reference("o200k_base").encode_ordinary  # its tokenizer_fn, so that it downloads nothing

    def trim(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        history = []
        for message in messages:
            extra = {key: message[key] for key in ("tool_calls", "tool_call_id") if key in message}
            history.append(
                llms.ChatMessage(role=message["role"], content=message.get("content"), additional_kwargs=extra)
            )
        buffer = memory.ChatMemoryBuffer.from_defaults(chat_history=history, token_limit=budget, tokenizer_fn=encode)
        return [
            {"role": str(kept.role.value), "content": kept.content, **kept.additional_kwargs} for kept in buffer.get()
        ]

    return trim


PEERS = {
    "ctxsched": _ctxsched,
    "langchain": _langchain,
    "priompt": _priompt,
    "tokentrim": _tokentrim,
    "llamaindex": _llamaindex,
}


def _run(
    implementation: str,
    cases: list[tuple[list[dict[str, Any]], int]],
    benchmark: BenchmarkFixture,
    pack: Callable[[list[dict[str, Any]], int], list[dict[str, Any]]],
) -> None:
    outputs: list[list[dict[str, Any]]] = []

    def run() -> None:
        outputs.clear()
        outputs.extend(pack(messages, budget) for messages, budget in cases)

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    invalid: dict[str, int] = {}
    utilisation = []
    for (messages, budget), out in zip(cases, outputs, strict=True):
        for problem in problems(messages, out, budget):
            invalid[problem] = invalid.get(problem, 0) + 1
        if cs.count_messages(messages) > budget and not (out and out[0]["role"] == "error"):
            utilisation.append(cs.count_messages(out) / budget)
    benchmark.extra_info.update(
        packs=len(cases),
        invalid_outputs=sum(1 for (m, b), out in zip(cases, outputs, strict=True) if problems(m, out, b)),
        problems=invalid,
        median_utilisation=round(statistics.median(utilisation), 3) if utilisation else None,
    )
    if implementation == "ctxsched":
        assert not invalid, invalid


def _cold_seconds(implementation: str, budget: int, count: int) -> float:
    """One pass in a fresh interpreter (``benches/cold_pack.py``)."""
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "benches.cold_pack", implementation, str(budget), str(count)]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True, timeout=1800)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


@pytest.mark.parametrize("implementation", list(PEERS))
@pytest.mark.parametrize("budget", BUDGETS)
def test_one_shot(benchmark: BenchmarkFixture, implementation: str, budget: int) -> None:
    cases = [(messages, budget) for messages in CONVERSATIONS[:40]]
    benchmark.group = f"messages one-shot: 40 largest transcripts at {budget}"
    cold = _cold_seconds(implementation, budget, 40)
    pack = PEERS[implementation]()
    for messages, budget_ in cases:  # the warm-up pass: what an agent loop has seen before
        pack(messages, budget_)
    _run(implementation, cases, benchmark, pack)
    benchmark.extra_info["cold_seconds"] = round(cold, 4)


LOOP_PEERS = {"ctxsched": 40, "langchain": 40, "priompt": 5, "tokentrim": 5, "llamaindex": 5}


@pytest.mark.parametrize("implementation", list(PEERS))
@pytest.mark.parametrize("budget", BUDGETS)
def test_agent_loop(benchmark: BenchmarkFixture, implementation: str, budget: int) -> None:
    largest = LOOP_PEERS[implementation]
    cases = [
        (messages[:turn], budget)
        for messages in CONVERSATIONS[:largest]
        for turn in range(1, len(messages))
        if messages[turn]["role"] == "assistant" and any(m["role"] == "user" for m in messages[:turn])
    ]
    benchmark.group = f"messages agent loop: {largest} largest transcripts, every assistant turn, at {budget}"
    _run(implementation, cases, benchmark, PEERS[implementation]())


def tool_list(count: int = 40) -> list[dict[str, Any]]:
    """A realistic schema list: descriptions, typed properties, enums."""
    tools = []
    for number in range(count):
        properties = {
            f"arg_{key}": {"type": ["string", "integer", "boolean"][key % 3],
                           "description": f"Argument {key} of tool {number}: what it selects and how."}
            for key in range(number % 6 + 1)
        }  # fmt: skip
        properties["mode"] = {"type": "string", "enum": ["fast", "careful", "dry_run"], "description": "How to run."}
        tools.append({"type": "function", "function": {
            "name": f"tool_{number}", "description": f"Tool number {number}: does one thing well, with care.",
            "parameters": {"type": "object", "properties": properties, "required": ["mode"]}}})  # fmt: skip
    return tools


@pytest.mark.parametrize("implementation", ["ctxsched", "tiktoken"])
def test_tools(benchmark: BenchmarkFixture, implementation: str) -> None:
    tools = tool_list()
    benchmark.group = "tools: 40 function definitions counted by the cookbook recipe"
    if implementation == "ctxsched":
        tokenizer = cs.Tokenizer("o200k_base")
        count = benchmark(lambda: tool_tokens(tools, tokenizer)[0])
    else:
        count = benchmark(lambda: reference_tools(tools))
    assert count == reference_tools(tools)
    benchmark.extra_info["tokens"] = count
