"""Summarisation hooks: run between the Rust core's two phases, memoised, and safe when they fail.

The core plans the runs of evicted segments and the tokens each summary may take (``plan_summaries``); here
each run's hook is called (or its summary found in the cache), checked, and turned into a ``summary``
segment, or into a recorded failure; the core then packs again with the summaries in place
(``pack_summarised``). A hook is never called from inside Rust.

A summary is cached under the hash of its inputs' texts (the core's), its target size and the hook's identity
(``hook.__ctxsched_id__`` if set, else its module and qualified name), so packing the same history again never
calls the hook again for a run it has summarised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from ctxsched._core import Segment
from ctxsched.exceptions import SummaryError
from ctxsched.policy import Summaries
from ctxsched.stores import Store

__all__ = ["Summarizer", "SummaryStep", "hook_name"]

#: ``(segments, max_tokens) -> str``, or an ``async def`` returning one.
Summarizer: TypeAlias = Callable[[list[Segment], int], "str | Awaitable[str]"]

#: A planned run, as the core gives it: (the hook's inputs, tokens its summary may take, the core's key of the
#: inputs, the summary's depth).
Run: TypeAlias = tuple[list[Segment], int, str, int]

#: What the core's second phase takes per run key: (the summary's text, or ``None`` and what went wrong).
Outcome: TypeAlias = tuple[str | None, str | None]


def hook_name(hook: Callable[..., Any]) -> str:
    """The hook's identity, part of every cache key: ``__ctxsched_id__``, else module and qualified name."""
    given = getattr(hook, "__ctxsched_id__", None)
    if isinstance(given, str) and given:
        return given
    return f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', type(hook).__qualname__)}"


class SummaryStep:
    """Runs one hook over a pack's planned runs: from the cache, sync, or async with a concurrency limit."""

    def __init__(self, hook: Summarizer, policy: Summaries, cache: Store, count: Callable[[str], int]) -> None:
        if not callable(hook):
            raise TypeError(f"summarizer must be callable, not {type(hook).__name__}")
        self.hook = hook
        self.name = hook_name(hook)
        self.is_async = inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
            getattr(hook, "__call__", None)  # noqa: B004 - an async __call__ makes an async hook too
        )
        self.policy = policy
        self.cache = cache
        self.count = count

    def arguments(self, kinds: Sequence[str]) -> tuple[set[str], float | int, bool, int, str, bool]:
        """What the core's summary step takes: kinds, room, merge, input budget, hook name, cut on failure."""
        policy = self.policy
        return set(kinds), policy.budget, policy.merge, policy.input_tokens, self.name, policy.truncates

    def run(self, runs: Sequence[Run]) -> dict[str, Outcome]:
        """Each run's outcome by its key, calling a sync hook in this thread (an async one in a new event loop)."""
        if self.is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.arun(runs))
            raise TypeError(
                f"summarizer {self.name} is async: from a running event loop use Scheduler.apack or Session.apack"
            )
        return {key: self._outcome(inputs, limit, key) for inputs, limit, key, _ in runs}

    async def arun(self, runs: Sequence[Run]) -> dict[str, Outcome]:
        """Each run's outcome by its key, the hook calls running concurrently (at most ``concurrency`` at once)."""
        limit = asyncio.Semaphore(self.policy.concurrency)

        async def one(inputs: list[Segment], max_tokens: int, texts: str) -> Outcome:
            key = self._key(max_tokens, texts)
            cached = self.cache.get(key)
            if cached is not None:
                return (cached, None)
            async with limit:
                try:
                    value = await asyncio.wait_for(self._call_async(inputs, max_tokens), self.policy.timeout)
                except TimeoutError:
                    return self._failed(inputs, f"timed out after {self.policy.timeout:g} s")
                except Exception as error:  # a hook's failure falls back; KeyboardInterrupt etc. do not
                    return self._failed(inputs, f"raised {type(error).__name__}: {error}")
            return self._checked(inputs, max_tokens, key, value)

        results = await asyncio.gather(*(one(inputs, limit_, key) for inputs, limit_, key, _ in runs))
        return {key: result for (_, _, key, _), result in zip(runs, results, strict=True)}

    def _call_sync(self, inputs: list[Segment], max_tokens: int) -> Any:
        if self.policy.timeout is None:
            return self.hook(inputs, max_tokens)
        # A thread lets a slow hook be abandoned at its timeout (it cannot be stopped: it finishes unseen).
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctxsched-summary")
        try:
            return pool.submit(self.hook, inputs, max_tokens).result(timeout=self.policy.timeout)
        finally:
            pool.shutdown(wait=False)

    async def _call_async(self, inputs: list[Segment], max_tokens: int) -> Any:
        if self.is_async:
            return await self.hook(inputs, max_tokens)  # type: ignore[misc]
        return await asyncio.to_thread(self.hook, inputs, max_tokens)

    def _outcome(self, inputs: list[Segment], max_tokens: int, texts: str) -> Outcome:
        key = self._key(max_tokens, texts)
        cached = self.cache.get(key)
        if cached is not None:
            return (cached, None)
        try:
            value = self._call_sync(inputs, max_tokens)
        except concurrent.futures.TimeoutError:
            return self._failed(inputs, f"timed out after {self.policy.timeout:g} s")
        except Exception as error:  # a hook's failure falls back; KeyboardInterrupt and SystemExit do not
            return self._failed(inputs, f"raised {type(error).__name__}: {error}")
        return self._checked(inputs, max_tokens, key, value)

    def _checked(self, inputs: list[Segment], max_tokens: int, key: str, value: Any) -> Outcome:
        if not isinstance(value, str):
            return self._failed(inputs, f"returned {type(value).__name__}, not str")
        if not value.strip():
            return self._failed(inputs, "returned an empty summary")
        tokens = self.count(value)
        if tokens > max_tokens:
            return self._failed(inputs, f"returned {tokens} tokens, above its target of {max_tokens}")
        self.cache.put(key, value)
        return (value, None)

    def _failed(self, inputs: list[Segment], problem: str) -> Outcome:
        if self.policy.strict:
            ids = [segment.id for segment in inputs]
            raise SummaryError(f"summarizer {self.name} {problem} (summarising {ids})")
        instead = "a cut of the run's own text" if self.policy.truncates else "the run left evicted"
        return (None, f"summarizer {self.name} {problem}; {instead} instead")

    def _key(self, max_tokens: int, texts: str) -> str:
        """The cache key: the hook's identity, the target size and the core's key of the run's inputs."""
        digest = hashlib.sha256(f"{self.name}\0{max_tokens}\0{texts}".encode())
        return f"summary:{digest.hexdigest()}"
