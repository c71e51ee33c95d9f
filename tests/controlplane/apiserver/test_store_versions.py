"""One object through two API versions: Stores of events.k8s.io/v1 and core/v1 Events, and of
autoscaling/v1 and v2 HorizontalPodAutoscalers, over one MemoryStorage and one watch cache per
storage prefix (as the apiserver wires them). Writes through either version land in one stored
object (storage form, one key), reads convert, uid and resourceVersion agree, watches see the
other version's writes, and field selectors use the served version's labels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.selectors import FieldSelector
from controlplane.apiserver.registry.conversion_autoscaling import METRICS
from controlplane.apiserver.registry.resources import lookup
from controlplane.apiserver.registry.store import ListOptions, Store
from controlplane.apiserver.storage.cacher import WatchCache
from controlplane.apiserver.storage.memory import MemoryStorage

Object = dict[str, Any]
Stores = Callable[[str, str, str], Store]


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
async def stores(storage: MemoryStorage) -> AsyncIterator[Stores]:
    caches: dict[str, WatchCache] = {}

    def make(group: str, version: str, resource: str) -> Store:
        info = lookup(group, version, resource)
        assert info is not None
        if info.key_prefix not in caches:
            caches[info.key_prefix] = WatchCache(storage, info.key_prefix)
            caches[info.key_prefix].start()
        return Store(info, storage, caches[info.key_prefix])

    try:
        yield make
    finally:
        for cache in caches.values():
            await cache.stop()


@pytest.fixture
async def core_events(stores: Stores) -> Store:
    return stores("", "v1", "events")


@pytest.fixture
async def new_events(stores: Stores) -> Store:
    return stores("events.k8s.io", "v1", "events")


@pytest.fixture
async def hpa_v1(stores: Stores) -> Store:
    return stores("autoscaling", "v1", "horizontalpodautoscalers")


@pytest.fixture
async def hpa_v2(stores: Stores) -> Store:
    return stores("autoscaling", "v2", "horizontalpodautoscalers")


def core_event(name: str, pod: str = "web", reason: str = "Pulled") -> Object:
    return {"metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": pod, "uid": "p-1"},
            "reason": reason, "message": f"{reason} for {pod}", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:00:00Z",
            "count": 1, "reportingComponent": "kubelet", "reportingInstance": "node-1"}


def new_event(name: str, pod: str = "web") -> Object:
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name},
            "eventTime": "2024-05-01T10:00:00.000000Z", "reportingController": "scheduler",
            "reportingInstance": "scheduler-1", "action": "Binding", "reason": "Scheduled",
            "regarding": {"kind": "Pod", "namespace": "default", "name": pod},
            "note": f"assigned {pod}", "type": "Normal"}


def same_identity(a: Object, b: Object) -> bool:
    keys = ("uid", "resourceVersion", "creationTimestamp", "name", "namespace")
    return all(a["metadata"].get(k) == b["metadata"].get(k) for k in keys)


# --- events -----------------------------------------------------------------------------------

async def test_a_core_event_reads_through_events_k8s_io(
        core_events: Store, new_events: Store, storage: MemoryStorage) -> None:
    created = await core_events.create("default", core_event("web.1"))
    served = await new_events.get("default", "web.1")
    assert (served["apiVersion"], served["kind"]) == ("events.k8s.io/v1", "Event")
    assert same_identity(served, created)
    assert served["regarding"] == created["involvedObject"]
    assert served["note"] == "Pulled for web"
    assert served["reportingController"] == "kubelet"
    assert served["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert served["deprecatedCount"] == 1
    assert "involvedObject" not in served and "message" not in served
    stored = await storage.get("/registry/events/default/web.1")
    assert stored is not None and stored["apiVersion"] == "v1"


async def test_an_events_k8s_io_event_is_stored_as_core(
        core_events: Store, new_events: Store, storage: MemoryStorage) -> None:
    created = await new_events.create("default", new_event("sched.1"))
    assert (created["apiVersion"], created["regarding"]["name"]) == ("events.k8s.io/v1", "web")
    stored = await storage.get("/registry/events/default/sched.1")
    assert stored is not None
    assert (stored["apiVersion"], stored["kind"]) == ("v1", "Event")
    assert stored["involvedObject"] == {"kind": "Pod", "namespace": "default", "name": "web"}
    assert (stored["message"], stored["reportingComponent"]) == ("assigned web", "scheduler")
    assert "regarding" not in stored and "note" not in stored
    core = await core_events.get("default", "sched.1")
    assert same_identity(core, created) and core["message"] == "assigned web"


async def test_lists_convert_each_item(core_events: Store, new_events: Store) -> None:
    await core_events.create("default", core_event("a.1"))
    await new_events.create("default", new_event("b.1"))
    page = await new_events.list("default", ListOptions())
    assert [(e["metadata"]["name"], e["apiVersion"], e["regarding"]["name"])
            for e in page.items] == [("a.1", "events.k8s.io/v1", "web"),
                                     ("b.1", "events.k8s.io/v1", "web")]
    cached = await new_events.list("default", ListOptions(resource_version="0"))
    assert [e["note"] for e in cached.items] == ["Pulled for web", "assigned web"]
    core = await core_events.list("", ListOptions())
    assert [e["message"] for e in core.items] == ["Pulled for web", "assigned web"]


async def test_field_selectors_use_the_served_labels(
        core_events: Store, new_events: Store) -> None:
    await core_events.create("default", core_event("a.1", pod="web"))
    await core_events.create("default", core_event("b.1", pod="db", reason="Killing"))
    await new_events.create("default", new_event("c.1", pod="web"))

    async def names(store: Store, selector: str, rv: str = "") -> list[str]:
        opts = ListOptions(field_selector=FieldSelector.parse(selector), resource_version=rv)
        return [e["metadata"]["name"] for e in (await store.list("default", opts)).items]

    assert await names(new_events, "regarding.name=web") == ["a.1", "c.1"]
    assert await names(new_events, "regarding.name=web", rv="0") == ["a.1", "c.1"]
    assert await names(new_events, "reportingController=scheduler") == ["c.1"]
    assert await names(new_events, "reason=Killing,regarding.kind=Pod") == ["b.1"]
    assert await names(core_events, "involvedObject.name=web,involvedObject.uid=p-1") == ["a.1"]
    assert await names(core_events, "reportingComponent=scheduler") == ["c.1"]
    with pytest.raises(errors.BadRequest, match="field label not supported"):
        await names(new_events, "involvedObject.name=web")


async def test_watch_through_one_version_sees_the_others_writes(
        core_events: Store, new_events: Store) -> None:
    watcher = new_events.watch("default", ListOptions(
        field_selector=FieldSelector.parse("regarding.name=web")))
    created = await core_events.create("default", core_event("a.1"))
    await core_events.create("default", core_event("b.1", pod="db"))
    event = await asyncio.wait_for(anext(watcher), 5)
    assert event.type == "ADDED"
    served = new_events.from_storage(event.object)
    assert served["note"] == "Pulled for web" and same_identity(served, created)
    watcher.close()

    core_watcher = core_events.watch("default", ListOptions(resource_version=(
        created["metadata"]["resourceVersion"])))
    await new_events.create("default", new_event("c.1"))
    added = [await asyncio.wait_for(anext(core_watcher), 5) for _ in range(2)]
    assert [(e.type, e.object["metadata"]["name"]) for e in added] == [
        ("ADDED", "b.1"), ("ADDED", "c.1")]
    assert added[1].object["message"] == "assigned web"
    core_watcher.close()


async def test_updates_and_patches_cross_versions(core_events: Store, new_events: Store) -> None:
    created = await core_events.create("default", core_event("a.1"))
    served = await new_events.get("default", "a.1")
    served["note"] = "changed"
    updated, was_created = await new_events.update("default", "a.1", served)
    assert not was_created and updated["note"] == "changed"
    assert int(updated["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"])
    core = await core_events.get("default", "a.1")
    assert core["message"] == "changed"
    assert core["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    assert core["source"] == {"component": "kubelet", "host": "node-1"}  # deprecatedSource kept

    def bump(current: Object) -> Object:
        assert current["apiVersion"] == "events.k8s.io/v1"
        return {**current, "deprecatedCount": current["deprecatedCount"] + 1}

    patched = await new_events.modify("default", "a.1", bump)
    assert patched["deprecatedCount"] == 2
    assert (await core_events.get("default", "a.1"))["count"] == 2
    with pytest.raises(errors.Conflict):  # a stale resourceVersion, whichever version wrote
        await core_events.update("default", "a.1", core)


async def test_put_creates_events_in_either_version(core_events: Store,
                                                    new_events: Store) -> None:
    created, was_created = await new_events.update("default", "c.1", new_event("c.1"))
    assert was_created and created["apiVersion"] == "events.k8s.io/v1"
    assert (await core_events.get("default", "c.1"))["involvedObject"]["name"] == "web"


async def test_delete_and_dry_run_answer_in_the_served_version(
        core_events: Store, new_events: Store) -> None:
    await core_events.create("default", core_event("a.1"))
    dry = await new_events.create("default", new_event("d.1"), dry_run=True)
    assert dry["apiVersion"] == "events.k8s.io/v1" and dry["note"] == "assigned web"
    with pytest.raises(errors.NotFound):
        await core_events.get("default", "d.1")
    gone, now = await new_events.delete("default", "a.1", {})
    assert now and gone["note"] == "Pulled for web"
    with pytest.raises(errors.NotFound) as caught:
        await new_events.get("default", "a.1")
    assert caught.value.status()["details"]["group"] == "events.k8s.io"


# --- horizontal pod autoscalers ---------------------------------------------------------------

def hpa_of(cpu: int | None = 70) -> Object:
    spec: Object = {"scaleTargetRef": {"kind": "Deployment", "name": "web",
                                       "apiVersion": "apps/v1"}, "maxReplicas": 3}
    if cpu is not None:
        spec["targetCPUUtilizationPercentage"] = cpu
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"}, "spec": spec}


CPU = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 70}}}
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {
    "type": "AverageValue", "averageValue": "100Mi"}}}


async def test_a_v1_hpa_reads_as_v2(hpa_v1: Store, hpa_v2: Store,
                                    storage: MemoryStorage) -> None:
    created = await hpa_v1.create("default", hpa_of(70))
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"]["targetCPUUtilizationPercentage"] == 70
    v2 = await hpa_v2.get("default", "web")
    assert v2["apiVersion"] == "autoscaling/v2" and same_identity(v2, created)
    assert v2["spec"]["metrics"] == [CPU]
    assert v2["metadata"]["generation"] == created["metadata"]["generation"] == 1
    stored = await storage.get("/registry/horizontalpodautoscalers/default/web")
    assert stored is not None and stored["apiVersion"] == "autoscaling/v2"
    default = await hpa_v1.create("default", {**hpa_of(None), "metadata": {"name": "d"}})
    assert default["spec"]["targetCPUUtilizationPercentage"] == 80


async def test_a_v1_client_keeps_v2s_other_metrics(hpa_v1: Store, hpa_v2: Store) -> None:
    v2 = await hpa_v2.create("default", {
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                 "metrics": [MEMORY, CPU]}})
    v1 = await hpa_v1.get("default", "web")
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    assert METRICS in v1["metadata"]["annotations"]
    v1["spec"]["targetCPUUtilizationPercentage"] = 50
    v1["spec"]["maxReplicas"] = 6
    updated, _ = await hpa_v1.update("default", "web", v1)
    assert updated["spec"]["targetCPUUtilizationPercentage"] == 50
    after = await hpa_v2.get("default", "web")
    assert after["spec"]["maxReplicas"] == 6
    assert after["spec"]["metrics"] == [MEMORY, {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    assert "annotations" not in after["metadata"]
    assert after["metadata"]["generation"] == v2["metadata"]["generation"] + 1


async def test_v1_status_writes_reach_v2_status(hpa_v1: Store, hpa_v2: Store) -> None:
    await hpa_v1.create("default", hpa_of(70))
    v1 = await hpa_v1.get("default", "web")
    v1["status"] = {"currentReplicas": 2, "desiredReplicas": 2,
                    "currentCPUUtilizationPercentage": 35}
    v1["spec"]["maxReplicas"] = 9  # ignored by a status write
    await hpa_v1.update("default", "web", v1, subresource="status")
    v2 = await hpa_v2.get("default", "web")
    assert v2["spec"]["maxReplicas"] == 3
    assert v2["status"]["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 35}}}]
    assert (await hpa_v1.get("default", "web"))["status"][
        "currentCPUUtilizationPercentage"] == 35


async def test_watching_v1_sees_v2_writes(hpa_v1: Store, hpa_v2: Store) -> None:
    watcher = hpa_v1.watch("default", ListOptions())
    await hpa_v2.create("default", {
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                 "metrics": [CPU]}})
    event = await asyncio.wait_for(anext(watcher), 5)
    served = hpa_v1.from_storage(event.object)
    assert (event.type, served["apiVersion"]) == ("ADDED", "autoscaling/v1")
    assert served["spec"]["targetCPUUtilizationPercentage"] == 70
    watcher.close()


async def test_hpas_get_kubernetes_v2_defaults(hpa_v2: Store) -> None:
    created = await hpa_v2.create("default", {
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}})
    spec = created["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]}}
