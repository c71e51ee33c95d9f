"""The watch cache: one storage watch per resource feeds an in-memory copy and an event window.

Lists with resourceVersion "0" (or not older than the cache), gets from the cache, and every
watch are served from here, so N clients cost one etcd watch. The cache keeps the last
`capacity` events: a watch from a resourceVersion inside that window replays what followed it;
older is 410 Expired, as in Kubernetes. After a storage failure the cache relists and restarts
its watch, ending the watches it served (clients resume from their last resourceVersion).

Objects and the window are kept as JSON bytes, not dicts: a fifth of the memory (1.3 KB
rather than 6 KB for a pod) and nothing for the garbage collector to walk. Each read decodes
what it returns, so callers get objects of their own; a live event's object is decoded once
(by the storage) and shared by every watcher it goes to, which must not change it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.api import errors
from controlplane.apiserver.storage import codec
from controlplane.apiserver.storage.interface import (
    EventType,
    Object,
    Progress,
    Storage,
    StorageError,
    WatchEvent,
)

log = logging.getLogger(__name__)
Predicate = Callable[[Object], bool]
WATCHER_QUEUE = 1000  # events a slow client may lag behind before its watch is ended


@dataclass(frozen=True)
class Event:
    """What a watcher receives: ADDED, MODIFIED, DELETED (objects) or ERROR (a Status)."""

    type: str
    object: Object


@dataclass(frozen=True, slots=True)
class _Change:
    """A change in the window: the object after it (for DELETED, its last state) and before."""

    type: EventType
    key: str
    revision: int
    value: bytes
    old: bytes | None  # the cache's copy before the change; None: there was none

    def event(self) -> tuple[WatchEvent, Object | None]:
        old = codec.loads(self.old) if self.old is not None else None
        return WatchEvent(self.type, self.key, codec.loads(self.value), self.revision, old), old


class Watcher:
    """One client's watch: the cache pushes matching events, the client iterates.

    What the watch starts with waits, however long: ADDED for every object in `initial` (as
    JSON, decoded and filtered as the client reads, so a big list costs no memory per watch),
    the replayed window in `backlog`. Live events wait in `queue`, and a client that lets
    `queue` fill has its watch ended. Iterating is cancellation-safe: a cancelled `__anext__`
    (a client's idle timeout) loses no event and does not end the watch.
    """

    def __init__(self, cache: WatchCache, key_prefix: str, predicate: Predicate,
                 after: int = 0) -> None:
        self.cache = cache
        self.key_prefix = key_prefix
        self.predicate = predicate
        self.after = after  # changes at or before this revision are not this watch's
        self.initial: deque[bytes] = deque()  # objects to send as ADDED if they match, first
        self.backlog: deque[Event] = deque()  # delivered before anything in `queue`
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(WATCHER_QUEUE)
        self.closed = False  # no more events will be queued
        self._ended = False  # the client has read the end marker

    def __repr__(self) -> str:
        return (f"<Watcher {self.key_prefix} after={self.after} backlog={len(self.backlog)} "
                f"queued={self.queue.qsize()} closed={self.closed}>")

    def translate(self, event: WatchEvent, old: Object | None) -> Event | None:
        """`event` as this watcher sees it (Kubernetes' semantics), or None: not its business.

        An object that stops matching the filter is DELETED from this view, one that starts
        matching is ADDED.
        """
        if event.revision <= self.after or not event.key.startswith(self.key_prefix):
            return None
        new_match = event.type != "DELETED" and self.predicate(event.object)
        old_match = old is not None and self.predicate(old)
        if event.type == "DELETED":
            kind = "DELETED" if old_match or self.predicate(event.object) else ""
        elif new_match:
            kind = "MODIFIED" if old_match else "ADDED"
        else:
            kind = "DELETED" if old_match else ""  # stopped matching: gone from this view
        return Event(kind, event.object) if kind else None

    def offer(self, event: WatchEvent, old: Object | None) -> None:
        """Deliver `event` (`old`: the object's state before it) if this watcher wants it."""
        if self.closed:
            return
        translated = self.translate(event, old)
        if translated is not None:
            self._put(translated)

    def _put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("watch on %s fell %d events behind; ending it", self.key_prefix,
                        WATCHER_QUEUE)
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.cache.watchers.discard(self)
            try:
                self.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass  # never drop a queued event for the marker: the reader ends once drained

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> Event:
        while self.initial:
            obj = codec.loads(self.initial.popleft())
            if self.predicate(obj):
                return Event("ADDED", obj)
        if self.backlog:
            return self.backlog.popleft()
        if self._ended or (self.closed and self.queue.empty()):
            self._ended = True
            raise StopAsyncIteration
        event = await self.queue.get()
        if event is None:
            self._ended = True
            raise StopAsyncIteration
        return event


class WatchCache:
    """The cached state of everything under `prefix` (one resource)."""

    def __init__(self, storage: Storage, prefix: str, *, capacity: int = 2000) -> None:
        self.storage = storage
        self.prefix = prefix
        self.objects: dict[str, bytes] = {}  # key -> the object's JSON, as of `revision`
        self.events: deque[_Change] = deque(maxlen=capacity)
        self.revision = 0  # every change up to here is applied
        self.window_start = 0  # a watch from a resourceVersion >= this can be served
        self.watchers: set[Watcher] = set()
        self.ready = asyncio.Event()
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (f"<WatchCache {self.prefix} objects={len(self.objects)} rev={self.revision} "
                f"watchers={len(self.watchers)}>")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"watch-cache {self.prefix}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for watcher in list(self.watchers):
            watcher.close()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                result = await self.storage.list(self.prefix)
                self._reset({o_key(self.prefix, o): codec.dumps_to_keep(o)
                             for o in result.items}, result.revision)
                await self._advance(result.revision)  # wake wait_fresh callers
                delay = 0.1
                async for item in self.storage.watch(self.prefix, result.revision):
                    if isinstance(item, Progress):
                        await self._advance(item.revision)
                    else:
                        self._apply(item)
                        await self._advance(item.revision)
            except asyncio.CancelledError:
                raise
            except (StorageError, Exception) as exc:  # noqa: BLE001 - relist after any failure
                log.warning("watch cache %s: %s; relisting in %.1fs", self.prefix, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _reset(self, objects: dict[str, bytes], revision: int) -> None:
        for watcher in list(self.watchers):  # they may have missed changes: let them resume
            watcher.close()
        self.objects = objects
        self.events.clear()
        self.revision = self.window_start = revision
        self.ready.set()

    def _apply(self, event: WatchEvent) -> None:
        old_value = self.objects.get(event.key)
        value = codec.dumps_to_keep(event.object)
        if event.type == "DELETED":
            self.objects.pop(event.key, None)
        else:
            self.objects[event.key] = value
        if len(self.events) == self.events.maxlen:
            self.window_start = self.events[0].revision
        self.events.append(_Change(event.type, event.key, event.revision, value, old_value))
        if self.watchers:
            old = codec.loads(old_value) if old_value is not None else None
            for watcher in list(self.watchers):
                watcher.offer(event, old)

    async def _advance(self, revision: int) -> None:
        self.revision = max(self.revision, revision)
        async with self._advanced:
            self._advanced.notify_all()

    async def wait_fresh(self, revision: int, timeout: float = 3.0) -> None:
        """Wait until the cache has applied `revision` (504 Timeout after `timeout`)."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=30)
        except TimeoutError:
            raise errors.Timeout(f"the watch cache of {self.prefix} is not ready yet",
                                 retry_after=1) from None
        if self.revision >= revision:
            return
        try:
            async with self._advanced:
                await asyncio.wait_for(
                    self._advanced.wait_for(lambda: self.revision >= revision), timeout)
        except TimeoutError:
            raise errors.Timeout(
                f"Too large resource version: {revision}, current: {self.revision}",
                retry_after=1) from None

    def list(self, key_prefix: str, predicate: Predicate) -> tuple[list[Object], int]:
        """Matching objects under `key_prefix`, sorted by key, and the cache's revision."""
        items = [o for k, v in sorted(self.objects.items()) if k.startswith(key_prefix)
                 for o in (codec.loads(v),) if predicate(o)]
        return items, self.revision

    def get(self, key: str) -> Object | None:
        value = self.objects.get(key)
        return codec.loads(value) if value is not None else None

    def watch(self, revision: int, key_prefix: str, predicate: Predicate) -> Watcher:
        """Start a watch after `revision` (0: ADDED for every current object first).

        A `revision` older than the window is 410 Expired; a newer one than the cache has
        seen gets the changes after it once they arrive.
        """
        watcher = Watcher(self, key_prefix, predicate, after=revision)
        if revision == 0:
            watcher.initial.extend(v for k, v in sorted(self.objects.items())
                                   if k.startswith(key_prefix))
        else:
            if revision < self.window_start:
                raise errors.Expired(
                    f"too old resource version: {revision} ({self.window_start})")
            for change in self.events:
                if change.revision <= revision or not change.key.startswith(key_prefix):
                    continue
                translated = watcher.translate(*change.event())
                if translated is not None:
                    watcher.backlog.append(translated)
        self.watchers.add(watcher)
        return watcher


def o_key(prefix: str, obj: Object) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{prefix}{namespace}/{meta['name']}" if namespace else f"{prefix}{meta['name']}"
