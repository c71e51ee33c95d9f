"""Endpoints controller: given services and pods in the caches, expect these Endpoints writes."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client.rest import ENDPOINTS, PODS, SERVICES
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.endpoints.util import TriggerTimeTracker, find_port, format_time
from controlplane.controllers.testing import NOW, Harness, build, harness, pod, stamp

Object = dict[str, Any]
LABELS = {"app": "web"}
HTTP = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def service(name: str = "web", *, selector: dict[str, str] | None = None,
            ports: list[Object] | None = None, cluster_ip: str = "10.96.0.10",
            labels: dict[str, str] | None = None, **spec: Any) -> Object:
    body: Object = {"clusterIP": cluster_ip, "ports": ports if ports is not None else [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}], **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "resourceVersion": "1", "labels": dict(labels or {}),
                         "creationTimestamp": stamp(-100)},
            "spec": body}


def backend(name: str, ip: str, *, ready: bool = True, node: str = "n1",
            ports: list[Object] | None = None, ready_since: int = 0, **kw: Any) -> Object:
    p = pod(name, LABELS, phase="Running", ready=ready, node=node, ready_since=ready_since,
            **kw)
    p["status"].update(podIP=ip, podIPs=[{"ip": ip}])
    if not ready:
        p["status"]["conditions"] = [{"type": "Ready", "status": "False",
                                      "lastTransitionTime": stamp(ready_since)}]
    p["spec"]["containers"][0]["ports"] = HTTP if ports is None else ports
    return p


def address(name: str, ip: str, node: str = "n1") -> Object:
    return {"ip": ip, "nodeName": node, "targetRef": {
        "kind": "Pod", "namespace": "default", "name": name, "uid": f"uid-{name}"}}


def setup(svc: Object, *pods: Object, endpoints: Object | None = None
          ) -> tuple[Harness, EndpointsController]:
    h = harness()
    h.cache(SERVICES, svc)
    h.cache(PODS, *pods)
    if endpoints is not None:
        h.cache(ENDPOINTS, endpoints)
    return h, build(h, EndpointsController)


async def test_ready_and_not_ready_pods_with_named_ports_resolved_per_pod() -> None:
    other_port = [{"name": "http", "containerPort": 9090}]
    h, c = setup(service(selector=LABELS),
                 backend("a", "10.244.0.5"), backend("b", "10.244.1.7", ports=other_port),
                 backend("c", "10.244.0.9", ready=False),
                 backend("d", "10.244.0.3", ports=[]),  # no port named http: left out
                 backend("e", "", ready=True))  # no IP yet
    await c.sync("default/web")
    assert h.client.actions() == [("create", "endpoints", "web")]
    [ep] = h.client.bodies("create", "endpoints")
    assert ep["metadata"]["name"] == "web" and ep["metadata"]["labels"] == {}
    assert ep["subsets"] == [
        {"addresses": [address("a", "10.244.0.5")],
         "notReadyAddresses": [address("c", "10.244.0.9")],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        {"addresses": [address("b", "10.244.1.7")],
         "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]},
    ]
    # a new service: its creation time is the trigger
    assert ep["metadata"]["annotations"] == {
        "endpoints.kubernetes.io/last-change-trigger-time": stamp(-100)}


async def test_numeric_target_port_and_several_ports_share_a_subset() -> None:
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
             {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]
    h, c = setup(service(selector=LABELS, ports=ports), backend("a", "10.244.0.5"))
    await c.sync("default/web")
    [ep] = h.client.bodies("create", "endpoints")
    assert ep["subsets"] == [{"addresses": [address("a", "10.244.0.5")], "ports": [
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "http", "port": 8080, "protocol": "TCP"}]}]


async def test_publish_not_ready_addresses_and_terminating_pods() -> None:
    pods = [backend("a", "10.244.0.5", ready=False), backend("b", "10.244.0.6", deleting=True)]
    h, c = setup(service(selector=LABELS, publishNotReadyAddresses=True), *pods)
    await c.sync("default/web")
    assert [a["ip"] for a in h.client.bodies("create", "endpoints")[0]["subsets"][0][
        "addresses"]] == ["10.244.0.5", "10.244.0.6"]
    h, c = setup(service(selector=LABELS), *pods)
    await c.sync("default/web")
    [subset] = h.client.bodies("create", "endpoints")[0]["subsets"]
    assert "addresses" not in subset and [a["ip"] for a in subset["notReadyAddresses"]] == [
        "10.244.0.5"]


async def test_headless_without_ports_gets_addresses_and_the_headless_label() -> None:
    h, c = setup(service(selector=LABELS, ports=[], cluster_ip="None", labels={"tier": "db"}),
                 backend("a", "10.244.0.5"))
    await c.sync("default/web")
    [ep] = h.client.bodies("create", "endpoints")
    assert ep["subsets"] == [{"addresses": [address("a", "10.244.0.5")]}]
    assert ep["metadata"]["labels"] == {"tier": "db", "service.kubernetes.io/headless": ""}


async def test_no_selector_or_external_name_is_left_alone_and_gone_service_deletes() -> None:
    h, c = setup(service(selector=None), backend("a", "10.244.0.5"))
    await c.sync("default/web")
    h.cache(SERVICES, service("ext", selector=LABELS, type="ExternalName"))
    await c.sync("default/ext")
    assert h.client.actions() == []
    await c.sync("default/gone")
    assert h.client.actions() == [("delete", "endpoints", "gone")]  # NotFound is fine


async def test_unchanged_endpoints_are_not_written_changed_ones_are_updated() -> None:
    svc = service(selector=LABELS)
    current = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                            "labels": {}},
               "subsets": [{"addresses": [address("a", "10.244.0.5")],
                            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
    a = backend("a", "10.244.0.5")
    h, c = setup(svc, a, endpoints=current)
    await c.sync("default/web")
    assert h.client.actions() == []
    # pod a becomes not ready 30s later: one update, with the readiness change as trigger
    unready = backend("a", "10.244.0.5", ready=False, ready_since=30)
    h.cache(PODS, unready)
    c._pod_updated(a, dict(unready, metadata=dict(unready["metadata"], resourceVersion="2")))
    assert "default/web" in c.queue._dirty
    await c.sync("default/web")
    assert h.client.actions() == [("update", "endpoints", "web")]
    [ep] = h.client.bodies("update", "endpoints")
    assert ep["metadata"]["resourceVersion"] == "7"
    assert ep["subsets"][0]["notReadyAddresses"] == [address("a", "10.244.0.5")]
    assert ep["metadata"]["annotations"] == {
        "endpoints.kubernetes.io/last-change-trigger-time": stamp(30)}
    # the cache still shows resourceVersion 7: that sync must wait for the watch
    with pytest.raises(Exception, match="out of date"):
        await c.sync("default/web")


async def test_a_create_racing_the_watch_waits_for_the_cache() -> None:
    h, c = setup(service(selector=LABELS), backend("a", "10.244.0.5"))
    h.client.fail[("create", "endpoints")] = errors.AlreadyExists("endpoints exists")
    with pytest.raises(Exception, match="the cache is behind"):
        await c.sync("default/web")
    assert h.events() == []  # a race, not a failure worth an event
    del h.client.fail[("create", "endpoints")]
    await c.sync("default/web")
    [failed, written] = h.client.bodies("create", "endpoints")
    # the retry still carries the trigger time the failed write was meant to carry
    assert written["metadata"]["annotations"] == failed["metadata"]["annotations"] == {
        "endpoints.kubernetes.io/last-change-trigger-time": stamp(-100)}
    with pytest.raises(Exception, match="out of date"):
        await c.sync("default/web")  # the watch has not shown our Endpoints yet


async def test_a_failed_write_records_an_event_and_raises() -> None:
    h, c = setup(service(selector=LABELS), backend("a", "10.244.0.5"))
    h.client.fail[("create", "endpoints")] = errors.Invalid("bad")
    with pytest.raises(errors.Invalid):
        await c.sync("default/web")
    assert h.events() == [("FailedToCreateEndpoint",
                           "Failed to create endpoint default/web: bad")]


async def test_over_capacity_is_truncated_and_marked() -> None:
    pods = [backend(f"p{i}", f"10.244.{i // 200}.{i % 200 + 1}") for i in range(1001)]
    h, c = setup(service(selector=LABELS), *pods)
    await c.sync("default/web")
    [ep] = h.client.bodies("create", "endpoints")
    assert sum(len(s["addresses"]) for s in ep["subsets"]) == 1000
    assert ep["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"] == "truncated"


async def test_pod_handlers_enqueue_the_services_selecting_the_pod() -> None:
    h, c = setup(service(selector=LABELS))
    h.cache(SERVICES, service("other", selector={"app": "db"}))
    a = backend("a", "10.244.0.5")
    c._pod_added(a)
    assert c.queue._dirty == {"default/web"}
    relabeled = dict(a, metadata=dict(a["metadata"], labels={"app": "db"}, resourceVersion="2"))
    c.queue._dirty.clear()
    c.queue._queue.clear()
    c._pod_updated(a, relabeled)
    assert c.queue._dirty == {"default/web", "default/other"}


def test_find_port_and_trigger_times() -> None:
    p = backend("a", "10.244.0.5", ports=[{"name": "dns", "containerPort": 53,
                                           "protocol": "UDP"}])
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert find_port(p, {"port": 53, "targetPort": "dns"}) is None  # TCP by default
    assert find_port(p, {"port": 80}) == 80
    tracker = TriggerTimeTracker()
    svc = service(selector=LABELS)
    first, state = tracker.compute("k", svc, [p])
    assert first is not None
    assert tracker.compute("k", svc, [p])[0] == first  # not saved: the write failed
    tracker.save("k", state)
    assert tracker.compute("k", svc, [p])[0] is None  # nothing changed since
    assert format_time(NOW.replace(microsecond=250000)) == "2025-01-01T12:00:00.25Z"
