"""Event recording (core/v1 Events) as client-go's record package does it.

Controllers call `recorder.event(obj, type, reason, message)`: it never blocks and never fails;
the `EventSink`'s task writes in the background. Repeats are correlated as Kubernetes does: the
same source, object, type, reason and message bump `count` and `lastTimestamp` of the existing
Event (a PATCH) instead of creating another; more than 10 distinct messages for one object and
reason within 10 minutes collapse into one "(combined from similar events): ..." Event.
`FakeRecorders` keeps events in a list for unit tests.
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


class Recorder(Protocol):
    def event(self, obj: Object, type_: str, reason: str, message: str) -> None: ...


class RecorderFactory(Protocol):
    def recorder(self, component: str) -> Recorder: ...


class _EventClient(Protocol):
    async def create(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "", name: str = "") -> Object: ...

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    subresource: str = "", patch_type: str = "application/merge-patch+json",
                    field_manager: str = "") -> Object: ...


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

    def __init__(self, client: _EventClient, *, host: str = "",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.host = host
        self.clock = clock
        self._queue: asyncio.Queue[Object] = asyncio.Queue(maxsize=1000)
        # owned by run(): event key -> what was written; (object, reason) -> similar messages
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._similar: OrderedDict[tuple[str, ...], _Similar] = OrderedDict()

    def __repr__(self) -> str:
        return f"<EventSink queued={self._queue.qsize()} remembered={len(self._seen)}>"

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self, component)

    def submit(self, event: Object) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s %s", event.get("reason"),
                        event.get("message"))

    async def run(self) -> None:
        """Write events until cancelled; a failed write is logged and dropped."""
        while True:
            event = await self._queue.get()
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
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": source, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.sink.host,
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
