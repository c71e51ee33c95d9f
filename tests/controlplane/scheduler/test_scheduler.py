"""The scheduling loop over a fake API: assume, bind, fail, requeue on cluster events."""

from __future__ import annotations

import asyncio
import copy

import pytest

from controlplane.api import errors
from controlplane.client.events import EventSink
from controlplane.scheduler import config as configuration
from controlplane.scheduler.config import SchedulerConfig
from controlplane.scheduler.plugin import FilterPlugin
from controlplane.scheduler.queue import BACKOFF, UNSCHEDULABLE
from controlplane.scheduler.scheduler import Scheduler, node_events, pod_spec_changed
from controlplane.scheduler.testing import FakeAPI, make_node, make_pod


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def scheduler(api: FakeAPI) -> Scheduler:
    return Scheduler(api, SchedulerConfig(), sink=EventSink(api, instance="test"))


async def step(scheduler: Scheduler) -> None:
    """Schedule one pod that is ready now, and let its binding and writes finish."""
    await asyncio.wait_for(scheduler.schedule_one(), 1)
    await scheduler.settle()
    await scheduler.sink.drain()


def bind_confirmed(scheduler: Scheduler, pod: dict, node: str) -> None:
    """What the informer delivers after the apiserver accepted a binding."""
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = node
    scheduler.on_pod_update(pod, bound)


async def test_back_to_back_pods_see_each_other(scheduler: Scheduler, api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("a", cpu="1"))
    scheduler.on_node_add(make_node("b", cpu="1"))
    for name in ("p1", "p2"):
        scheduler.on_pod_add(make_pod(name, cpu="600m"))
    await step(scheduler)
    await step(scheduler)
    assert {node for _, node in api.bindings} == {"a", "b"}  # p2 saw p1's assumed 600m
    assert [e["reason"] for e in api.events] == ["Scheduled", "Scheduled"]
    key, node = api.bindings[0]
    assert api.events[0]["message"] == f"Successfully assigned {key} to {node}"
    assert api.events[0]["type"] == "Normal"


async def test_unschedulable_pod_is_parked_then_placed_by_a_new_node(
        scheduler: Scheduler, api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("small", cpu="1"))
    pod = make_pod("big", cpu="2")
    scheduler.on_pod_add(pod)
    await step(scheduler)
    message = ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are "
               "available: 1 No preemption victims found for incoming pod.")
    [(key, patch)] = api.status_patches
    [condition] = patch["status"]["conditions"]
    assert key == "default/big"
    assert condition["type"] == "PodScheduled" and condition["status"] == "False"
    assert condition["reason"] == "Unschedulable" and condition["message"] == message
    assert [(e["type"], e["reason"], e["message"]) for e in api.events] == [
        ("Warning", "FailedScheduling", message)]
    assert scheduler.queue.where("default/big") == UNSCHEDULABLE
    # our own status write comes back through the informer: not a reason to retry
    updated = copy.deepcopy(pod)
    updated["status"]["conditions"] = [condition]
    scheduler.on_pod_update(pod, updated)
    assert scheduler.queue.where("default/big") == UNSCHEDULABLE
    # heartbeats change nothing either
    old = make_node("small", cpu="1")
    beat = copy.deepcopy(old)
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2024-01-01T00:00:00Z"
    scheduler.on_node_update(old, beat)
    assert scheduler.queue.where("default/big") == UNSCHEDULABLE
    scheduler.queue.backoff_duration = lambda attempts: 0.0  # type: ignore[method-assign]
    scheduler.on_node_add(make_node("large", cpu="4"))
    assert scheduler.queue.where("default/big") == "active"
    await step(scheduler)
    assert api.bindings == [("default/big", "large")]


async def test_same_failure_is_not_patched_twice(scheduler: Scheduler, api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("n", cpu="1"))
    pod = make_pod("big", cpu="2")
    scheduler.on_pod_add(pod)
    await step(scheduler)
    [(_, patch)] = api.status_patches
    current = copy.deepcopy(pod)
    current["status"]["conditions"] = patch["status"]["conditions"]
    scheduler.on_pod_update(pod, current)
    scheduler.queue.backoff_duration = lambda attempts: 0.0  # type: ignore[method-assign]
    scheduler.queue.move_all("AssignedPodDelete")
    await step(scheduler)
    assert len(api.status_patches) == 1
    assert api.events[0]["count"] == 2


async def test_no_nodes(scheduler: Scheduler, api: FakeAPI) -> None:
    scheduler.on_pod_add(make_pod("p"))
    await step(scheduler)
    condition = api.status_patches[0][1]["status"]["conditions"][0]
    assert condition["message"] == "no nodes available to schedule pods"
    assert condition["reason"] == "Unschedulable"


async def test_only_our_scheduler_name(api: FakeAPI) -> None:
    config = SchedulerConfig()
    config.profiles[0].scheduler_name = "custom"
    custom = Scheduler(api, config, sink=EventSink(api))
    custom.on_node_add(make_node("n"))
    custom.on_pod_add(make_pod("theirs"))
    custom.on_pod_add(make_pod("ours", scheduler_name="custom"))
    assert custom.queue.where("default/theirs") is None
    await step(custom)
    assert api.bindings == [("default/ours", "n")]
    assert api.events[0]["source"] == {"component": "custom"}


async def test_binding_failures(scheduler: Scheduler, api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("n", cpu="1"))
    scheduler.on_pod_add(make_pod("flaky", cpu="1"))
    api.fail_bind["default/flaky"] = errors.InternalError("etcd is sad")
    await step(scheduler)
    assert scheduler.queue.where("default/flaky") == BACKOFF
    assert not scheduler.cache.is_assumed("default/flaky")
    assert scheduler.cache.nodes["n"].requested.milli_cpu == 0  # the assumption is undone
    condition = api.status_patches[0][1]["status"]["conditions"][0]
    assert condition["reason"] == "SchedulerError"
    assert condition["message"] == "Binding rejected: etcd is sad"
    scheduler.on_pod_add(make_pod("taken"))
    api.fail_bind["default/taken"] = errors.Conflict(
        'pod taken is already assigned to node "elsewhere"')
    await step(scheduler)
    assert scheduler.queue.where("default/taken") is None


async def test_a_binding_that_times_out_is_retried_not_left_assumed(
        scheduler: Scheduler, api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("n", cpu="1"))
    scheduler.on_pod_add(make_pod("slow", cpu="1"))
    api.fail_bind["default/slow"] = TimeoutError()  # the REST client's, not an APIError
    await step(scheduler)
    assert scheduler.queue.where("default/slow") == BACKOFF
    assert not scheduler.cache.is_assumed("default/slow")
    assert scheduler.cache.nodes["n"].requested.milli_cpu == 0
    condition = api.status_patches[0][1]["status"]["conditions"][0]
    assert (condition["reason"], condition["message"]) == (
        "SchedulerError", "binding to n: TimeoutError()")


async def test_many_queued_pods_make_cluster_events_cheap(scheduler: Scheduler) -> None:
    """move_all looks at the unschedulable pods only, not at every pod waiting its turn."""
    for i in range(2000):
        scheduler.on_pod_add(make_pod(f"p{i}"))
    interested = 0

    def counting(plugins: frozenset[str], event: str) -> bool:
        nonlocal interested
        interested += 1
        return True

    scheduler.queue.interested = counting
    assert scheduler.queue.move_all("PodAdd") == 0
    assert interested == 0


async def test_assumed_pod_is_confirmed_by_the_informer(scheduler: Scheduler,
                                                        api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("n", cpu="1"))
    pod = make_pod("p", cpu="500m")
    scheduler.on_pod_add(pod)
    await asyncio.wait_for(scheduler.schedule_one(), 1)
    assert scheduler.cache.is_assumed("default/p")
    scheduler.on_pod_update(pod, pod)  # a stale unbound update must not requeue it
    assert scheduler.queue.where("default/p") in (None, "in-flight")
    await scheduler.settle()
    bind_confirmed(scheduler, pod, "n")
    assert not scheduler.cache.is_assumed("default/p")
    assert scheduler.cache.nodes["n"].requested.milli_cpu == 500
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = "n"
    scheduler.on_pod_delete(bound)
    assert scheduler.cache.nodes["n"].requested.milli_cpu == 0


async def test_a_broken_plugin_does_not_stop_the_loop(scheduler: Scheduler,
                                                      api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("n"))
    profile = scheduler.profiles["default-scheduler"]

    class Boom(FilterPlugin):
        name = profile.filters[0].name

        def filter(self, state, pod, node):  # type: ignore[no-untyped-def]
            if pod.name == "bad":
                raise RuntimeError("boom")
            return None

    profile.filters[0] = Boom()
    scheduler.on_pod_add(make_pod("bad"))
    scheduler.on_pod_add(make_pod("good"))
    await step(scheduler)
    await step(scheduler)
    assert api.bindings == [("default/good", "n")]
    assert scheduler.queue.where("default/bad") == BACKOFF
    assert "boom" in api.status_patches[0][1]["status"]["conditions"][0]["message"]


async def test_deleted_or_terminal_pods_are_dropped(scheduler: Scheduler, api: FakeAPI) -> None:
    pod = make_pod("p")
    scheduler.on_pod_add(pod)
    scheduler.on_pod_delete(pod)
    assert scheduler.queue.where("default/p") is None
    done = make_pod("q")
    done["status"]["phase"] = "Succeeded"
    scheduler.on_pod_add(done)
    assert scheduler.queue.where("default/q") is None
    leaving = make_pod("r")
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    scheduler.on_pod_add(leaving)
    assert scheduler.queue.where("default/r") is None


def test_change_detection() -> None:
    node = make_node("n", labels={"a": "1"})
    changed = copy.deepcopy(node)
    changed["metadata"]["labels"]["a"] = "2"
    changed["spec"]["taints"] = [{"key": "k", "effect": "NoSchedule"}]
    changed["status"]["allocatable"]["cpu"] = "8"
    changed["status"]["conditions"][0]["status"] = "False"
    assert node_events(node, changed) == ["NodeUpdate/Label", "NodeUpdate/Taint",
                                          "NodeUpdate/Allocatable", "NodeUpdate/Condition"]
    pod = make_pod("p")
    status_only = copy.deepcopy(pod)
    status_only["status"]["conditions"] = [{"type": "PodScheduled"}]
    status_only["metadata"]["resourceVersion"] = "9"
    assert not pod_spec_changed(pod, status_only)
    tolerating = copy.deepcopy(pod)
    tolerating["spec"]["tolerations"] = [{"operator": "Exists"}]
    assert pod_spec_changed(pod, tolerating)


async def test_gated_pods_wait_for_their_gates(scheduler: Scheduler, api: FakeAPI) -> None:
    scheduler.on_node_add(make_node("n"))
    gated = make_pod("g", schedulingGates=[{"name": "example.com/quota"}])
    scheduler.on_pod_add(gated)
    assert scheduler.queue.where("default/g") is None
    open_pod = copy.deepcopy(gated)
    del open_pod["spec"]["schedulingGates"]
    scheduler.on_pod_update(gated, open_pod)
    await step(scheduler)
    assert api.bindings == [("default/g", "n")]


async def test_each_profile_reports_under_its_own_name(api: FakeAPI) -> None:
    config = configuration.parse({"profiles": [
        {"schedulerName": "default-scheduler"},
        {"schedulerName": "packer", "pluginConfig": [
            {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]},
    ]})
    both = Scheduler(api, config, sink=EventSink(api))
    both.on_node_add(make_node("busy"))
    both.on_node_add(make_node("idle"))
    both.on_pod_add(make_pod("x", cpu="3", node_name="busy"))
    both.on_pod_add(make_pod("packed", cpu="500m", scheduler_name="packer"))
    await step(both)
    assert api.bindings == [("default/packed", "busy")]  # MostAllocated packs
    assert api.events[0]["source"] == {"component": "packer"}
