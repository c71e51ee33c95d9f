"""Change trackers: events only record; checkout merges and reports what changed."""

from __future__ import annotations

from typing import Any

from netproxy.model import Endpoint, ServicePort, ServicePortName
from netproxy.tracker import EndpointsChangeTracker, ServiceChangeTracker


def svc(name: str, ip: str = "10.96.0.10", port: int = 80, protocol: str = "TCP"
        ) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": port, "protocol": protocol}]}}


def eps(name: str, service: str, *addresses: str, ready: bool = True, port: int = 8080
        ) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"port": port, "protocol": "UDP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": ready}}
                          for a in addresses]}


def test_a_change_that_reverts_before_the_sync_costs_nothing() -> None:
    tracker = ServiceChangeTracker()
    assert tracker.update(None, svc("a"))
    services: dict[ServicePortName, ServicePort] = {}
    assert tracker.checkout(services).changed == {"ns/a"}
    assert not tracker.update(svc("a"), svc("a"))  # a resync: nothing changed
    assert tracker.update(svc("a"), svc("a", port=81))
    assert not tracker.update(svc("a", port=81), svc("a"))
    assert tracker.checkout(services).changed == set()
    assert [p.port for p in services.values()] == [80]


def test_deleted_udp_services_report_their_cluster_ip() -> None:
    tracker = ServiceChangeTracker()
    tracker.update(None, svc("dns", "10.96.0.53", 53, "UDP"))
    tracker.update(None, svc("web"))
    services: dict[ServicePortName, ServicePort] = {}
    tracker.checkout(services)
    tracker.update(svc("dns", "10.96.0.53", 53, "UDP"), None)
    tracker.update(svc("web"), None)
    update = tracker.checkout(services)
    assert update.changed == {"ns/dns", "ns/web"} and update.deleted_udp_ips == {"10.96.0.53"}
    assert services == {}


def test_endpoints_merge_across_slices_dedup_and_sort() -> None:
    tracker = EndpointsChangeTracker()
    tracker.update(None, eps("s-b", "s", "10.0.0.10", "10.0.0.2"))
    tracker.update(None, eps("s-a", "s", "10.0.0.2", ready=False))
    endpoints: dict[ServicePortName, tuple[Endpoint, ...]] = {}
    tracker.checkout(endpoints)
    (spn, eps_), = endpoints.items()
    assert str(spn) == "ns/s" and spn.protocol == "UDP"
    assert [(str(e), e.ready) for e in eps_] == [("10.0.0.10:8080", True),
                                                ("10.0.0.2:8080", True)]


def test_a_slice_relabelled_to_another_service_changes_both() -> None:
    tracker = EndpointsChangeTracker()
    endpoints: dict[ServicePortName, tuple[Endpoint, ...]] = {}
    tracker.update(None, eps("x", "one", "10.0.0.1"))
    tracker.checkout(endpoints)
    tracker.update(eps("x", "one", "10.0.0.1"), eps("x", "two", "10.0.0.1"))
    update = tracker.checkout(endpoints)
    assert update.changed == {"ns/one", "ns/two"}
    assert [str(s) for s in endpoints] == ["ns/two"]


def test_stale_udp_endpoints_and_services_that_got_their_first() -> None:
    tracker = EndpointsChangeTracker()
    endpoints: dict[ServicePortName, tuple[Endpoint, ...]] = {}
    tracker.update(None, eps("d", "dns", "10.0.0.1", "10.0.0.2"))
    first = tracker.checkout(endpoints)
    assert [str(s) for s in first.new_udp_services] == ["ns/dns"]
    tracker.update(eps("d", "dns", "10.0.0.1", "10.0.0.2"), eps("d", "dns", "10.0.0.2"))
    second = tracker.checkout(endpoints)
    assert [(str(s), str(e)) for s, e in second.stale_endpoints] == [("ns/dns",
                                                                      "10.0.0.1:8080")]
    tracker.update(eps("d", "dns", "10.0.0.2"), None)
    third = tracker.checkout(endpoints)
    assert [str(e) for _, e in third.stale_endpoints] == ["10.0.0.2:8080"]
    assert endpoints == {}


def test_unusable_slices_are_ignored() -> None:
    tracker = EndpointsChangeTracker()
    no_label = eps("x", "s", "10.0.0.1")
    del no_label["metadata"]["labels"]
    ipv6 = {**eps("y", "s", "fd00::1"), "addressType": "IPv6"}
    garbage = {"metadata": {"namespace": "ns", "name": "z",
                            "labels": {"kubernetes.io/service-name": "s"}},
               "ports": "nope", "endpoints": [{"addresses": ["not-an-ip"]}, 7]}
    assert not tracker.update(None, no_label)
    assert not tracker.update(None, ipv6)
    assert not tracker.update(None, garbage)
