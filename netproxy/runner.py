"""A bounded-frequency runner (kube-proxy's async.BoundedFrequencyRunner) on asyncio.

`run()` asks for a call of `fn`; calls happen at most once per `min_interval` (a burst of
requests coalesces into one call), at least once per `max_interval` (the periodic resync), and
`retry_after(d)` schedules an earlier call after a failure. One call at a time: a request that
arrives during a call runs after it (respecting `min_interval`). `fn` raising is logged and does
not stop the loop. The clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class BoundedFrequencyRunner:
    """Calls `fn` on request, rate-limited and with a periodic floor. Owned by one task."""

    def __init__(self, name: str, fn: Callable[[], Awaitable[None]], *, min_interval: float,
                 max_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.clock = clock
        self.runs = 0
        self._requested = False
        self._retry_at: float | None = None
        self._last: float | None = None  # when the last call started
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return (f"<BoundedFrequencyRunner {self.name} runs={self.runs} "
                f"requested={self._requested} retry_at={self._retry_at}>")

    def run(self) -> None:
        """Request a call as soon as `min_interval` allows."""
        self._requested = True
        self._wake.set()

    def retry_after(self, delay: float) -> None:
        """Request a call in `delay` seconds (sooner requests still win)."""
        at = self.clock() + delay
        self._retry_at = at if self._retry_at is None else min(self._retry_at, at)
        self._wake.set()

    def next_run(self) -> float:
        """When the next call is due (clock time); the state machine's only decision."""
        if self._last is None:
            return self.clock()
        due = self._last + self.max_interval
        if self._requested:
            due = min(due, self._last + self.min_interval)
        if self._retry_at is not None:
            due = min(due, max(self._retry_at, self._last + self.min_interval))
        return due

    async def loop(self) -> None:
        """Run forever (cancel the task to stop)."""
        while True:
            wait = self.next_run() - self.clock()
            if wait > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            self._requested = False
            self._retry_at = None
            self._last = self.clock()
            self.runs += 1
            try:
                await self.fn()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the runner outlives any one failure
                log.exception("%s: run failed", self.name)
