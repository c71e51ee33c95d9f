"""Pod routes (host-gw) over a fake netlink, and the sysctls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netproxy.routes import FakeNetlink, RouteManager, desired_routes, set_sysctls


def node(name: str, cidr: str | None, ip: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "Hostname", "address": name}] +
                       ([{"type": "InternalIP", "address": ip}] if ip else [])}}


def test_desired_routes_skip_self_and_incomplete_nodes(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    nodes = [node("me", "10.244.0.0/24", "192.168.1.1"), node("b", "10.244.1.0/24",
                                                               "192.168.1.2"),
             node("c", None, "192.168.1.3"), node("d", "10.244.3.0/24", None),
             node("e", "bogus", "192.168.1.5"), node("f", "fd00:1::/64", "192.168.1.6"),
             node("g", "10.244.1.0/24", "192.168.1.7")]
    assert desired_routes(nodes, "me") == {"10.244.1.0/24": "192.168.1.2"}
    assert "node e: invalid podCIDR" in caplog.text
    assert "node g: podCIDR 10.244.1.0/24 is another node's" in caplog.text


def test_route_manager_adds_changes_and_removes() -> None:
    netlink = FakeNetlink()
    routes = RouteManager(netlink, "me")
    assert routes.sync([node("b", "10.244.1.0/24", "192.168.1.2"),
                        node("c", "10.244.2.0/24", "192.168.1.3")]) == {
        "10.244.1.0/24": "192.168.1.2", "10.244.2.0/24": "192.168.1.3"}
    netlink.unreachable.add("192.168.9.9")
    assert routes.sync([node("b", "10.244.1.0/24", "192.168.1.4"),
                        node("x", "10.244.9.0/24", "192.168.9.9")]) == {
        "10.244.1.0/24": "192.168.1.4"}
    routes.cleanup()
    assert netlink.table == {}


def test_sysctls(tmp_path: Path) -> None:
    (tmp_path / "net/ipv4/conf/all").mkdir(parents=True)
    (tmp_path / "net/ipv4/ip_forward").write_text("0\n")
    (tmp_path / "net/ipv4/conf/all/route_localnet").write_text("0\n")
    set_sysctls(root=tmp_path)  # no bridge module: skipped
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "1"
    assert (tmp_path / "net/ipv4/conf/all/route_localnet").read_text() == "0\n"
    set_sysctls(root=tmp_path, localhost_nodeports=True)
    assert (tmp_path / "net/ipv4/conf/all/route_localnet").read_text() == "1"
