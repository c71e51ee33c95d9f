"""The desired IPVS state and the diff against the kernel's, over plain data (golden lists)."""

from __future__ import annotations

from netproxy.ipvs.state import (
    IPVSOptions,
    IPVSState,
    Op,
    RealServer,
    VirtualServer,
    VirtualServerKey,
    desired,
    diff,
)
from netproxy.model import Endpoint, ServicePort, ServicePortName

WEB = ServicePortName("ns", "web", "")
DNS = ServicePortName("ns", "dns", "dns", "UDP")
OPTIONS = IPVSOptions("node1", "rr", nodeport_addresses=("192.168.1.5",))


def port(name: ServicePortName, ip: str, number: int, **kw: object) -> ServicePort:
    return ServicePort(name, ip, number, name.protocol, **kw)  # type: ignore[arg-type]


def golden(state: IPVSState) -> list[str]:
    """One line per virtual server with its real servers, then the bound addresses."""
    lines = [f"{state.servers[k]} [{state.servers[k].service}]: "
             + ", ".join(str(r) for r in sorted(state.reals[k])) for k in sorted(state.servers)]
    return [*lines, "bound: " + " ".join(sorted(state.addresses))]


def test_cluster_ip_with_ready_endpoints() -> None:
    services = {WEB: port(WEB, "10.96.0.10", 80)}
    endpoints = {WEB: (Endpoint("10.0.1.2", 8080, "node2"), Endpoint("10.0.1.3", 8080, "node1"),
                       Endpoint("10.0.1.4", 8080, "node1", ready=False, serving=False))}
    assert golden(desired(services, endpoints, OPTIONS)) == [
        "TCP/10.96.0.10:80 rr [ns/web]: 10.0.1.2:8080 weight 1, 10.0.1.3:8080 weight 1",
        "bound: 10.96.0.10",
    ]


def test_every_address_shape_with_affinity_and_scheduler() -> None:
    services = {
        WEB: port(WEB, "10.96.0.10", 80, node_port=30080, external_ips=("198.51.100.7",),
                  load_balancer_ips=("203.0.113.5",), sticky_seconds=600),
        DNS: port(DNS, "10.96.0.53", 53),
    }
    endpoints = {WEB: (Endpoint("10.0.1.2", 8080),), DNS: (Endpoint("10.0.2.2", 5353),)}
    state = desired(services, endpoints, IPVSOptions("node1", "sh", ("192.168.1.5", "10.1.0.1")))
    assert golden(state) == [
        "TCP/10.1.0.1:30080 sh persistent 600s [ns/web]: 10.0.1.2:8080 weight 1",
        "TCP/10.96.0.10:80 sh persistent 600s [ns/web]: 10.0.1.2:8080 weight 1",
        "TCP/192.168.1.5:30080 sh persistent 600s [ns/web]: 10.0.1.2:8080 weight 1",
        "TCP/198.51.100.7:80 sh persistent 600s [ns/web]: 10.0.1.2:8080 weight 1",
        "TCP/203.0.113.5:80 sh persistent 600s [ns/web]: 10.0.1.2:8080 weight 1",
        "UDP/10.96.0.53:53 sh [ns/dns:dns]: 10.0.2.2:5353 weight 1",
        "bound: 10.96.0.10 10.96.0.53 198.51.100.7 203.0.113.5",  # NodePort addresses: not ours
    ]


def test_terminating_endpoints_are_a_fallback_only() -> None:
    services = {WEB: port(WEB, "10.96.0.10", 80)}
    terminating = Endpoint("10.0.1.9", 8080, ready=False, serving=True, terminating=True)
    only = desired(services, {WEB: (terminating,)}, OPTIONS)
    assert golden(only)[0] == "TCP/10.96.0.10:80 rr [ns/web]: 10.0.1.9:8080 weight 1"
    mixed = desired(services, {WEB: (terminating, Endpoint("10.0.1.2", 8080))}, OPTIONS)
    assert golden(mixed)[0] == "TCP/10.96.0.10:80 rr [ns/web]: 10.0.1.2:8080 weight 1"


def test_traffic_policy_local_keeps_only_this_nodes_endpoints() -> None:
    endpoints = {WEB: (Endpoint("10.0.1.2", 8080, "node2"), Endpoint("10.0.1.3", 8080, "node1"))}
    external = {WEB: port(WEB, "10.96.0.10", 80, node_port=30080, external_local=True)}
    assert golden(desired(external, endpoints, OPTIONS))[:2] == [
        "TCP/10.96.0.10:80 rr [ns/web]: 10.0.1.2:8080 weight 1, 10.0.1.3:8080 weight 1",
        "TCP/192.168.1.5:30080 rr [ns/web]: 10.0.1.3:8080 weight 1",
    ]
    internal = {WEB: port(WEB, "10.96.0.10", 80, internal_local=True)}
    assert golden(desired(internal, endpoints, OPTIONS))[0] == \
        "TCP/10.96.0.10:80 rr [ns/web]: 10.0.1.3:8080 weight 1"
    elsewhere = {WEB: (Endpoint("10.0.1.2", 8080, "node2"),)}
    assert golden(desired(internal, elsewhere, OPTIONS))[0] == "TCP/10.96.0.10:80 rr [ns/web]: "


def test_no_endpoints_still_makes_the_virtual_server() -> None:
    state = desired({WEB: port(WEB, "10.96.0.10", 80)}, {}, OPTIONS)
    assert golden(state) == ["TCP/10.96.0.10:80 rr [ns/web]: ", "bound: 10.96.0.10"]


def test_a_clash_keeps_the_first_service_port() -> None:
    other = ServicePortName("ns", "other", "")
    services = {WEB: port(WEB, "10.96.0.10", 80, external_ips=("198.51.100.7",)),
                other: port(other, "10.96.0.11", 80, external_ips=("198.51.100.7",))}
    state = desired(services, {}, OPTIONS)
    assert state.servers[VirtualServerKey("TCP", "198.51.100.7", 80)].service == "ns/other"
    assert len(state.servers) == 3


def key(address: str, port: int = 80) -> VirtualServerKey:
    return VirtualServerKey("TCP", address, port)


def state(*servers: tuple[VirtualServer, tuple[RealServer, ...]]) -> IPVSState:
    return IPVSState({s.key: s for s, _ in servers}, {s.key: frozenset(r) for s, r in servers})


def names(ops: list[Op]) -> list[str]:
    return [str(op) for op in ops]


def test_diff_from_empty_adds_servers_before_their_reals() -> None:
    wanted = state((VirtualServer(key("10.96.0.10")), (RealServer("10.0.1.2", 8080),
                                                      RealServer("10.0.1.3", 8080))))
    assert names(diff(state(), wanted, set())) == [
        "add-server TCP/10.96.0.10:80 rr",
        "add-real TCP/10.96.0.10:80 -> 10.0.1.2:8080 weight 1",
        "add-real TCP/10.96.0.10:80 -> 10.0.1.3:8080 weight 1",
    ]


def test_diff_is_minimal() -> None:
    a, b, c = RealServer("10.0.1.2", 8080), RealServer("10.0.1.3", 8080), RealServer("10.0.1.4", 80)
    current = state((VirtualServer(key("10.96.0.10")), (a, b)),
                    (VirtualServer(key("10.96.0.11")), (c,)),
                    (VirtualServer(key("10.96.0.12")), ()),
                    (VirtualServer(key("192.0.2.1")), (c,)))  # someone else's
    wanted = state((VirtualServer(key("10.96.0.10")), (a, RealServer("10.0.1.3", 8080, 2))),
                   (VirtualServer(key("10.96.0.11"), "rr", 10800), (c,)),
                   (VirtualServer(key("10.96.0.13"), "lc"), (c,)))
    owned = {key("10.96.0.10"), key("10.96.0.11"), key("10.96.0.12")}
    assert names(diff(current, wanted, owned)) == [
        "update-server TCP/10.96.0.11:80 rr persistent 10800s",
        "add-server TCP/10.96.0.13:80 lc",
        "update-real TCP/10.96.0.10:80 -> 10.0.1.3:8080 weight 2",
        "add-real TCP/10.96.0.13:80 -> 10.0.1.4:80 weight 1",
        "delete-server TCP/10.96.0.12:80",
    ]
    assert diff(wanted, wanted, owned) == []


def test_diff_replaces_endpoints_and_changes_schedulers() -> None:
    old, new = RealServer("10.0.1.2", 8080), RealServer("10.0.1.5", 8080)
    current = state((VirtualServer(key("10.96.0.10"), "rr"), (old,)))
    wanted = state((VirtualServer(key("10.96.0.10"), "sh"), (new,)))
    assert names(diff(current, wanted, {key("10.96.0.10")})) == [
        "update-server TCP/10.96.0.10:80 sh",
        "delete-real TCP/10.96.0.10:80 -> 10.0.1.2:8080 weight 1",
        "add-real TCP/10.96.0.10:80 -> 10.0.1.5:8080 weight 1",
    ]
