"""What netproxy keeps of the objects it watches, and the memory-minded wiring around it.

The transforms must leave every reader's view unchanged (the proxier's parsed ports and
endpoints, the DNS records, the pod routes, the health checks) while dropping the rest; the
cluster DNS must run on the daemon's informers without starting or stopping them; the health
servers load prometheus_client only when metrics are served.
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.client.informer import Informer, key_of
from controlplane.client.rest import ENDPOINTSLICES, SERVICES
from netproxy import healthcheck as hc
from netproxy import objects
from netproxy.conntrack import FakeConntrack
from netproxy.dns.main import ClusterDNS, DNSConfig
from netproxy.dns.records import ClusterRecords
from netproxy.fake_iptables import FakeIptables
from netproxy.model import parse_service, parse_slice
from netproxy.proxier import Proxier, ProxierConfig
from netproxy.routes import FakeNetlink, desired_routes, internal_ip

NOISE = {"uid": "0b5d3c1e-6a7f-4c1e-9a55-3c2b8d7e0f11", "creationTimestamp": "2026-01-01T00:00:00Z",
         "generation": 3, "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]}


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "ns", "name": name, "resourceVersion": "7",
                         "labels": {"app": name}, **NOISE},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                     "clusterIPs": ["10.96.0.10"], "externalTrafficPolicy": "Local",
                     "healthCheckNodePort": 30100, "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "targetPort": "web", "nodePort": 30080}], **spec},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}


def endpoint_slice(service_name: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "ns", "name": f"{service_name}-x", "resourceVersion": "8",
                         "labels": {"kubernetes.io/service-name": service_name}, **NOISE},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.64.1.5"], "hostname": "web-0", "nodeName": "n1",
                           "zone": "z", "conditions": {"ready": True, "serving": True},
                           "targetRef": {"kind": "Pod", "namespace": "ns", "name": "web-0",
                                         "uid": "9f6c"}},
                          {"addresses": ["10.64.2.6"], "nodeName": "n2",
                           "conditions": {"ready": False, "terminating": True}}]}


def node(name: str, cidr: str, ip: str, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": "9", **NOISE}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta,
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "images": [{"names": ["busybox:1"], "sizeBytes": 1}] * 50,
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0"}}}


def test_the_readers_see_the_same_objects_slimmed() -> None:
    services = [service("web"), service("headless", clusterIP="None", clusterIPs=["None"])]
    slices = [endpoint_slice("web"), endpoint_slice("headless")]
    nodes = [node("n1", "10.64.1.0/24", "192.168.1.1"),
             node("n2", "10.64.2.0/24", "192.168.1.2", deleting=True)]
    slim_services = [objects.service(copy.deepcopy(o)) for o in services]
    slim_slices = [objects.endpoint_slice(copy.deepcopy(o)) for o in slices]
    slim_nodes = [objects.node(copy.deepcopy(o)) for o in nodes]
    for full, slim in zip(services, slim_services, strict=True):
        assert parse_service(slim) == parse_service(full)
        assert hc.health_check_node_port(slim) == hc.health_check_node_port(full) == 30100
        assert key_of(slim) == key_of(full)
    for full, slim in zip(slices, slim_slices, strict=True):
        assert parse_slice(slim) == parse_slice(full)
    before = ClusterRecords.build(services, slices)
    after = ClusterRecords.build(slim_services, slim_slices)
    for name, qtype in (("web.ns.svc.cluster.local.", "A"), ("headless.ns.svc.cluster.local.", "A"),
                        ("web-0.headless.ns.svc.cluster.local.", "A"),
                        ("_http._tcp.web.ns.svc.cluster.local.", "SRV")):
        assert after.resolve(name, qtype) == before.resolve(name, qtype)
    assert desired_routes(slim_nodes, "n0") == desired_routes(nodes, "n0")
    assert [internal_ip(n) for n in slim_nodes] == ["192.168.1.1", "192.168.1.2"]
    assert [hc.node_eligible(n) for n in slim_nodes] == [True, False]


def test_what_is_dropped() -> None:
    slim = objects.service(service("web"))
    assert set(slim) == {"metadata", "spec", "status"}
    assert slim["metadata"] == {"namespace": "ns", "name": "web", "resourceVersion": "7",
                                "labels": {"app": "web"}}
    eps = objects.endpoint_slice(endpoint_slice("web"))
    assert all("targetRef" not in e for e in eps["endpoints"])
    assert eps["endpoints"][0]["hostname"] == "web-0"
    n = objects.node(node("n1", "10.64.1.0/24", "192.168.1.1"))
    assert n["status"] == {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}]}
    assert n["spec"]["podCIDR"] == "10.64.1.0/24"


def test_short_strings_are_shared() -> None:
    a = objects.service(service("a"))
    b = objects.service(service("b"))
    assert a["spec"]["ports"][0]["protocol"] is b["spec"]["ports"][0]["protocol"]
    long = "x" * (objects.INTERN_LENGTH + 1)
    assert objects.intern_values({"k": long})["k"] is long


def test_odd_input_passes_through_for_the_readers_to_reject() -> None:
    junk: Any = "junk"
    assert objects.service(junk) is junk
    assert objects.endpoint_slice({"metadata": None, "endpoints": ["x", None]}) == {
        "metadata": None, "endpoints": ["x", None]}
    assert objects.node({"status": "odd"}) == {"status": "odd"}
    assert objects.service({}) == {}


async def test_cluster_dns_on_the_daemons_informers() -> None:
    services = Informer(None, SERVICES)  # type: ignore[arg-type]  # never started here
    slices = Informer(None, ENDPOINTSLICES)  # type: ignore[arg-type]
    services.store = {"ns/web": objects.service(service("web"))}
    slices.store = {"ns/web-x": objects.endpoint_slice(endpoint_slice("web"))}
    services.synced.set()
    slices.synced.set()
    cluster_dns = ClusterDNS(None, DNSConfig(address="127.0.0.1", port=0),  # type: ignore[arg-type]
                             informers=(services, slices))
    assert (cluster_dns.services, cluster_dns.slices) == (services, slices)
    await cluster_dns.start(sync_timeout=5)
    try:
        answer = cluster_dns.resolve("web.ns.svc.cluster.local.", "A")
        assert answer is not None and [r.data for r in answer.answer] == ["10.96.0.10"]
        services.store = {}
        services._dispatch("delete", service("web"))  # a handler marks the records stale
        answer = cluster_dns.resolve("web.ns.svc.cluster.local.", "A")
        assert answer is not None and answer.rcode == "NXDOMAIN"
    finally:
        await cluster_dns.stop()
    assert services._task is None and slices._task is None  # the daemon's to start and stop


def test_metrics_only_when_served() -> None:
    p = Proxier(ProxierConfig(node_name="n1"), FakeIptables(), FakeConntrack(), FakeNetlink())
    off = hc.NodeServers(hc.HealthConfig(healthz=("127.0.0.1", 1), metrics=None), p, "n1")
    assert off.metrics is None and off.proxy.count is None
    assert [name for name, _ in off.tasks()] == ["health check node ports", "healthz"]
    on = hc.NodeServers(hc.HealthConfig(healthz=("127.0.0.1", 1), metrics=("127.0.0.1", 2)),
                        p, "n1")
    assert on.metrics is not None and on.metrics.observe_sync in p.sync_observers
    assert [name for name, _ in on.tasks()] == ["health check node ports", "healthz", "metrics"]


def test_healthz_and_metrics_each_listen_on_their_own_address(monkeypatch: Any) -> None:
    served: list[tuple[str, tuple[str, int]]] = []

    async def serve(app: object, address: tuple[str, int], what: str) -> None:
        served.append((what, address))

    monkeypatch.setattr(hc, "serve", serve)
    p = Proxier(ProxierConfig(node_name="n1"), FakeIptables(), FakeConntrack(), FakeNetlink())
    servers = hc.NodeServers(hc.HealthConfig(healthz=("127.0.0.1", 1),
                                             metrics=("127.0.0.1", 2)), p, "n1")
    for _, task in servers.tasks()[1:]:
        _run(task())
    assert served == [("healthz", ("127.0.0.1", 1)), ("metrics", ("127.0.0.1", 2))]


def _run(coro: Any) -> None:
    """Run a coroutine that never suspends."""
    try:
        coro.send(None)
    except StopIteration:
        pass
