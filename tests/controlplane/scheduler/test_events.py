"""The event recorder: core/v1 Events, repeats counted, floods cut."""

from __future__ import annotations

from controlplane.scheduler.events import BURST, EventRecorder, truncate
from controlplane.scheduler.testing import FakeAPI, make_pod


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_event_shape_and_repeats() -> None:
    api, clock = FakeAPI(), Clock()
    recorder = EventRecorder(api, component="default-scheduler", instance="host_1", clock=clock)
    pod = make_pod("web", "shop")
    recorder.record(pod, "Warning", "FailedScheduling", "0/1 nodes are available: ...")
    await recorder.drain()
    [event] = api.events
    assert event["involvedObject"] == {"kind": "Pod", "namespace": "shop", "name": "web",
                                       "uid": "uid-web", "apiVersion": "v1",
                                       "resourceVersion": "1"}
    assert event["metadata"]["namespace"] == "shop"
    assert event["metadata"]["name"].startswith("web.")
    assert (event["type"], event["reason"], event["count"]) == ("Warning", "FailedScheduling", 1)
    assert event["source"] == {"component": "default-scheduler"}
    assert event["reportingComponent"] == "default-scheduler"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2023-11-14T22:13:20Z"
    clock.now += 30
    recorder.record(pod, "Warning", "FailedScheduling", "0/1 nodes are available: ...")
    await recorder.drain()
    assert len(api.events) == 1
    assert event["count"] == 2 and event["lastTimestamp"] == "2023-11-14T22:13:50Z"
    recorder.record(pod, "Normal", "Scheduled", "Successfully assigned shop/web to n1")
    await recorder.drain()
    assert len(api.events) == 2


async def test_deleted_event_is_written_again() -> None:
    api = FakeAPI()
    recorder = EventRecorder(api, component="s")
    pod = make_pod("p")
    recorder.record(pod, "Warning", "FailedScheduling", "m")
    await recorder.drain()
    api.events.clear()
    recorder.record(pod, "Warning", "FailedScheduling", "m")
    await recorder.drain()
    assert len(api.events) == 1 and api.events[0]["count"] == 1


async def test_spam_filter_per_object() -> None:
    api, clock = FakeAPI(), Clock()
    recorder = EventRecorder(api, component="s", clock=clock)
    for i in range(BURST + 5):
        recorder.record(make_pod("p"), "Warning", "FailedScheduling", f"message {i}")
    recorder.record(make_pod("q"), "Warning", "FailedScheduling", "other pod")
    await recorder.drain()
    assert len(api.events) == BURST + 1
    clock.now += 300
    recorder.record(make_pod("p"), "Warning", "FailedScheduling", "later")
    await recorder.drain()
    assert len(api.events) == BURST + 2


def test_truncate() -> None:
    assert truncate("x" * 1024) == "x" * 1024
    assert truncate("x" * 2000) == "x" * 1021 + "..."


async def test_a_full_queue_drops_and_counts() -> None:
    api = FakeAPI()
    recorder = EventRecorder(api, component="s", queue_size=2)
    for i in range(5):
        recorder.record(make_pod(f"p{i}"), "Normal", "Scheduled", "m")
    assert recorder.dropped == 3
    await recorder.drain()
    assert len(api.events) == 2
