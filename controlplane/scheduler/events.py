"""Events about pods (core/v1), written in the background and deduplicated like client-go's.

`record()` never blocks and never raises: events go through a bounded queue to one writer task.
A repeat of the same event (object, type, reason, message) within the cache's memory PATCHes
the existing Event's count and lastTimestamp, so `kubectl describe` shows "(x3 over 20s)"; a
token bucket per object (burst 25, one more every 5 minutes, client-go's spam filter) stops a
flapping pod from flooding etcd.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from controlplane.api import errors

log = logging.getLogger(__name__)
Object = dict[str, Any]
MESSAGE_LIMIT = 1024
CACHE_SIZE = 4096
BURST, REFILL_SECONDS = 25, 300.0


class EventSink(Protocol):
    """Where events are written (the REST client in production, a list in tests)."""

    async def create_event(self, namespace: str, event: Object) -> Object: ...

    async def patch_event(self, namespace: str, name: str, patch: Object) -> Object: ...


def truncate(message: str) -> str:
    """The scheduler's truncateMessage: at most 1024 characters, "..." marking a cut."""
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


def _timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, sink: EventSink, *, component: str, instance: str = "",
                 clock: Callable[[], float] = time.time, queue_size: int = 1000) -> None:
        self.sink = sink
        self.component = component
        self.instance = instance
        self.clock = clock
        self._queue: asyncio.Queue[Object] = asyncio.Queue(queue_size)
        self._seen: OrderedDict[tuple[str, ...], tuple[str, int, str]] = OrderedDict()  # LRU
        self._buckets: dict[str, tuple[float, float]] = {}  # object uid -> (tokens, at)
        self.dropped = 0  # events lost to a full queue (logged on the first and every 1000th)

    def __repr__(self) -> str:
        return f"<EventRecorder {self.component} queued={self._queue.qsize()}>"

    def record(self, obj: Object, event_type: str, reason: str, message: str, *,
               component: str = "") -> None:
        """Queue an event about `obj` (a pod); drop it, logged, when the queue is full.

        `component` names the reporter when it is not the recorder's own (a second profile).
        """
        meta = obj.get("metadata") or {}
        involved = {"kind": obj.get("kind") or "Pod", "namespace": meta.get("namespace", ""),
                    "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                    "apiVersion": obj.get("apiVersion") or "v1",
                    "resourceVersion": meta.get("resourceVersion", "")}
        event = {"involvedObject": involved, "type": event_type, "reason": reason,
                 "message": truncate(message), "component": component or self.component}
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            if self.dropped % 1000 == 0:
                log.warning("event queue full (apiserver slow?); dropped %s %s for %s/%s "
                            "(%d dropped so far)", event_type, reason, involved["namespace"],
                            involved["name"], self.dropped + 1)
            self.dropped += 1

    async def run(self) -> None:
        """Write queued events until cancelled."""
        while True:
            event = await self._queue.get()
            try:
                await self.write(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a lost event must not stop the writer
                log.warning("event %s for %s/%s not written: %s", event["reason"],
                            event["involvedObject"]["namespace"],
                            event["involvedObject"]["name"], exc)

    async def drain(self, timeout: float = 2.0) -> None:
        """Write what is queued (used at shutdown and by tests)."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            await self.write(self._queue.get_nowait())

    def _allow(self, uid: str, now: float) -> bool:
        tokens, at = self._buckets.get(uid, (float(BURST), now))
        tokens = min(float(BURST), tokens + (now - at) / REFILL_SECONDS)
        if tokens < 1:
            self._buckets[uid] = (tokens, now)
            return False
        self._buckets[uid] = (tokens - 1, now)
        if len(self._buckets) > CACHE_SIZE:
            self._buckets.pop(next(iter(self._buckets)))
        return True

    async def write(self, event: Object) -> None:
        """Create the event, or bump the count of the same event written before."""
        involved = event["involvedObject"]
        now = self.clock()
        if not self._allow(involved["uid"] or involved["name"], now):
            return
        component = event.get("component") or self.component
        key = (component, involved["namespace"], involved["name"], involved["uid"],
               event["type"], event["reason"], event["message"])
        stamp = _timestamp(now)
        namespace = involved["namespace"] or "default"
        seen = self._seen.get(key)
        if seen is not None:
            name, count, first = seen
            try:
                await self.sink.patch_event(namespace, name, {"count": count + 1,
                                                              "lastTimestamp": stamp})
                self._seen[key] = (name, count + 1, first)
                self._seen.move_to_end(key)
                return
            except errors.NotFound:
                pass  # expired or deleted: write a new one
        name = f"{involved['name']}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved, "reason": event["reason"], "message": event["message"],
            "type": event["type"], "source": {"component": component},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": component, "reportingInstance": self.instance,
        }
        await self.sink.create_event(namespace, body)
        self._seen[key] = (name, 1, stamp)
        if len(self._seen) > CACHE_SIZE:
            self._seen.popitem(last=False)
