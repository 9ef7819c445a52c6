"""``Session`` under random appends and packs (hypothesis, stateful): after every pack each invariant holds, and
within an epoch the new prompt starts with the previous prompt, exactly."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import ctxsched as cs
from ctxsched.formats import chat
from tests.packing import words
from tests.session_checks import (
    DEFAULT_MARKS,
    TOOLS,
    Message,
    Previous,
    check_cache,
    check_prompt,
    is_system,
    snapshot,
    with_watermarks,
)

# --- 1. the stateful test ---------------------------------------------------------------------------------

sizes = st.one_of(st.integers(1, 40), st.integers(40, 400), st.integers(400, 2000))
result_sizes = st.one_of(sizes, st.integers(2000, 6000))
marks = st.sampled_from([None, (1.0, 0.8, 0.1), (0.9, 0.6, 0.1), (0.7, 0.5, 0.3)])


class SessionMachine(RuleBasedStateMachine):
    """A conversation grown at random and packed at random points, every pack checked."""

    def __init__(self) -> None:
        super().__init__()
        # Counts are memoised per packer, across sessions: start cold, so that the twin of the teardown (warm)
        # checks that what is sent does not depend on what the process packed before.
        chat._PACKERS.clear()
        self.conversation: list[Message] = []
        self.steps: list[tuple[str, list[Message], bool]] = []  # ("add", messages, one_by_one) or ("pack", ...)
        self.packs: list[tuple[Any, ...]] = []
        self.previous = Previous()
        self.turns = 0

    @initialize(
        budget=st.integers(300, 3000),
        watermarks=marks,
        with_tools=st.booleans(),
        system=st.none() | st.integers(1, 40),
        task=st.integers(1, 60),
    )
    def start(
        self, budget: int, watermarks: tuple[float, float, float] | None, with_tools: bool, system: int | None,
        task: int,
    ) -> None:  # fmt: skip
        self.budget = budget
        self.tools = TOOLS if with_tools else None
        self.high, self.low = (DEFAULT_MARKS.high, DEFAULT_MARKS.low) if watermarks is None else watermarks[:2]
        policy = None
        if watermarks is not None:
            high, low, recent = watermarks
            policy = with_watermarks(high, low, recent)
        self.policy = policy
        self.session = self.new_session()
        first = [] if system is None else [self.message("system", system)]
        self.add([*first, self.message("user", task)], one_by_one=False)

    def new_session(self) -> cs.Session:
        return cs.Session(self.budget, policy=self.policy, tools=self.tools)

    def checked(self, packed: cs.PackedMessages) -> None:
        """More checks of a pack, for machines built on this one."""

    def message(self, role: str, tokens: int) -> Message:
        # A tag makes every message distinct, so that list comparisons are comparisons of positions.
        return {"role": role, "content": f"m{len(self.conversation)}-{self.turns}: {words(tokens)}"}

    def add(self, messages: list[Message], one_by_one: bool) -> None:
        pending = self.session.pending
        if one_by_one:
            for message in messages:
                self.session.append(message)
        else:
            self.session.extend(iter(messages))
        self.conversation.extend(messages)
        self.steps.append(("add", messages, one_by_one))
        assert len(self.session) == len(self.conversation)
        assert self.session.pending == pending + len(messages)

    @rule(tokens=sizes)
    def user(self, tokens: int) -> None:
        self.add([self.message("user", tokens)], one_by_one=True)

    @rule(tokens=sizes, name=st.booleans())
    def assistant(self, tokens: int, name: bool) -> None:
        message = self.message("assistant", tokens)
        if name:
            message["name"] = "helper"
        self.add([message], one_by_one=False)

    @rule(
        results=st.lists(result_sizes, min_size=1, max_size=3),
        text=st.none() | st.integers(1, 60),
        reuse_ids=st.booleans(),
        one_by_one=st.booleans(),
    )
    def tool_turn(self, results: list[int], text: int | None, reuse_ids: bool, one_by_one: bool) -> None:
        self.turns += 1
        ids = [f"call_{n + 1}" if reuse_ids else f"t{self.turns}_{n}" for n in range(len(results))]
        names = ["bash", "read_file", "search"]
        calls = [
            {"id": call_id, "type": "function", "function": {
                "name": names[n], "arguments": json.dumps({"cmd": f"step {self.turns}.{n}"})}}
            for n, call_id in enumerate(ids)
        ]  # fmt: skip
        assistant = self.message("assistant", text) if text is not None else {"role": "assistant", "content": None}
        assistant["tool_calls"] = calls
        batch = [assistant]
        for call_id, tokens in zip(ids, results, strict=True):
            batch.append({"role": "tool", "tool_call_id": call_id, "content": f"r{self.turns}: {words(tokens)}"})
        self.add(batch, one_by_one)

    @rule(tokens=st.integers(1, 30), role=st.sampled_from(["system", "developer"]))
    def system(self, tokens: int, role: str) -> None:
        if sum(1 for m in self.conversation if is_system(m)) < 3:  # occasionally: three at most
            self.add([self.message(role, tokens)], one_by_one=True)

    @rule()
    def pack(self) -> None:
        packed = self.session.pack()
        check_prompt(self.conversation, packed, self.budget, self.tools)
        check_cache(self.conversation, packed, self.previous, self.tools, self.high, self.budget, self.low)
        assert self.session.epoch == packed.cache.epoch
        assert self.session.pending == 0
        self.checked(packed)
        self.steps.append(("pack", [], False))
        self.packs.append(snapshot(packed))
        event(f"pack: {packed.cache.reason}")
        if packed.stubbed:
            event("pack: a stub")

    @invariant()
    def sizes_agree(self) -> None:
        if hasattr(self, "session"):
            assert len(self.session) == len(self.conversation)

    def teardown(self) -> None:
        """Determinism: a second session fed the same messages (the other way: appended one by one where the
        first had one ``extend``, and the reverse), packed at the same points, sends the same prompts."""
        if not hasattr(self, "session"):
            return
        if self.session.pending or not self.packs:
            self.pack()
        twin = self.new_session()
        packs = iter(self.packs)
        for step, messages, one_by_one in self.steps:
            if step == "add":
                messages = copy.deepcopy(messages)
                if one_by_one:
                    twin.extend(messages)
                else:
                    for message in messages:
                        twin.append(message)
            else:
                assert snapshot(twin.pack()) == next(packs)


_profile = settings()
TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(
    _profile, max_examples=max(10, _profile.max_examples // 3), stateful_step_count=40
)
