"""Event recording (core/v1 Events) as client-go's record package does it.

Controllers, the scheduler and the agent call `recorder.event(obj, type, reason, message)`: it
never blocks and never fails; the `EventSink`'s task writes in the background through a bounded
queue (a full queue drops, counted). Repeats are correlated as Kubernetes does: the same source,
object, type, reason and message bump `count` and `lastTimestamp` of the existing Event (a PATCH)
instead of creating another; more than 10 distinct messages for one object and reason within 10
minutes collapse into one "(combined from similar events): ..." Event; a token bucket per source
and object (burst 25, one more every 5 minutes: client-go's spam filter) stops a flapping object
from flooding etcd. Messages are cut at 1024 characters. `FakeRecorders` keeps events in a list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from controlplane.api import errors
from controlplane.client.rest import EVENTS, Resource

log = logging.getLogger(__name__)
Object = dict[str, Any]
NORMAL, WARNING = "Normal", "Warning"
_AGGREGATE_MAX = 10  # distinct messages before aggregation (client-go's defaultAggregateMaxEvents)
_AGGREGATE_INTERVAL = 600.0  # seconds (defaultAggregateIntervalInSeconds)
_CACHE_SIZE = 4096  # remembered events (client-go's maxLruCacheEntries)
SPAM_BURST, SPAM_REFILL_SECONDS = 25, 300.0  # per source+object (EventSourceObjectSpamFilter)
MESSAGE_LIMIT = 1024


class Recorder(Protocol):
    def event(self, obj: Object, type_: str, reason: str, message: str) -> None: ...


class RecorderFactory(Protocol):
    def recorder(self, component: str) -> Recorder: ...


class EventClient(Protocol):
    """The writes an EventSink makes (the RESTClient, or a fake with the same two methods)."""

    async def create(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "", name: str = "") -> Object: ...

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    subresource: str = "", patch_type: str = "application/merge-patch+json",
                    field_manager: str = "") -> Object: ...


def truncate(message: str) -> str:
    """At most 1024 characters, "..." marking a cut (the scheduler's truncateMessage)."""
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Object) -> Object:
    m = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "namespace": m.get("namespace", ""),
           "name": m.get("name", ""), "uid": m.get("uid", ""),
           "apiVersion": obj.get("apiVersion", ""),
           "resourceVersion": m.get("resourceVersion", "")}
    return {k: v for k, v in ref.items() if v}


@dataclass
class _Seen:
    """One Event already written: its name and count, for the next repeat's PATCH."""

    name: str
    namespace: str
    count: int
    first: str


@dataclass
class _Similar:
    messages: set[str] = field(default_factory=set)
    since: float = 0.0


class EventSink:
    """Writes the events of every recorder through one client, correlating repeats."""

    def __init__(self, client: EventClient, *, host: str = "", instance: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 queue_size: int = 1000, writers: int = 4) -> None:
        self.client = client
        self.host = host  # source.host (a node name for the agent; often empty)
        self.instance = host if instance is None else instance  # reportingInstance
        self.clock = clock
        # One queue and writer per shard of objects: an object's events are written in order,
        # several objects' at once (one write at a time caps a busy scheduler's events).
        self._queues: list[asyncio.Queue[Object]] = [
            asyncio.Queue(maxsize=max(1, queue_size // writers)) for _ in range(writers)]
        self.dropped = 0  # events lost to a full queue (logged on the first and every 1000th)
        # owned by write(): event key -> what was written; (object, reason) -> similar messages;
        # source+object -> (tokens, at)
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._similar: OrderedDict[tuple[str, ...], _Similar] = OrderedDict()
        self._buckets: OrderedDict[tuple[str, ...], tuple[float, float]] = OrderedDict()

    def __repr__(self) -> str:
        return (f"<EventSink queued={self.queued()} remembered={len(self._seen)} "
                f"dropped={self.dropped}>")

    def queued(self) -> int:
        return sum(q.qsize() for q in self._queues)

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self, component)

    def submit(self, event: Object) -> None:
        ref = event.get("involvedObject") or {}
        shard = hash((ref.get("namespace"), ref.get("name"))) % len(self._queues)
        try:
            self._queues[shard].put_nowait(event)
        except asyncio.QueueFull:
            if self.dropped % 1000 == 0:
                log.warning("event queue full (apiserver slow?); dropping %s %s (%d dropped so "
                            "far)", event.get("reason"), event.get("message"), self.dropped + 1)
            self.dropped += 1

    async def drain(self, timeout: float = 2.0) -> None:
        """Write what is queued now, for at most `timeout` seconds (shutdown, tests)."""
        deadline = time.monotonic() + timeout
        for queue in self._queues:
            while not queue.empty() and time.monotonic() < deadline:
                event = queue.get_nowait()
                try:
                    await self.write(event)
                except errors.APIError as exc:
                    log.warning("could not write event %s %s: %s", event.get("reason"),
                                event.get("message"), exc)

    async def run(self) -> None:
        """Write events until cancelled; a failed write is logged and dropped."""
        await asyncio.gather(*(self._write_from(queue) for queue in self._queues))

    async def _write_from(self, queue: asyncio.Queue[Object]) -> None:
        while True:
            event = await queue.get()
            try:
                await self.write(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - events are best effort
                log.warning("could not write event %s %s: %s", event.get("reason"),
                            event.get("message"), exc)

    async def write(self, event: Object) -> None:
        """Create the event, or bump the count of the same one written before."""
        event, aggregated = self._aggregate(event)
        if not self._allow(event):
            return
        key = _event_key(event, with_message=not aggregated)
        seen = self._seen.get(key)
        now = event["lastTimestamp"]
        if seen is not None:
            self._seen.move_to_end(key)
            seen.count += 1
            try:
                await self.client.patch(EVENTS, seen.name, {
                    "count": seen.count, "lastTimestamp": now, "message": event["message"]},
                    seen.namespace, patch_type="application/strategic-merge-patch+json")
                return
            except errors.NotFound:
                self._seen.pop(key, None)
        created = await self.client.create(EVENTS, event, event["metadata"]["namespace"])
        m = created.get("metadata") or event["metadata"]
        self._seen[key] = _Seen(m["name"], m["namespace"], int(created.get("count") or 1),
                                str(created.get("firstTimestamp") or now))
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)

    def _allow(self, event: Object) -> bool:
        """The spam filter: take a token from the bucket of the event's source and object."""
        key = _event_key(event, with_message=False)[:7]
        now = self.clock().timestamp()
        tokens, at = self._buckets.get(key, (float(SPAM_BURST), now))
        tokens = min(float(SPAM_BURST), tokens + (now - at) / SPAM_REFILL_SECONDS)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > _CACHE_SIZE:
            self._buckets.popitem(last=False)
        if not allowed:
            log.debug("event %s %s for %s/%s dropped by the spam filter", event["type"],
                      event["reason"], event["involvedObject"].get("namespace"),
                      event["involvedObject"].get("name"))
        return allowed

    def _aggregate(self, event: Object) -> tuple[Object, bool]:
        """Collapse the 11th distinct message for one object+reason within 10 minutes."""
        key = _event_key(event, with_message=False)
        now = time.monotonic()
        similar = self._similar.get(key)
        if similar is None or now - similar.since > _AGGREGATE_INTERVAL:
            similar = self._similar[key] = _Similar(since=now)
        self._similar.move_to_end(key)
        while len(self._similar) > _CACHE_SIZE:
            self._similar.popitem(last=False)
        similar.messages.add(event["message"])
        if len(similar.messages) <= _AGGREGATE_MAX:
            return event, False
        return dict(event, message=f"(combined from similar events): {event['message']}"), True


def _event_key(event: Object, *, with_message: bool = True) -> tuple[str, ...]:
    ref = event["involvedObject"]
    parts = [event["source"].get("component", ""), event["source"].get("host", ""),
             ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""),
             ref.get("uid", ""), ref.get("apiVersion", ""), event["type"], event["reason"]]
    if with_message:
        parts.append(event["message"])
    return tuple(parts)


class EventRecorder:
    """Records events as one component (`source.component`, e.g. "deployment-controller")."""

    def __init__(self, sink: EventSink, component: str) -> None:
        self.sink = sink
        self.component = component

    def event(self, obj: Object, type_: str, reason: str, message: str) -> None:
        ref = object_reference(obj)
        now = self.sink.clock()
        stamp = _rfc3339(now)
        source = {"component": self.component}
        if self.sink.host:
            source["host"] = self.sink.host
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name', 'unknown')}.{time.time_ns():x}",
                         "namespace": ref.get("namespace") or "default"},
            "involvedObject": ref, "reason": reason, "message": truncate(message),
            "type": type_, "source": source, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "count": 1, "reportingComponent": self.component,
            "reportingInstance": self.sink.instance,
        }
        log.debug("event %s/%s %s %s: %s", ref.get("namespace"), ref.get("name"), type_,
                  reason, message)
        self.sink.submit(event)


@dataclass(frozen=True)
class RecordedEvent:
    component: str
    kind: str
    name: str
    type: str
    reason: str
    message: str


class FakeRecorders:
    """A RecorderFactory for tests: every recorder appends to `events`."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def recorder(self, component: str) -> Recorder:
        return _FakeRecorder(self, component)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


class _FakeRecorder:
    def __init__(self, parent: FakeRecorders, component: str) -> None:
        self.parent = parent
        self.component = component

    def event(self, obj: Object, type_: str, reason: str, message: str) -> None:
        m = obj.get("metadata") or {}
        self.parent.events.append(RecordedEvent(self.component, str(obj.get("kind", "")),
                                                str(m.get("name", "")), type_, reason, message))
