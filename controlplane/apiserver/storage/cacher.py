"""The watch cache: one storage watch per resource feeds an in-memory copy and an event window.

Lists with resourceVersion "0" (or not older than the cache), gets from the cache, and every
watch are served from here, so N clients cost one etcd watch. The cache keeps the last
`capacity` events: a watch from a resourceVersion inside that window replays what followed it;
older is 410 Expired, as in Kubernetes. After a storage failure the cache relists and restarts
its watch, ending the watches it served (clients resume from their last resourceVersion).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from controlplane.api import errors
from controlplane.apiserver.storage.interface import (
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


class Watcher:
    """One client's watch: the cache pushes matching events, the client iterates."""

    def __init__(self, cache: WatchCache, key_prefix: str, predicate: Predicate) -> None:
        self.cache = cache
        self.key_prefix = key_prefix
        self.predicate = predicate
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(WATCHER_QUEUE)
        self.closed = False

    def offer(self, event: WatchEvent, old: Object | None) -> None:
        """Deliver `event` translated for this watcher's filter (Kubernetes' semantics)."""
        if self.closed or not event.key.startswith(self.key_prefix):
            return
        new_match = event.type != "DELETED" and self.predicate(event.object)
        old_match = old is not None and self.predicate(old)
        if event.type == "DELETED":
            kind = "DELETED" if old_match or self.predicate(event.object) else ""
        elif new_match:
            kind = "MODIFIED" if old_match else "ADDED"
        else:
            kind = "DELETED" if old_match else ""  # stopped matching: gone from this view
        if kind:
            self._put(Event(kind, event.object))

    def _put(self, event: Event | None) -> None:
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
            while True:  # make room for the end marker
                try:
                    self.queue.put_nowait(None)
                    break
                except asyncio.QueueFull:
                    self.queue.get_nowait()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event


class WatchCache:
    """The cached state of everything under `prefix` (one resource)."""

    def __init__(self, storage: Storage, prefix: str, *, capacity: int = 2000) -> None:
        self.storage = storage
        self.prefix = prefix
        self.objects: dict[str, Object] = {}  # key -> object, as of `revision`
        self.events: deque[WatchEvent] = deque(maxlen=capacity)
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
                self._reset({o_key(self.prefix, o): o for o in result.items}, result.revision)
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

    def _reset(self, objects: dict[str, Object], revision: int) -> None:
        for watcher in list(self.watchers):  # they may have missed changes: let them resume
            watcher.close()
        self.objects = objects
        self.events.clear()
        self.revision = self.window_start = revision
        self.ready.set()

    def _apply(self, event: WatchEvent) -> None:
        old = self.objects.get(event.key)
        if event.type == "DELETED":
            self.objects.pop(event.key, None)
        else:
            self.objects[event.key] = event.object
        if len(self.events) == self.events.maxlen:
            self.window_start = self.events[0].revision
        self.events.append(event)
        for watcher in list(self.watchers):
            watcher.offer(event, old)

    async def _advance(self, revision: int) -> None:
        self.revision = max(self.revision, revision)
        async with self._advanced:
            self._advanced.notify_all()

    async def wait_fresh(self, revision: int, timeout: float = 3.0) -> None:
        """Wait until the cache has applied `revision` (504 Timeout after `timeout`)."""
        await asyncio.wait_for(self.ready.wait(), timeout=30)
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
        items = [o for k, o in sorted(self.objects.items())
                 if k.startswith(key_prefix) and predicate(o)]
        return items, self.revision

    def get(self, key: str) -> Object | None:
        return self.objects.get(key)

    def watch(self, revision: int, key_prefix: str, predicate: Predicate) -> Watcher:
        """Start a watch after `revision` (0: ADDED for every current object first)."""
        watcher = Watcher(self, key_prefix, predicate)
        if revision == 0:
            for key, obj in sorted(self.objects.items()):
                if key.startswith(key_prefix) and predicate(obj):
                    watcher._put(Event("ADDED", obj))
        else:
            if revision < self.window_start:
                raise errors.Expired(
                    f"too old resource version: {revision} ({self.window_start})")
            for event in self.events:
                if event.revision > revision:
                    watcher.offer(event, _before(self.events, event))
        self.watchers.add(watcher)
        return watcher


def o_key(prefix: str, obj: Object) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{prefix}{namespace}/{meta['name']}" if namespace else f"{prefix}{meta['name']}"


def _before(events: deque[WatchEvent], event: WatchEvent) -> Object | None:
    """The state of `event.key` just before `event`, as far as the window knows."""
    if event.prev_object is not None:
        return event.prev_object
    previous = None
    for e in events:
        if e is event:
            return previous
        if e.key == event.key:
            previous = None if e.type == "DELETED" else e.object
    return previous
