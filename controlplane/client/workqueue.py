"""A work queue of keys, as client-go's: fair, deduplicated, never one key in two workers.

- Stingy: a key added twice before a worker takes it is processed once.
- Safe: a key being processed is not handed to another worker; added again meanwhile, it is
  processed once more after `done`.
- Rate limited: `add_rate_limited` delays a key by its own exponential backoff (5 ms doubling
  to 1000 s, client-go's defaults); `forget` resets it after a success.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 1000.0,
                 clock: Callable[[], float] | None = None) -> None:
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # waiting to be processed
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Condition()
        self._shutdown = False
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __repr__(self) -> str:
        return (f"<WorkQueue queued={len(self._queue)} processing={len(self._processing)} "
                f"delayed={len(self._timers)}>")

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._wakeup:
            self._wakeup.notify()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None and existing.when() <= loop.time() + delay:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self.base_delay * (2 ** failures), self.max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        """Wait for a key; raise ShutDown once the queue is shut down."""
        async with self._wakeup:
            while not self._queue:
                if self._shutdown:
                    raise ShutDown()
                await self._wakeup.wait()
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            asyncio.get_running_loop().create_task(self._notify())

    async def shut_down(self) -> None:
        self._shutdown = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        async with self._wakeup:
            self._wakeup.notify_all()
