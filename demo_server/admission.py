"""Admission control for costly work: a few slots, a short bounded queue, then "come back later".

Decoding a large upload can take hundreds of megabytes and most of a second of CPU (within the
decode budget of `contract.images`). Those decodes share `slots`; a request waits at most
`wait_s` for one, and when `max_waiting` requests already wait, it is told at once to come back
(503 with Retry-After) instead of joining an unbounded queue. Light work (an ordinary photo)
never waits behind heavy work.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Full(Exception):
    """No slot came free in time, or too many requests wait already."""


class Slots:
    """`size` concurrent holders at most; `max_waiting` waiters at most, each for `wait_s`."""

    def __init__(self, size: int, max_waiting: int, wait_s: float) -> None:
        if size < 1 or max_waiting < 0 or wait_s < 0:
            raise ValueError("need at least one slot and non-negative waiting limits")
        self.size = size
        self.max_waiting = max_waiting
        self.wait_s = wait_s
        self._free = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold one slot for the block; raises `Full` instead of queueing without bound."""
        if not self._free.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.max_waiting:
                    raise Full()
                self._waiting += 1
            try:
                acquired = self._free.acquire(timeout=self.wait_s)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not acquired:
                raise Full()
        try:
            yield
        finally:
            self._free.release()
