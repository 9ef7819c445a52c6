"""Stores: one small interface (``get``/``put`` of text by key) for the summary cache and, later, session state.

``MemoryStore`` is a bounded LRU in this process (the default). ``SQLiteStore`` is a file on this machine
(standard library ``sqlite3``), so that summaries survive a restart and several processes share them. Keys are
namespaced by their users (``summary:...``). A store that cannot be read or written raises ``StoreError``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, runtime_checkable

from ctxsched.exceptions import StoreError

__all__ = ["MemoryStore", "SQLiteStore", "Store"]


@runtime_checkable
class Store(Protocol):
    """What ctxsched keeps between packs: text by key."""

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or ``None``."""

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing what was there."""


class MemoryStore:
    """A bounded store in this process: the least recently used entries go first past ``max_entries``."""

    def __init__(self, max_entries: int = 4096) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, not {max_entries!r}")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        """The value under ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``; past ``max_entries`` the least recently used entry goes."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class SQLiteStore:
    """A store in a SQLite file: shared by the processes of one machine, and kept across restarts.

    Raises:
        StoreError: the file cannot be opened, read or written (the message names it).
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the SQLite store {str(self.path)!r}: {error}") from error

    def get(self, key: str) -> str | None:
        """The value under ``key``, or ``None``."""
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the SQLite store {str(self.path)!r}: {error}") from error
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing what was there (committed at once)."""
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", (key, value))
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the SQLite store {str(self.path)!r}: {error}") from error

    def close(self) -> None:
        """Close the file (the store cannot be used after)."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
