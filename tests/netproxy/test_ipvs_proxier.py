"""The IPVS proxier end to end over fakes: API objects in, IPVS operations and bound addresses out.

The kernel is a FakeIPVS, a FakeServiceLink and a FakeIptables; the ownership record is a file
under tmp_path. Also: cleanup removes only our virtual servers, and a kernel without the link
kind says so plainly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netproxy.conntrack import FakeConntrack
from netproxy.fake_iptables import FakeIptables
from netproxy.ipvs import rules
from netproxy.ipvs.cleanup import cleanup
from netproxy.ipvs.fake import FakeIPVS, FakeServiceLink
from netproxy.ipvs.proxier import IPVSProxier, set_ipvs_sysctls
from netproxy.ipvs.record import OwnershipRecord, parse_key
from netproxy.ipvs.state import RealServer, VirtualServer, VirtualServerKey
from netproxy.proxier import ProxierConfig
from netproxy.routes import FakeNetlink

NODE_IP = "192.168.1.5"
FOREIGN = VirtualServer(VirtualServerKey("TCP", "192.0.2.1", 80), "wlc")  # not ours


def service(name: str, ip: str, *ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"clusterIP": ip, "ports": list(ports), **spec}}


def eps(name: str, svc: str, *addresses: str, port: int = 8080, node: str = "node2"
        ) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "nodeName": node, "conditions": {"ready": True}}
                          for a in addresses]}


class Node:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.ipvs, self.link, self.ipt = FakeIPVS(), FakeServiceLink(), FakeIptables()
        self.ipvs.add(FOREIGN, RealServer("192.0.2.10", 80))
        self.record = OwnershipRecord(tmp_path / "ipvs.json")
        settings: dict[str, Any] = {"node_name": "node1", "cluster_cidr": "10.0.0.0/8",
                                    "min_sync_period": 0.0, **config}
        self.proxier = IPVSProxier(ProxierConfig(**settings), self.ipt, FakeConntrack(),
                                   FakeNetlink([NODE_IP, "127.0.0.1"]), ipvs=self.ipvs,
                                   link=self.link, record=self.record, scheduler="lc")
        self.proxier.set_synced()

    async def sync(self) -> list[str]:
        before = len(self.ipvs.applied)
        await self.proxier.sync()
        return self.ipvs.applied[before:]


async def test_services_become_virtual_servers_and_follow_endpoints(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.proxier.on_service(None, service("web", "10.96.0.10", {"port": 80, "nodePort": 30080},
                                          type="NodePort"))
    node.proxier.on_endpointslice(None, eps("web-1", "web", "10.0.1.2"))
    assert await node.sync() == [
        "add-server TCP/10.96.0.10:80 lc",
        "add-server TCP/192.168.1.5:30080 lc",
        "add-real TCP/10.96.0.10:80 -> 10.0.1.2:8080 weight 1",
        "add-real TCP/192.168.1.5:30080 -> 10.0.1.2:8080 weight 1",
    ]
    assert node.link.bound == {"10.96.0.10"}  # NodePorts live on the node's own address
    assert node.record.load() == {parse_key("TCP/10.96.0.10:80"),
                                  parse_key("TCP/192.168.1.5:30080")}
    assert node.proxier.applied.is_set() and node.proxier.stats.syncs == 1
    assert ["-j", rules.KUBE_IPVS_FILTER] == node.ipt.tables["filter"]["INPUT"][-1][-2:]

    node.proxier.on_endpointslice(eps("web-1", "web", "10.0.1.2"),
                                  eps("web-1", "web", "10.0.1.3"))
    assert await node.sync() == [
        "delete-real TCP/10.96.0.10:80 -> 10.0.1.2:8080 weight 1",
        "add-real TCP/10.96.0.10:80 -> 10.0.1.3:8080 weight 1",
        "delete-real TCP/192.168.1.5:30080 -> 10.0.1.2:8080 weight 1",
        "add-real TCP/192.168.1.5:30080 -> 10.0.1.3:8080 weight 1",
    ]
    assert await node.sync() == []  # nothing changed: nothing done

    node.proxier.on_service(service("web", "10.96.0.10", {"port": 80}), None)
    assert await node.sync() == ["delete-server TCP/10.96.0.10:80",
                                 "delete-server TCP/192.168.1.5:30080"]
    assert node.link.bound == set() and node.record.load() == set()
    assert list(node.ipvs.servers) == [FOREIGN.key]  # someone else's stays


async def test_session_affinity_is_persistence(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.proxier.on_service(None, service(
        "web", "10.96.0.10", {"port": 80}, sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}}))
    assert await node.sync() == ["add-server TCP/10.96.0.10:80 lc persistent 600s"]


async def test_stale_servers_on_our_link_are_ours_even_without_a_record(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.link.ensure()
    node.link.bind("10.96.0.99")
    node.ipvs.add(VirtualServer(VirtualServerKey("TCP", "10.96.0.99", 80)))
    node.ipvs.add(VirtualServer(VirtualServerKey("TCP", NODE_IP, 30099)))  # unrecorded NodePort
    assert await node.sync() == ["delete-server TCP/10.96.0.99:80"]
    assert node.link.bound == set()
    assert set(node.ipvs.servers) == {FOREIGN.key, VirtualServerKey("TCP", NODE_IP, 30099)}


async def test_a_failed_operation_fails_the_sync_which_is_retried(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.proxier.on_service(None, service("web", "10.96.0.10", {"port": 80}))
    node.proxier.on_service(None, service("api", "10.96.0.11", {"port": 443}))
    node.ipvs.fail_next = OSError(12, "Cannot allocate memory")
    assert await node.sync() == ["add-server TCP/10.96.0.11:443 lc"]  # the other still went in
    assert node.proxier.stats.failures == 1 and "1 IPVS operations failed" in \
        node.proxier.stats.last_error
    assert node.proxier.need_full_sync
    assert await node.sync() == ["add-server TCP/10.96.0.10:80 lc"]
    assert node.proxier.stats.failures == 1 and not node.proxier.need_full_sync


async def test_a_kernel_without_the_link_kind_says_so(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.link.kind_supported = False
    await node.sync()
    assert node.proxier.stats.last_error == (
        "--proxy-mode ipvs binds service addresses to a dummy link kube-ipvs0, and this kernel "
        "has no dummy link type; use --ipvs-link-kind bridge")


async def test_cleanup_removes_only_ours(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.proxier.on_service(None, service("web", "10.96.0.10", {"port": 80, "nodePort": 30080},
                                          type="NodePort"))
    await node.sync()
    assert cleanup(node.ipt, node.ipvs, node.link, node.record) == []
    assert list(node.ipvs.servers) == [FOREIGN.key]
    assert not node.link.present and not node.record.path.exists()
    assert rules.KUBE_IPVS_FILTER not in node.ipt.tables["filter"]
    assert all(rules.KUBE_IPVS_FILTER not in r for r in node.ipt.tables["filter"]["INPUT"])
    assert cleanup(node.ipt, None, node.link, node.record) == []  # twice, or without ip_vs


def test_record_survives_garbage(tmp_path: Path) -> None:
    record = OwnershipRecord(tmp_path / "sub" / "ipvs.json")
    assert record.load() == set()
    record.save([VirtualServerKey("UDP", "10.96.0.53", 53)])
    assert record.load() == {VirtualServerKey("UDP", "10.96.0.53", 53)}
    record.path.write_text('{"virtualServers": ["nonsense", "TCP/1.2.3.4:x"]}')
    assert record.load() == set()
    record.path.write_text("{")
    assert record.load() == set()


@pytest.mark.parametrize("present", [True, False])
def test_ipvs_sysctls(tmp_path: Path, present: bool) -> None:
    if present:
        for name in ("conntrack", "expire_nodest_conn", "expire_quiescent_template"):
            (tmp_path / "net/ipv4/vs").mkdir(parents=True, exist_ok=True)
            (tmp_path / "net/ipv4/vs" / name).write_text("0\n")
    set_ipvs_sysctls(tmp_path)  # absent: logged, no exception
    if present:
        assert (tmp_path / "net/ipv4/vs/conntrack").read_text() == "1"
