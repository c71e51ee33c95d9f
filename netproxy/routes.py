"""Pod routes between nodes (host-gw) and the sysctls a service proxy needs.

For every other Node with a spec.podCIDR and an InternalIP, this node gets a route
`podCIDR via InternalIP`, so pod IPs cross nodes unchanged (PLATFORM.md). Our routes carry their
own routing protocol number (`ROUTE_PROTO`), which is how a sync tells them from everyone else's
and how `--cleanup` finds them all. The kernel is reached through the `Netlink` Protocol
(pyroute2's IPRoute in the process's current network namespace, or `FakeNetlink`); one Node that
cannot be routed (gateway unreachable, bad CIDR) is logged and skipped, never fatal.
pyroute2 is imported when routes are first synced (`iproute()`), not at import time.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)
Object = dict[str, Any]
ROUTE_PROTO = 200  # rtm_protocol of the routes we own (unused by iproute2's rt_protos)


def iproute() -> tuple[Any, Any]:
    """pyroute2's IPRoute class and NetlinkError (imported on first use)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    return IPRoute, NetlinkError


class Netlink(Protocol):
    def routes(self) -> dict[str, str]:
        """Our routes (ROUTE_PROTO, main table): destination CIDR -> gateway."""

    def replace_route(self, dst: str, gateway: str) -> None: ...

    def delete_route(self, dst: str) -> None: ...

    def addresses(self) -> list[str]:
        """Every IPv4 address on this host's interfaces."""


class IPRouteNetlink:
    """pyroute2 in the current network namespace (a socket per call: safe from any thread).

    Netlink errors come out as OSError with the kernel's errno, as the Protocol promises.
    """

    def __repr__(self) -> str:
        return "<IPRouteNetlink>"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        IPRoute, NetlinkError = iproute()
        try:
            with IPRoute() as ipr:
                return list(getattr(ipr, method)(*args, **kwargs) or [])
        except NetlinkError as exc:
            raise OSError(exc.code, str(exc)) from None

    def routes(self) -> dict[str, str]:
        return {f"{r.get('dst')}/{r['dst_len']}": str(r.get("gateway") or "")
                for r in self._call("route", "dump", family=socket.AF_INET, proto=ROUTE_PROTO)
                if r.get("table") in (None, 254)}

    def replace_route(self, dst: str, gateway: str) -> None:
        self._call("route", "replace", dst=dst, gateway=gateway, proto=ROUTE_PROTO)

    def delete_route(self, dst: str) -> None:
        self._call("route", "del", dst=dst, proto=ROUTE_PROTO)

    def addresses(self) -> list[str]:
        return [str(a.get("address")) for a in self._call("addr", "dump", family=socket.AF_INET)]


class FakeNetlink:
    """Routes in a dict; `unreachable` gateways fail like the kernel's ENETUNREACH."""

    def __init__(self, addresses: Iterable[str] = ("127.0.0.1",)) -> None:
        self.table: dict[str, str] = {}
        self.unreachable: set[str] = set()
        self.local = list(addresses)

    def routes(self) -> dict[str, str]:
        return dict(self.table)

    def replace_route(self, dst: str, gateway: str) -> None:
        if gateway in self.unreachable:
            raise OSError(101, "Network is unreachable")
        self.table[dst] = gateway

    def delete_route(self, dst: str) -> None:
        self.table.pop(dst, None)

    def addresses(self) -> list[str]:
        return list(self.local)


def internal_ip(node: Object) -> str:
    """The node's first IPv4 InternalIP, or ""."""
    for address in (node.get("status") or {}).get("addresses") or []:
        if isinstance(address, dict) and address.get("type") == "InternalIP":
            try:
                if ipaddress.ip_address(str(address.get("address"))).version == 4:
                    return str(address["address"])
            except ValueError:
                continue
    return ""


def desired_routes(nodes: Iterable[Object], node_name: str) -> dict[str, str]:
    """podCIDR -> InternalIP for every other node that has both (IPv4)."""
    routes: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: str((n.get("metadata") or {}).get("name"))):
        name = (node.get("metadata") or {}).get("name")
        cidr = (node.get("spec") or {}).get("podCIDR")
        if name == node_name or not cidr:
            continue
        try:
            net = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            log.warning("node %s: invalid podCIDR %r; no route to it", name, cidr)
            continue
        gateway = internal_ip(node)
        if net.version != 4 or not gateway:
            continue
        if str(net) in routes:
            log.warning("node %s: podCIDR %s is another node's too; keeping the first", name, net)
            continue
        routes[str(net)] = gateway
    return routes


class RouteManager:
    """Keeps our routes equal to `desired_routes`. Called from one task at a time."""

    def __init__(self, netlink: Netlink, node_name: str) -> None:
        self.netlink = netlink
        self.node_name = node_name

    def __repr__(self) -> str:
        return f"<RouteManager node={self.node_name}>"

    def sync(self, nodes: Iterable[Object]) -> dict[str, str]:
        """Add, change and delete our routes; return the routes now in place."""
        want = desired_routes(nodes, self.node_name)
        have = self.netlink.routes()
        for dst in sorted(set(have) - set(want)):
            try:
                self.netlink.delete_route(dst)
                log.info("route %s via %s removed", dst, have[dst])
            except OSError as exc:
                log.warning("route %s: cannot remove it: %s", dst, exc)
        for dst, gateway in want.items():
            if have.get(dst) == gateway:
                continue
            try:
                self.netlink.replace_route(dst, gateway)
                log.info("route %s via %s installed", dst, gateway)
            except OSError as exc:
                log.warning("route %s via %s: %s; skipping it", dst, gateway, exc)
        return self.netlink.routes()

    def cleanup(self) -> None:
        for dst in self.netlink.routes():
            self.netlink.delete_route(dst)


def set_sysctls(*, localhost_nodeports: bool = False, root: Path = Path("/proc/sys")) -> None:
    """Forwarding on; bridged traffic through iptables when br_netfilter is there; localnet
    routing only when NodePorts on 127.0.0.1 are asked for. Failures are logged."""
    wanted = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}
    if localhost_nodeports:
        wanted["net/ipv4/conf/all/route_localnet"] = "1"
    for name, value in wanted.items():
        path = root / name
        if not path.exists():
            log.info("sysctl %s absent here; not set", name.replace("/", "."))
            continue
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
                log.info("sysctl %s=%s", name.replace("/", "."), value)
        except OSError as exc:
            log.warning("sysctl %s=%s: %s", name.replace("/", "."), value, exc)
