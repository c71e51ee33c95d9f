"""Expectations: what a controller has asked the API to do that its informer has not yet shown.

A controller that creates N pods must not create them again before its pod informer has seen
them; otherwise a slow watch means double creates. So before writing it records "expect N adds"
(or "expect these pod keys deleted") for its object's key, informer handlers lower the counts as
the events arrive, and `sync` only manages replicas once `satisfied`. A failed write lowers the
count itself (the event will never come). Records expire after 5 minutes, so a lost event costs
one delay, never a stuck controller. Deletes are tracked by pod key, as client-go's
UIDTrackingControllerExpectations: a pod deleted twice is counted once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
EXPECTATIONS_TIMEOUT = 300.0  # seconds (client-go's ExpectationsTimeout)


@dataclass
class _Record:
    adds: int
    deletes: set[str] = field(default_factory=set)
    timestamp: float = 0.0

    def fulfilled(self) -> bool:
        return self.adds <= 0 and not self.deletes


class Expectations:
    """Per-controller-key counts; all methods are called from the event loop's thread."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.clock = clock
        self.timeout = timeout
        self._records: dict[str, _Record] = {}

    def __repr__(self) -> str:
        pending = {k: (r.adds, len(r.deletes)) for k, r in self._records.items()
                   if not r.fulfilled()}
        return f"<Expectations pending={pending}>"

    def satisfied(self, key: str) -> bool:
        """Whether `key` may act: nothing in flight, or what is in flight is too old to wait for."""
        record = self._records.get(key)
        if record is None or record.fulfilled():
            return True
        if self.clock() - record.timestamp > self.timeout:
            log.info("expectations of %s expired (adds=%d deletes=%d)", key, record.adds,
                     len(record.deletes))
            return True
        return False

    def expect_creations(self, key: str, count: int) -> None:
        self._records[key] = _Record(count, timestamp=self.clock())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._records[key] = _Record(0, set(pod_keys), timestamp=self.clock())

    def creation_observed(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.deletes.discard(pod_key)

    def delete(self, key: str) -> None:
        self._records.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """(adds, deletes) still expected for `key`."""
        record = self._records.get(key)
        return (record.adds, len(record.deletes)) if record else (0, 0)
