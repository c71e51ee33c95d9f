"""The proxier end to end over fakes: API objects in, packets traced through the resulting rules.

Each test feeds Services and EndpointSlices (as the informers deliver them) to a Proxier whose
kernel is a FakeIptables, then asks the packet tracer where connections go: which endpoints,
masqueraded or not, REJECT or DROP. No root, no kernel.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netproxy import chains as ch
from netproxy.cleanup import cleanup_rules
from netproxy.conntrack import FakeConntrack
from netproxy.fake_iptables import FakeIptables, Outcome, trace
from netproxy.proxier import Proxier, ProxierConfig
from netproxy.routes import FakeNetlink

NODE_IP = "192.168.1.5"
POD = "10.0.9.9"  # a pod on this node (inside the cluster CIDR)
OUTSIDE = "203.0.113.9"


def service(name: str, ip: str, *ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"clusterIP": ip, "ports": list(ports), **spec}}


def eps(name: str, svc: str, *addresses: str, port: int = 8080, protocol: str = "TCP",
        node: str = "node2", port_name: str = "") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [a], "nodeName": node,
                           "conditions": {"ready": True}} for a in addresses]}


def make(**config: Any) -> tuple[Proxier, FakeIptables, FakeConntrack]:
    ipt, ct = FakeIptables(), FakeConntrack()
    settings: dict[str, Any] = {"node_name": "node1", "cluster_cidr": "10.0.0.0/8",
                                "min_sync_period": 0.0, **config}
    proxier = Proxier(ProxierConfig(**settings), ipt, ct, FakeNetlink([NODE_IP, "127.0.0.1"]))
    proxier.set_synced()
    return proxier, ipt, ct


def go(ipt: FakeIptables, src: str, dst: str, dport: int, **kw: Any) -> list[Outcome]:
    return trace(ipt, src=src, dst=dst, dport=dport, local_ips=[NODE_IP], **kw)


def accepted(*destinations: str, masquerade: bool = False) -> list[Outcome]:
    return [Outcome("ACCEPT", d, masquerade) for d in destinations]


async def test_nothing_is_written_before_both_informers_have_listed() -> None:
    ipt = FakeIptables()
    proxier = Proxier(ProxierConfig(node_name="node1"), ipt, FakeConntrack(), FakeNetlink())
    proxier.on_service(None, service("web", "10.96.0.10", {"port": 80}))
    await proxier.sync()
    assert ipt.restores == []


async def test_first_sync_installs_chains_jumps_and_canaries() -> None:
    proxier, ipt, _ = make()
    await proxier.sync()
    assert ["-m", "comment", "--comment", "kubernetes service portals", "-j",
            "KUBE-SERVICES"] in ipt.tables["nat"]["PREROUTING"]
    assert ipt.tables["nat"]["POSTROUTING"] == [
        ["-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING"]]
    assert all(ch.CANARY in ipt.tables[t] for t in ch.CANARY_TABLES)
    assert proxier.stats.full and proxier.stats.syncs == 1
    await proxier.sync()
    assert len(ipt.tables["nat"]["PREROUTING"]) == 1  # -C || -A: never twice


async def test_cluster_ip_traffic_paths() -> None:
    proxier, ipt, _ = make()
    proxier.on_service(None, service("web", "10.96.0.10", {"port": 80}))
    proxier.on_endpointslice(None, eps("web-1", "web", "10.0.1.1", "10.0.2.1"))
    await proxier.sync()
    both = ("10.0.1.1:8080", "10.0.2.1:8080")
    assert go(ipt, POD, "10.96.0.10", 80) == accepted(*both)
    assert go(ipt, OUTSIDE, "10.96.0.10", 80) == accepted(*both, masquerade=True)
    assert go(ipt, NODE_IP, "10.96.0.10", 80, from_node=True) == accepted(*both,
                                                                          masquerade=True)
    # Hairpin: a pod reaching itself through its service is masqueraded, others are not.
    assert go(ipt, "10.0.1.1", "10.96.0.10", 80) == [
        Outcome("ACCEPT", "10.0.1.1:8080", True), Outcome("ACCEPT", "10.0.2.1:8080", False)]
    assert go(ipt, POD, "10.96.0.10", 81) == accepted("10.96.0.10:81")  # not a service port


async def test_node_port_and_external_ip_paths() -> None:
    proxier, ipt, _ = make()
    proxier.on_service(None, service("np", "10.96.0.11", {"port": 80, "nodePort": 30080},
                                     type="NodePort", externalIPs=["198.51.100.7"]))
    proxier.on_endpointslice(None, eps("np-1", "np", "10.0.1.1"))
    await proxier.sync()
    assert go(ipt, OUTSIDE, NODE_IP, 30080) == accepted("10.0.1.1:8080", masquerade=True)
    assert go(ipt, OUTSIDE, "198.51.100.7", 80) == accepted("10.0.1.1:8080", masquerade=True)
    assert go(ipt, OUTSIDE, "192.168.1.6", 30080) == accepted("192.168.1.6:30080")  # not us


async def test_no_endpoints_rejects_then_endpoints_arrive() -> None:
    proxier, ipt, _ = make()
    proxier.on_service(None, service("np", "10.96.0.11", {"port": 80, "nodePort": 30080},
                                     type="NodePort"))
    await proxier.sync()
    assert go(ipt, POD, "10.96.0.11", 80) == [Outcome("REJECT", "10.96.0.11:80")]
    assert go(ipt, NODE_IP, "10.96.0.11", 80, from_node=True) == [
        Outcome("REJECT", "10.96.0.11:80")]
    assert go(ipt, OUTSIDE, NODE_IP, 30080) == [Outcome("REJECT", f"{NODE_IP}:30080")]
    proxier.on_endpointslice(None, eps("np-1", "np", "10.0.1.1"))
    await proxier.sync()
    assert go(ipt, POD, "10.96.0.11", 80) == accepted("10.0.1.1:8080")


async def test_external_traffic_policy_local_keeps_the_client_address() -> None:
    proxier, ipt, _ = make()
    proxier.on_service(None, service("lb", "10.96.0.12", {"port": 80, "nodePort": 30081},
                                     type="NodePort", externalTrafficPolicy="Local"))
    slice_ = eps("lb-1", "lb", "10.0.2.1")
    slice_["endpoints"].append({"addresses": ["10.0.1.1"], "nodeName": "node1"})
    proxier.on_endpointslice(None, slice_)
    await proxier.sync()
    assert go(ipt, OUTSIDE, NODE_IP, 30081) == accepted("10.0.1.1:8080")
    assert go(ipt, POD, NODE_IP, 30081) == accepted("10.0.1.1:8080", "10.0.2.1:8080")
    assert go(ipt, POD, "10.96.0.12", 80) == accepted("10.0.1.1:8080", "10.0.2.1:8080")


async def test_internal_traffic_policy_local_without_local_endpoints_drops() -> None:
    proxier, ipt, _ = make()
    proxier.on_service(None, service("itp", "10.96.0.13", {"port": 80},
                                     internalTrafficPolicy="Local"))
    proxier.on_endpointslice(None, eps("itp-1", "itp", "10.0.2.1"))
    await proxier.sync()
    assert go(ipt, POD, "10.96.0.13", 80) == [Outcome("DROP", "10.96.0.13:80")]


async def test_partial_syncs_rewrite_only_what_changed() -> None:
    proxier, ipt, _ = make()
    proxier.on_service(None, service("a", "10.96.0.20", {"port": 80}))
    proxier.on_service(None, service("b", "10.96.0.21", {"port": 80}))
    proxier.on_endpointslice(None, eps("a-1", "a", "10.0.1.1"))
    proxier.on_endpointslice(None, eps("b-1", "b", "10.0.1.2"))
    await proxier.sync()
    old = eps("b-1", "b", "10.0.1.2")
    proxier.on_endpointslice(old, eps("b-1", "b", "10.0.1.3"))
    await proxier.sync()
    text = ipt.restores[-1]
    assert not proxier.stats.full
    assert ch.service_chain("ns/a", "tcp") not in text.split("*nat")[1].split("-A ")[0]
    assert f"-X {ch.endpoint_chain('ns/b', 'tcp', '10.0.1.2:8080')}" in text
    assert go(ipt, POD, "10.96.0.20", 80) == accepted("10.0.1.1:8080")
    assert go(ipt, POD, "10.96.0.21", 80) == accepted("10.0.1.3:8080")
    assert not any(c.startswith("KUBE-SEP") and c not in proxier._nat_chains
                   for c in ipt.tables["nat"])


async def test_udp_endpoint_removal_clears_conntrack() -> None:
    proxier, ipt, ct = make()
    dns = {"name": "dns", "port": 53, "protocol": "UDP"}
    proxier.on_service(None, service("dns", "10.96.0.53", dns))
    first = eps("dns-1", "dns", "10.0.1.1", "10.0.1.2", port=53, protocol="UDP",
                port_name="dns")
    proxier.on_endpointslice(None, first)
    await proxier.sync()
    assert ct.deleted == [["--orig-dst", "10.96.0.53", "-p", "udp"]]  # 0 -> some endpoints
    proxier.on_endpointslice(first, eps("dns-1", "dns", "10.0.1.2", port=53, protocol="UDP",
                                        port_name="dns"))
    await proxier.sync()
    assert ct.deleted[1:] == [["--orig-dst", "10.96.0.53", "--dst-nat", "10.0.1.1", "-p", "udp"]]
    proxier.on_service(service("dns", "10.96.0.53", dns), None)
    await proxier.sync()
    assert ct.deleted[2:] == [["--orig-dst", "10.96.0.53", "-p", "udp"]]


async def test_a_failed_restore_is_retried_with_a_full_sync() -> None:
    proxier, ipt, _ = make(retry_period=0.01)
    await proxier.sync()
    proxier.on_service(None, service("web", "10.96.0.10", {"port": 80}))
    ipt.fail_next = "iptables-restore: line 9 failed"
    await proxier.sync()
    assert proxier.stats.failures == 1 and proxier.need_full_sync
    assert proxier.runner.next_run() <= proxier.clock() + 0.02
    await proxier.sync()
    assert proxier.stats.full and not proxier.need_full_sync
    assert go(ipt, POD, "10.96.0.10", 80) == [Outcome("REJECT", "10.96.0.10:80")]


async def test_an_external_flush_is_detected_by_the_canary_and_repaired() -> None:
    proxier, ipt, _ = make(canary_period=0.01)
    proxier.on_service(None, service("web", "10.96.0.10", {"port": 80}))
    proxier.on_endpointslice(None, eps("web-1", "web", "10.0.1.1"))
    await proxier.sync()
    ipt.flush_everything()
    assert go(ipt, POD, "10.96.0.10", 80) == accepted("10.96.0.10:80")
    monitor = asyncio.create_task(proxier.monitor_canary())
    try:
        for _ in range(200):
            if proxier.need_full_sync:
                break
            await asyncio.sleep(0.01)
    finally:
        monitor.cancel()
    assert proxier.need_full_sync
    await proxier.sync()
    assert go(ipt, POD, "10.96.0.10", 80) == accepted("10.0.1.1:8080")
    assert proxier.canary_present()


async def test_one_bad_service_does_not_stop_the_others(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    proxier, ipt, _ = make()
    proxier.on_service(None, service("bad", "10.96.0.300", {"port": 80}))
    proxier.on_service(None, service("badport", "10.96.0.31", {"port": 99999},
                                     {"name": "ok", "port": 80}))
    proxier.on_service(None, {"metadata": {"namespace": "ns", "name": "junk"},
                              "spec": ["not", "a", "dict"]})
    proxier.on_endpointslice(None, eps("badport-1", "badport", "10.0.1.1", port_name="ok"))
    await proxier.sync()
    assert proxier.stats.failures == 0
    assert go(ipt, POD, "10.96.0.31", 80) == accepted("10.0.1.1:8080")
    assert "ns/bad: invalid clusterIP" in caplog.text
    assert "ns/junk: cannot parse it" in caplog.text


async def test_nodeport_addresses_primary_and_cidrs() -> None:
    proxier, ipt, _ = make(nodeport_addresses=("primary", "192.168.0.0/16"))
    proxier.on_node({"metadata": {"name": "node1"},
                     "status": {"addresses": [{"type": "InternalIP", "address": "172.16.0.4"}]}})
    proxier.on_service(None, service("np", "10.96.0.11", {"port": 80, "nodePort": 30080},
                                     type="NodePort"))
    proxier.on_endpointslice(None, eps("np-1", "np", "10.0.1.1"))
    await proxier.sync()
    nodeport_jumps = [r for r in ipt.tables["nat"]["KUBE-SERVICES"] if "KUBE-NODEPORTS" in r]
    assert [r[r.index("-d") + 1] for r in nodeport_jumps] == ["172.16.0.4", NODE_IP]


async def test_cleanup_removes_ours_and_keeps_theirs() -> None:
    proxier, ipt, _ = make(localhost_nodeports=True)
    ipt.ensure_chain("nat", "CNI-HOSTPORT-DNAT")
    ipt.ensure_rule("nat", "PREROUTING", ["-j", "CNI-HOSTPORT-DNAT"])
    proxier.on_service(None, service("web", "10.96.0.10", {"port": 80}))
    proxier.on_endpointslice(None, eps("web-1", "web", "10.0.1.1"))
    await proxier.sync()
    assert cleanup_rules(ipt) == []
    assert not [c for t in ipt.tables.values() for c in t if ch.is_ours(c)]
    assert ipt.tables["nat"]["PREROUTING"] == [["-j", "CNI-HOSTPORT-DNAT"]]
    assert not any(ipt.tables[t][c] for t in ("filter", "nat") for c in ("INPUT", "OUTPUT"))


@pytest.mark.parametrize("unsupported", [(), ("sctp",)])
async def test_sctp_is_proxied_only_where_the_kernel_can_filter_it(
        unsupported: tuple[str, ...], caplog: pytest.LogCaptureFixture) -> None:
    ipt = FakeIptables(unsupported_protocols=unsupported)
    proxier = Proxier(ProxierConfig(node_name="node1", min_sync_period=0), ipt, FakeConntrack(),
                      FakeNetlink())
    expected = ("TCP", "UDP") + (() if unsupported else ("SCTP",))
    assert proxier.probe_protocols() == expected
    assert ch.SCTP_PROBE not in ipt.tables["filter"]
    proxier.set_synced()
    proxier.on_service(None, service("s", "10.96.0.40", {"name": "a", "port": 80,
                                                          "protocol": "SCTP"},
                                     {"name": "b", "port": 81}))
    await proxier.sync()
    assert proxier.stats.failures == 0
    assert ("-p sctp" in ipt.restores[-1]) == (not unsupported)
    assert ("protocol SCTP not supported here" in caplog.text) == bool(unsupported)
