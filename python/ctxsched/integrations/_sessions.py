"""What every framework integration makes its sessions from: the budget, policy, hook, store and encoding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ctxsched.hooks import Summarizer
from ctxsched.policy import Policy
from ctxsched.session import Session
from ctxsched.stores import Store


@dataclass(frozen=True)
class SessionRecipe:
    """The arguments of the sessions an integration makes; checked when it is made, not at the first call."""

    budget: int
    policy: Policy | Mapping[str, Any] | None = None
    summarizer: Summarizer | None = None
    store: Store | None = None
    encoding: str = "o200k_base"
    format: str = "openai"

    def __post_init__(self) -> None:
        Session(self.budget, self.encoding, self.policy, self.format)

    def session(self, tools: Sequence[Any] | None = None) -> Session:
        """A new session, with these tool definitions counted."""
        return Session(
            self.budget, self.encoding, self.policy, self.format, tools or None, summarizer=self.summarizer,
            store=self.store,
        )  # fmt: skip
