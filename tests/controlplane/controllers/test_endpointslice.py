"""EndpointSlice controller: given services, pods, nodes and slices, expect these slice writes."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.client.rest import ENDPOINTSLICES, NODES, PODS, SERVICES
from controlplane.controllers.endpointslice import EndpointSliceController
from controlplane.controllers.endpointslice.reconciler import (
    Desired,
    endpoint_key,
    reconcile,
)
from controlplane.controllers.testing import Harness, build, harness, pod, stamp

Object = dict[str, Any]
MANAGED = {"kubernetes.io/service-name": "web",
           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
OWNER = [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web",
          "controller": True, "blockOwnerDeletion": True}]
HTTP_8080 = [{"name": "http", "port": 8080, "protocol": "TCP"}]
LABELS = {"app": "web"}


def service(name: str = "web", *, selector: dict[str, str] | None = None,
            cluster_ip: str = "10.96.0.10", labels: dict[str, str] | None = None,
            ports: list[Object] | None = None) -> Object:
    spec: Object = {"clusterIP": cluster_ip, "ports": ports if ports is not None else [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "resourceVersion": "1", "labels": dict(labels or {}),
                         "creationTimestamp": stamp(-100)}, "spec": spec}


def backend(name: str, ip: str, *, ready: bool = True, node: str = "n1",
            deleting: bool = False) -> Object:
    p = pod(name, LABELS, phase="Running", ready=ready, node=node, deleting=deleting)
    p["status"].update(podIP=ip, podIPs=[{"ip": ip}])
    p["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8080}]
    return p


def node(name: str, zone: str = "") -> Object:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels,
                         "creationTimestamp": stamp()}}


def endpoint(name: str, ip: str, *, ready: bool = True, serving: bool = True,
             terminating: bool = False, node_name: str = "n1", **extra: Any) -> Object:
    return {"addresses": [ip],
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": "default", "name": name,
                          "uid": f"uid-{name}"},
            "nodeName": node_name, **extra}


def existing(name: str, endpoints: list[Object], ports: list[Object] | None = None,
             rv: str = "5") -> Object:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv,
                         "labels": dict(MANAGED), "ownerReferences": OWNER},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": HTTP_8080 if ports is None else ports}


def setup(svc: Object, *pods: Object, slices: tuple[Object, ...] = (),
          nodes: tuple[Object, ...] = (node("n1", "z1"),)) -> tuple[Harness, Any]:
    h = harness()
    h.cache(SERVICES, svc)
    h.cache(PODS, *pods)
    h.cache(NODES, *nodes)
    h.cache(ENDPOINTSLICES, *slices)
    return h, build(h, EndpointSliceController)


async def test_a_slice_per_service_with_conditions_ports_labels_and_owner() -> None:
    h, c = setup(service(selector=LABELS, labels={"team": "a"}),
                 backend("a", "10.244.0.5"), backend("b", "10.244.0.6", ready=False),
                 backend("t", "10.244.0.7", deleting=True))
    await c.sync("default/web")
    assert h.client.actions() == [("create", "endpointslices", "web-00001")]
    [s] = h.client.bodies("create", "endpointslices")
    assert s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["labels"] == {"team": "a", **MANAGED}
    assert s["metadata"]["ownerReferences"] == OWNER
    assert s["metadata"]["annotations"] == {
        "endpoints.kubernetes.io/last-change-trigger-time": stamp(-100)}
    assert s["addressType"] == "IPv4" and s["ports"] == HTTP_8080
    assert s["endpoints"] == [
        endpoint("a", "10.244.0.5", zone="z1"),
        endpoint("b", "10.244.0.6", ready=False, serving=False, zone="z1"),
        endpoint("t", "10.244.0.7", ready=False, terminating=True, zone="z1"),
    ]


async def test_unchanged_slices_are_left_and_changed_endpoints_updated_in_place() -> None:
    current = existing("web-abc", [endpoint("a", "10.244.0.5", zone="z1"),
                                   endpoint("gone", "10.244.0.99", zone="z1")])
    h, c = setup(service(selector=LABELS), backend("a", "10.244.0.5"), slices=(current,))
    await c.sync("default/web")
    assert h.client.actions() == [("update", "endpointslices", "web-abc")]
    [s] = h.client.bodies("update", "endpointslices")
    assert s["metadata"]["resourceVersion"] == "5"
    assert s["endpoints"] == [endpoint("a", "10.244.0.5", zone="z1")]
    # the cache has not caught up with our write: no second write until it does
    with pytest.raises(Exception, match="out of date"):
        await c.sync("default/web")
    h.cache(ENDPOINTSLICES, dict(s, metadata=dict(s["metadata"], resourceVersion="6")))
    await c.sync("default/web")
    assert len(h.client.actions()) == 1


async def test_a_service_without_endpoints_keeps_one_placeholder() -> None:
    h, c = setup(service(selector=LABELS))
    await c.sync("default/web")
    [s] = h.client.bodies("create", "endpointslices")
    assert s["endpoints"] == [] and s["ports"] == []
    placeholder = dict(s, metadata=dict(s["metadata"], name="web-p", resourceVersion="3"))
    h2, c2 = setup(service(selector=LABELS), slices=(placeholder,))
    await c2.sync("default/web")
    assert h2.client.actions() == []
    # the last endpoint goes: its slice becomes the placeholder (an update, not delete+create)
    h3, c3 = setup(service(selector=LABELS),
                   slices=(existing("web-x", [endpoint("a", "10.244.0.5", zone="z1")]),))
    await c3.sync("default/web")
    assert h3.client.actions() == [("update", "endpointslices", "web-x")]
    [s3] = h3.client.bodies("update", "endpointslices")
    assert s3["endpoints"] == [] and s3["ports"] == [] and "generateName" not in s3["metadata"]


async def test_at_most_max_endpoints_per_slice() -> None:
    pods = [backend(f"p{i:03d}", f"10.244.1.{i + 1}") for i in range(250)]
    h, c = setup(service(selector=LABELS), *pods)
    await c.sync("default/web")
    sizes = [len(s["endpoints"]) for s in h.client.bodies("create", "endpointslices")]
    assert sizes == [100, 100, 50]


async def test_pods_on_unknown_nodes_are_skipped_and_the_service_retried() -> None:
    h, c = setup(service(selector=LABELS), backend("a", "10.244.0.5"),
                 backend("b", "10.244.0.6", node="nowhere"))
    with pytest.raises(Exception, match="skipped pods on unknown nodes: b"):
        await c.sync("default/web")
    [s] = h.client.bodies("create", "endpointslices")
    assert [e["targetRef"]["name"] for e in s["endpoints"]] == ["a"]


async def test_a_deleted_service_loses_its_slices_and_others_slices_are_ignored() -> None:
    foreign = existing("web-mirror", [])
    foreign["metadata"]["labels"] = {"kubernetes.io/service-name": "web",
                                     "endpointslice.kubernetes.io/managed-by": "someone"}
    h, c = setup(service("other", selector=LABELS),
                 slices=(existing("web-abc", []), foreign))
    await c.sync("default/web")
    assert h.client.actions() == [("delete", "endpointslices", "web-abc")]


async def test_no_selector_is_left_alone_and_headless_gets_its_label() -> None:
    h, c = setup(service(selector=None), backend("a", "10.244.0.5"))
    await c.sync("default/web")
    assert h.client.actions() == []
    h, c = setup(service(selector=LABELS, cluster_ip="None", ports=[]),
                 backend("a", "10.244.0.5"))
    await c.sync("default/web")
    creates = h.client.bodies("create", "endpointslices")
    assert [s["addressType"] for s in creates] == ["IPv4", "IPv6"]
    assert creates[0]["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert creates[0]["ports"] == [] and len(creates[0]["endpoints"]) == 1
    assert creates[1]["endpoints"] == []  # the IPv6 placeholder


def test_reconcile_fills_an_unchanged_slice_with_room_before_creating() -> None:
    svc = service(selector=LABELS)
    old = [endpoint(f"p{i}", f"10.0.0.{i}") for i in range(1, 4)]
    new = endpoint("q", "10.0.1.1")
    group = Desired(HTTP_8080, {endpoint_key(e): e for e in [*old, new]})
    plan = reconcile(svc, {"IPv4": {(("http", 8080, "TCP", ""),): group}},
                     [existing("web-a", old)], max_per_slice=5)
    assert plan.create == [] and plan.delete == []
    assert [e["targetRef"]["name"] for e in plan.update[0]["endpoints"]] == [
        "p1", "p2", "p3", "q"]
