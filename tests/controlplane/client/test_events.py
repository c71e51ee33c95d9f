"""Event recording: one Event per repeat key, count bumps, similar-message aggregation."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.api import errors
from controlplane.client.events import EventSink, object_reference
from controlplane.controllers.testing import FakeClient, replicaset

RS = dict(replicaset("web", {"app": "web"}, 1), kind="ReplicaSet")


async def drain(sink: EventSink) -> None:
    while not sink._queue.empty():
        await sink.write(sink._queue.get_nowait())


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
