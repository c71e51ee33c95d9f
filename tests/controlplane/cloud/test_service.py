"""The service controller: given these Services and nodes, expect these calls and events."""

from __future__ import annotations

from typing import Any

from controlplane.api import errors
from controlplane.client.rest import NODES, SERVICES
from controlplane.cloud import servicehelper as helper
from controlplane.cloud.fake import FakeCloud
from controlplane.cloud.service import ServiceController
from controlplane.controllers.testing import Harness, harness, stamp

Object = dict[str, Any]
FIN = helper.FINALIZER


def svc(name: str, *, type_: str = "LoadBalancer", finalizer: bool = False,
        ingress: list[str] | None = None, deleting: bool = False, lb_class: str | None = None,
        created: int = 0) -> Object:
    meta: Object = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                    "resourceVersion": "1", "creationTimestamp": stamp(created)}
    if finalizer:
        meta["finalizers"] = [FIN]
    if deleting:
        meta["deletionTimestamp"] = stamp(60)
    spec: Object = {"type": type_, "ports": [{"port": 80}]}
    if lb_class is not None:
        spec["loadBalancerClass"] = lb_class
    status: Object = {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]} if ingress
                      else {}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
            "status": status}


def node(name: str, *, excluded: bool = False) -> Object:
    labels = {helper.EXCLUDE_LABEL: ""} if excluded else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels}, "spec": {}}


def setup(*objects: Object, addresses: tuple[str, ...] = ("10.0.0.1", "10.0.0.2")
          ) -> tuple[Harness, ServiceController, FakeCloud]:
    h = harness()
    cloud = FakeCloud(addresses=list(addresses))
    c = ServiceController(h.context(), cloud)
    for obj in objects:
        h.cache(NODES if obj["kind"] == "Node" else SERVICES, obj)
    return h, c, cloud


def status_patches(h: Harness) -> list[Any]:
    return h.client.bodies("patch", "services/status")


async def test_a_new_load_balancer_gets_finalizer_then_address_and_events() -> None:
    h, c, cloud = setup(svc("web"), node("n1"), node("n2", excluded=True))
    await c.sync("default/web")
    assert h.client.actions() == [("update", "services", "web"),
                                  ("patch", "services/status", "web")]
    assert h.client.bodies("update", "services")[0]["metadata"]["finalizers"] == [FIN]
    assert status_patches(h) == [{"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}]
    assert [r for r, _ in h.events()] == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    assert cloud.balancers == {"default/web": "10.0.0.1"}


async def test_an_ensured_service_is_not_written_again() -> None:
    h, c, _ = setup(svc("web", finalizer=True, ingress=["10.0.0.1"]))
    c.balancer.balancers["default/web"] = "10.0.0.1"  # type: ignore[attr-defined]
    await c.sync("default/web")
    assert h.client.actions() == []


async def test_exhausted_pool_is_an_event_and_a_retry_and_others_proceed() -> None:
    h, c, _ = setup(svc("a"), svc("b"), addresses=("10.0.0.1",))
    await c.sync("default/a")
    await c.process("default/b")  # the worker's turn: failure is retried, never raised
    assert ("SyncLoadBalancerFailed", "Error syncing load balancer: failed to ensure load "
            "balancer: no free address") in h.events()
    assert c.queue.failures("default/b") == 1
    assert len(status_patches(h)) == 1  # b stays Pending; a got its address


async def test_deletion_releases_then_removes_the_finalizer_and_retries_waiting() -> None:
    h, c, cloud = setup(svc("a", finalizer=True, ingress=["10.0.0.1"], deleting=True),
                        svc("b", finalizer=True), addresses=())
    cloud.balancers["default/a"] = "10.0.0.1"
    await c.sync("default/a")
    assert h.client.actions() == [("update", "services", "a")]
    assert h.client.bodies("update", "services")[0]["metadata"]["finalizers"] == []
    assert [r for r, _ in h.events()] == ["DeletingLoadBalancer", "DeletedLoadBalancer"]
    assert cloud.addresses == ["10.0.0.1"] and "default/b" in c.queue._dirty


async def test_type_change_releases_the_address_and_clears_the_status() -> None:
    h, c, cloud = setup(svc("a", type_="ClusterIP", finalizer=True, ingress=["10.0.0.1"]))
    cloud.balancers["default/a"] = "10.0.0.1"
    await c.sync("default/a")
    assert h.client.actions() == [("update", "services", "a"), ("patch", "services/status", "a")]
    assert status_patches(h) == [{"status": {"loadBalancer": {"ingress": None}}}]
    assert cloud.balancers == {}


async def test_load_balancer_class_is_someone_elses() -> None:
    h, c, cloud = setup(svc("a", lb_class="example.com/lb", ingress=["192.0.2.9"]))
    c._added(h.informers.lister(SERVICES).get("default", "a") or {})
    assert len(c.queue) == 0
    await c.sync("default/a")
    assert h.client.actions() == [] and cloud.calls == []


async def test_a_service_gone_without_our_cleanup_is_released() -> None:
    h, c, cloud = setup()
    cloud.balancers["default/a"] = "10.0.0.9"
    c._deleted(svc("a", finalizer=True, ingress=["10.0.0.9"]))
    await c.sync("default/a")
    assert cloud.balancers == {} and [r for r, _ in h.events()] == [
        "DeletingLoadBalancer", "DeletedLoadBalancer"]


async def test_gone_finalizer_update_is_not_an_error() -> None:
    h, c, cloud = setup(svc("a", finalizer=True, deleting=True))
    cloud.balancers["default/a"] = "10.0.0.1"
    h.client.fail[("update", "services")] = errors.NotFound("gone")
    await c.sync("default/a")
    assert cloud.balancers == {}


async def test_only_spec_and_metadata_changes_requeue() -> None:
    _, c, _ = setup()
    old = svc("a", finalizer=True)
    c._updated(old, svc("a", finalizer=True, ingress=["10.0.0.1"]))  # a status write
    assert len(c.queue) == 0
    changed = svc("a", finalizer=True)
    changed["spec"]["loadBalancerIP"] = "10.0.0.2"
    c._updated(old, changed)
    assert len(c.queue) == 1


async def test_warm_up_asks_about_every_load_balancer_oldest_first() -> None:
    _, c, cloud = setup(svc("new", created=10), svc("old", finalizer=True),
                        svc("plain", type_="ClusterIP"))
    await c.warm_up()
    assert cloud.calls == [("get_load_balancer", "default/old"),
                           ("get_load_balancer", "default/new")]


async def test_node_changes_update_every_load_balancer() -> None:
    h, c, cloud = setup(svc("a", finalizer=True, ingress=["10.0.0.1"]), svc("p"), node("n1"))
    c.hosts = ["n1"]
    assert await c.update_load_balancer_hosts()
    assert cloud.calls == []  # nothing changed
    h.cache(NODES, node("n2"))
    c._node_changed(node("n2"))
    assert c.hosts_changed.is_set()
    cloud.fail["update_load_balancer"] = RuntimeError("api down")
    assert not await c.update_load_balancer_hosts()
    assert h.events()[-1] == ("UpdateLoadBalancerFailed", "Error updating load balancer with "
                              "new hosts ['n1', 'n2']: api down")
    del cloud.fail["update_load_balancer"]
    assert await c.update_load_balancer_hosts()
    assert c.hosts == ["n1", "n2"] and h.events()[-1][0] == "UpdatedLoadBalancer"
    assert cloud.calls.count(("update_load_balancer", "default/a")) == 2


def test_eligible_nodes() -> None:
    deleting = node("d")
    deleting["metadata"]["deletionTimestamp"] = stamp()
    tainted = node("t")
    tainted["spec"]["taints"] = [{"key": helper.TO_BE_DELETED_TAINT, "effect": "NoSchedule"}]
    chosen = helper.eligible_nodes([node("b"), node("x", excluded=True), deleting, tainted,
                                    node("a")])
    assert helper.node_names(chosen) == ["a", "b"]


async def test_a_status_written_but_not_yet_seen_is_not_written_twice() -> None:
    h, c, _ = setup(svc("web"))
    await c.sync("default/web")
    assert c.written_rv["default/web"] == 2  # what the fake's status patch answered
    seen = svc("web", finalizer=True)  # the finalizer's update (revision 2) seen, not the status
    seen["metadata"]["resourceVersion"] = "1"
    h.cache(SERVICES, seen)
    await c.sync("default/web")
    assert len(status_patches(h)) == 1
    seen["metadata"]["resourceVersion"] = "5"  # newer, still without ingress: cleared by someone
    await c.sync("default/web")
    assert len(status_patches(h)) == 2
