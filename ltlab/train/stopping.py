"""Ctrl-C and SIGTERM: ask the loop to stop at the next step boundary (the exact state is saved there).

A second Ctrl-C stops at once and keeps the last checkpoint already on disk.
"""
from __future__ import annotations

import signal
import threading
from typing import Any


class Stopped(KeyboardInterrupt):
    """A requested stop at a step boundary (the exact state is already saved)."""


class StopRequests:
    """While entered (main thread only), SIGINT and SIGTERM set `requested` instead of raising."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: list[tuple[int, Any]] = []

    def _request(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:  # second Ctrl-C: stop immediately
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "StopRequests":
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            self._previous = [(s, signal.signal(s, self._request)) for s in (signal.SIGINT, signal.SIGTERM)]
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous:
            signal.signal(sig, previous)
        self._previous = []
