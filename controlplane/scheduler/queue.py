"""The scheduling queue: active (by priority, then time), backoff, and unschedulable pods.

As Kubernetes' PriorityQueue: a pod that failed to fit waits in the unschedulable set until a
cluster event one of its rejecting plugins cares about (node added, pod deleted, ...) moves it
back — into backoff if its backoff (1 s doubling to 10 s per attempt) has not expired yet, else
into active. Events seen while a pod is being scheduled are replayed when it fails, so a change
racing with its cycle is never lost. Pods left unschedulable for 5 minutes are retried anyway.
Nothing moves without an event or a timer: an impossible pod costs no CPU. Pure except `pop`,
which waits on the event loop; the clock is injectable.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controlplane.scheduler.podinfo import PodInfo

ACTIVE, BACKOFF, UNSCHEDULABLE = "active", "backoff", "unschedulable"
MAX_UNSCHEDULABLE_SECONDS = 300.0  # podMaxInUnschedulablePodsDuration


class QueueClosed(Exception):
    """The queue was closed; the scheduling loop should return."""


@dataclass
class QueuedPod:
    pod: PodInfo
    timestamp: float  # when it last entered the queue (orders equal priorities; starts backoff)
    attempts: int = 0
    unschedulable_plugins: frozenset[str] = frozenset()
    events_in_flight: set[str] = field(default_factory=set)
    token: int = 0  # which heap entry is current (older entries are stale)

    @property
    def key(self) -> str:
        return self.pod.key


# Whether `event` may make a pod rejected by `plugins` schedulable.
Interest = Callable[[frozenset[str], str], bool]


def any_event(plugins: frozenset[str], event: str) -> bool:
    return True


class SchedulingQueue:
    def __init__(self, *, interested: Interest = any_event, initial_backoff: float = 1.0,
                 max_backoff: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interested = interested
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self._pods: dict[str, QueuedPod] = {}  # key -> queued (not in flight) pod
        self._where: dict[str, str] = {}  # key -> ACTIVE | BACKOFF | UNSCHEDULABLE
        self._unschedulable: set[str] = set()  # the UNSCHEDULABLE keys of _where (move_all)
        self._active: list[tuple[int, float, int, str]] = []  # (-priority, timestamp, token)
        self._backoff: list[tuple[float, int, str]] = []  # (expiry, token, key)
        self._parked: list[tuple[float, int, str]] = []  # unschedulable: (since, token, key)
        self._in_flight: dict[str, QueuedPod] = {}
        self._tokens = itertools.count(1)
        self._changed: asyncio.Event | None = None
        self._closed = False

    def __repr__(self) -> str:
        counts = {where: 0 for where in (ACTIVE, BACKOFF, UNSCHEDULABLE)}
        for where in self._where.values():
            counts[where] += 1
        return (f"<SchedulingQueue active={counts[ACTIVE]} backoff={counts[BACKOFF]} "
                f"unschedulable={counts[UNSCHEDULABLE]} in_flight={len(self._in_flight)}>")

    def where(self, key: str) -> str | None:
        """ACTIVE, BACKOFF, UNSCHEDULABLE, "in-flight", or None when the queue lacks the pod."""
        return "in-flight" if key in self._in_flight else self._where.get(key)

    # -- informer side --------------------------------------------------------------------------

    def add(self, pod: PodInfo) -> None:
        """A pending pod appeared (or changed while queued)."""
        if pod.key in self._in_flight:
            self._in_flight[pod.key].pod = pod
        elif pod.key in self._pods:
            self.update(pod, spec_changed=True)
        else:
            self._push_active(QueuedPod(pod, self.clock()))

    def update(self, pod: PodInfo, *, spec_changed: bool) -> None:
        """The pending pod changed; a spec change gives an unschedulable pod another try."""
        if pod.key in self._in_flight:
            self._in_flight[pod.key].pod = pod
            return
        queued = self._pods.get(pod.key)
        if queued is None:
            self.add(pod)
            return
        queued.pod = pod
        where = self._where[pod.key]
        if where == UNSCHEDULABLE and spec_changed:
            self._move(queued)
        elif where == ACTIVE:
            self._push_active(queued)  # priority may have changed

    def delete(self, key: str) -> None:
        self._pods.pop(key, None)
        self._where.pop(key, None)
        self._unschedulable.discard(key)
        self._in_flight.pop(key, None)

    def move_all(self, event: str) -> int:
        """A cluster event: move the unschedulable pods it may help; return how many moved."""
        for queued in self._in_flight.values():
            queued.events_in_flight.add(event)
        moved = 0
        for key in list(self._unschedulable):  # not every queued pod: the unschedulable ones
            queued = self._pods[key]
            if self.interested(queued.unschedulable_plugins, event):
                self._move(queued)
                moved += 1
        if moved:
            self._notify()
        return moved

    # -- scheduler side -------------------------------------------------------------------------

    def pop_ready(self) -> QueuedPod | None:
        """The next pod to schedule now, or None; it stays in flight until requeued or done."""
        self._flush()
        while self._active:
            _, _, token, key = heapq.heappop(self._active)
            queued = self._pods.get(key)
            if queued is None or queued.token != token or self._where.get(key) != ACTIVE:
                continue
            del self._pods[key], self._where[key]
            self._unschedulable.discard(key)
            queued.attempts += 1
            queued.events_in_flight = set()
            self._in_flight[key] = queued
            return queued
        return None

    async def pop(self) -> QueuedPod:
        """Wait for the next pod to schedule."""
        if self._changed is None:
            self._changed = asyncio.Event()
        while True:
            if self._closed:
                raise QueueClosed()
            queued = self.pop_ready()
            if queued is not None:
                return queued
            deadline = self.next_deadline()
            self._changed.clear()
            timeout = None if deadline is None else max(deadline - self.clock(), 0.0) + 0.001
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass

    def done(self, key: str) -> None:
        """The pod was bound (or given up on): it leaves the queue."""
        self._in_flight.pop(key, None)

    def requeue_unschedulable(self, queued: QueuedPod, plugins: set[str]) -> str:
        """The pod fitted nowhere; park it until an event may help. Returns where it went."""
        if self._in_flight.pop(queued.key, None) is None:
            return ""  # deleted while in flight
        queued.unschedulable_plugins = frozenset(plugins)
        queued.timestamp = self.clock()
        if any(self.interested(queued.unschedulable_plugins, e) for e in queued.events_in_flight):
            self._push_backoff(queued)
            return BACKOFF
        queued.token = next(self._tokens)
        self._pods[queued.key] = queued
        self._where[queued.key] = UNSCHEDULABLE
        self._unschedulable.add(queued.key)
        heapq.heappush(self._parked, (queued.timestamp, queued.token, queued.key))
        self._notify()  # the flush deadline may be earlier than the current wait
        return UNSCHEDULABLE

    def requeue_backoff(self, queued: QueuedPod) -> str:
        """The attempt failed for another reason (API error, plugin error): retry after backoff."""
        if self._in_flight.pop(queued.key, None) is None:
            return ""
        queued.timestamp = self.clock()
        self._push_backoff(queued)
        return BACKOFF

    def close(self) -> None:
        self._closed = True
        self._notify()

    # -- internals -------------------------------------------------------------------------------

    def backoff_duration(self, attempts: int) -> float:
        """podInitialBackoff doubled per attempt after the first, capped at podMaxBackoff."""
        duration = self.initial_backoff
        for _ in range(1, attempts):
            duration *= 2
            if duration >= self.max_backoff:
                return self.max_backoff
        return min(duration, self.max_backoff)

    def backoff_expiry(self, queued: QueuedPod) -> float:
        return queued.timestamp + self.backoff_duration(queued.attempts)

    def next_deadline(self) -> float | None:
        """When a backoff expires or an unschedulable pod is due for its periodic retry."""
        deadlines = [expiry for expiry, _, _ in self._backoff[:1]]
        deadlines += [since + MAX_UNSCHEDULABLE_SECONDS for since, _, _ in self._parked[:1]]
        return min(deadlines, default=None)

    def _move(self, queued: QueuedPod) -> None:
        if self.backoff_expiry(queued) > self.clock():
            self._push_backoff(queued)
        else:
            self._push_active(queued)

    def _push_active(self, queued: QueuedPod) -> None:
        queued.token = next(self._tokens)
        self._pods[queued.key] = queued
        self._where[queued.key] = ACTIVE
        self._unschedulable.discard(queued.key)
        heapq.heappush(self._active, (-queued.pod.priority, queued.timestamp, queued.token,
                                      queued.key))
        self._notify()

    def _push_backoff(self, queued: QueuedPod) -> None:
        queued.token = next(self._tokens)
        self._pods[queued.key] = queued
        self._where[queued.key] = BACKOFF
        self._unschedulable.discard(queued.key)
        heapq.heappush(self._backoff, (self.backoff_expiry(queued), queued.token, queued.key))
        self._notify()

    def _flush(self) -> None:
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, token, key = heapq.heappop(self._backoff)
            queued = self._pods.get(key)
            if queued is not None and queued.token == token and self._where[key] == BACKOFF:
                self._push_active(queued)
        while self._parked and now - self._parked[0][0] >= MAX_UNSCHEDULABLE_SECONDS:
            _, token, key = heapq.heappop(self._parked)
            queued = self._pods.get(key)
            if queued is not None and queued.token == token and self._where[key] == UNSCHEDULABLE:
                self._move(queued)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
