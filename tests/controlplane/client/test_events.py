"""Event recording: one Event per repeat key, count bumps, aggregation, spam filter, limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client.events import SPAM_BURST, EventSink, object_reference, truncate
from controlplane.controllers.testing import FakeClient, replicaset

RS = dict(replicaset("web", {"app": "web"}, 1), kind="ReplicaSet")


async def drain(sink: EventSink) -> None:
    await sink.drain()


async def test_an_event_names_its_object_and_source() -> None:
    client = FakeClient()
    sink = EventSink(client, host="cp1")
    sink.recorder("replicaset-controller").event(RS, "Normal", "SuccessfulCreate",
                                                  "Created pod: web-abc")
    await drain(sink)
    (event,) = client.bodies("create", "events")
    assert event["metadata"]["name"].startswith("web.")
    assert event["metadata"]["namespace"] == "default"
    assert event["involvedObject"] == object_reference(RS)
    assert event["involvedObject"]["kind"] == "ReplicaSet"
    assert event["source"] == {"component": "replicaset-controller", "host": "cp1"}
    assert (event["type"], event["reason"], event["count"]) == ("Normal", "SuccessfulCreate", 1)
    assert event["firstTimestamp"] == event["lastTimestamp"]


async def test_a_repeat_bumps_the_count_of_the_same_event() -> None:
    client = FakeClient()
    sink = EventSink(client)
    recorder = sink.recorder("deployment-controller")
    for _ in range(3):
        recorder.event(RS, "Warning", "FailedCreate", "quota exceeded")
    await drain(sink)
    assert len(client.bodies("create", "events")) == 1
    patches = client.bodies("patch", "events")
    assert [p["count"] for p in patches] == [2, 3]


async def test_many_different_messages_for_one_reason_are_combined() -> None:
    client = FakeClient()
    sink = EventSink(client)
    recorder = sink.recorder("replicaset-controller")
    for i in range(14):
        recorder.event(RS, "Normal", "SuccessfulCreate", f"Created pod: web-{i}")
    await drain(sink)
    created = client.bodies("create", "events")
    assert len(created) == 11  # 10 distinct, then one combined event ...
    assert created[-1]["message"] == "(combined from similar events): Created pod: web-10"
    assert len(client.bodies("patch", "events")) == 3  # ... whose count is bumped


async def test_a_failed_write_is_logged_and_the_sink_goes_on() -> None:
    client = FakeClient()
    client.fail[("create", "events")] = errors.Forbidden("no")
    sink = EventSink(client)
    recorder = sink.recorder("x")
    recorder.event(RS, "Normal", "R", "first")
    recorder.event(RS, "Normal", "R", "second")
    runner = asyncio.create_task(sink.run())
    for _ in range(100):
        if len(client.calls) == 2:
            break
        await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert [c.body["message"] for c in client.calls] == ["first", "second"]


class Clock:
    """A settable wall clock for the sink's timestamps and its spam filter."""

    def __init__(self) -> None:
        self.now = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def pod(name: str) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}",
                         "resourceVersion": "1"}}


async def test_scheduler_event_shape_and_repeats() -> None:
    client, clock = FakeClient(), Clock()
    sink = EventSink(client, instance="host_1", clock=clock)
    recorder = sink.recorder("default-scheduler")
    recorder.event(pod("web"), "Warning", "FailedScheduling", "0/1 nodes are available: ...")
    await sink.drain()
    (event,) = client.bodies("create", "events")
    assert event["involvedObject"] == {"kind": "Pod", "namespace": "shop", "name": "web",
                                       "uid": "uid-web", "apiVersion": "v1",
                                       "resourceVersion": "1"}
    assert event["metadata"]["namespace"] == "shop"
    assert event["source"] == {"component": "default-scheduler"}  # no host: none given
    assert (event["reportingComponent"], event["reportingInstance"]) == (
        "default-scheduler", "host_1")
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2023-11-14T22:13:20Z"
    clock.now += timedelta(seconds=30)
    recorder.event(pod("web"), "Warning", "FailedScheduling", "0/1 nodes are available: ...")
    await sink.drain()
    (patch,) = client.bodies("patch", "events")
    assert (patch["count"], patch["lastTimestamp"]) == (2, "2023-11-14T22:13:50Z")


async def test_instance_defaults_to_host() -> None:
    client = FakeClient()
    sink = EventSink(client, host="node1")
    sink.recorder("kubelet").event(pod("p"), "Normal", "Pulled", "pulled")
    await sink.drain()
    (event,) = client.bodies("create", "events")
    assert event["reportingInstance"] == "node1"
    assert event["source"] == {"component": "kubelet", "host": "node1"}


async def test_a_deleted_event_is_written_again() -> None:
    client = FakeClient()
    sink = EventSink(client)
    recorder = sink.recorder("s")
    recorder.event(pod("p"), "Warning", "FailedScheduling", "m")
    await sink.drain()
    client.fail[("patch", "events")] = errors.NotFound("gone")
    recorder.event(pod("p"), "Warning", "FailedScheduling", "m")
    await sink.drain()
    created = client.bodies("create", "events")
    assert len(created) == 2 and created[1]["count"] == 1


async def test_spam_filter_per_source_and_object() -> None:
    client, clock = FakeClient(), Clock()
    sink = EventSink(client, clock=clock)
    recorder = sink.recorder("s")
    for i in range(SPAM_BURST + 5):
        recorder.event(pod("p"), "Warning", "FailedScheduling", f"message {i}")
    recorder.event(pod("q"), "Warning", "FailedScheduling", "other pod")
    sink.recorder("other").event(pod("p"), "Warning", "FailedScheduling", "other source")
    await sink.drain()
    writes = len(client.calls)
    assert writes == SPAM_BURST + 2
    clock.now += timedelta(seconds=300)  # one more token
    recorder.event(pod("p"), "Warning", "FailedScheduling", "later")
    recorder.event(pod("p"), "Warning", "FailedScheduling", "later still")
    await sink.drain()
    assert len(client.calls) == writes + 1


async def test_long_messages_are_truncated() -> None:
    assert truncate("x" * 1024) == "x" * 1024
    assert truncate("x" * 2000) == "x" * 1021 + "..."
    client = FakeClient()
    sink = EventSink(client)
    sink.recorder("s").event(pod("p"), "Warning", "FailedScheduling", "y" * 5000)
    await sink.drain()
    assert len(client.bodies("create", "events")[0]["message"]) == 1024


async def test_a_full_queue_drops_and_counts() -> None:
    client = FakeClient()
    sink = EventSink(client, queue_size=2, writers=1)
    for i in range(5):
        sink.recorder("s").event(pod(f"p{i}"), "Normal", "Scheduled", "m")
    assert sink.dropped == 3
    await sink.drain()
    assert len(client.bodies("create", "events")) == 2


class SlowClient(FakeClient):
    """Creates wait for `release`; `in_flight` tracks how many wait at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.in_flight = self.most_in_flight = 0

    async def create(self, res: Any, obj: Any, namespace: str = "", *, subresource: str = "",
                     name: str = "") -> Any:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        return await super().create(res, obj, namespace, subresource=subresource, name=name)


async def test_objects_are_written_in_parallel_each_in_order() -> None:
    client = SlowClient()
    sink = EventSink(client, writers=4)
    recorder = sink.recorder("s")
    for i in range(8):
        recorder.event(pod(f"p{i}"), "Normal", "Scheduled", "first")
        recorder.event(pod(f"p{i}"), "Normal", "Other", "second")
    runner = asyncio.create_task(sink.run())
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert 1 < client.most_in_flight <= 4
    client.release.set()
    for _ in range(100):
        if len(client.calls) == 16:
            break
        await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    for i in range(8):  # per object: first, then second
        assert [c.body["message"] for c in client.calls if c.name.startswith(f"p{i}.")] == [
            "first", "second"]
