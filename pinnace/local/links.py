"""Links between the root namespace and node namespaces: a bridge, veth pairs, routes, sysctls.

`Links` records everything it makes (bridge, veths, routes in the root namespace) and `remove()`
undoes exactly that, in reverse, tolerating what is gone already. Links inside a node namespace
need no undoing: they go with the namespace. Sysctls of a namespace are written from a short-lived
thread that entered it (setns affects the calling thread only), as PLATFORM.md describes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pyroute2 import IPRoute, NetlinkError, NetNS, netns

log = logging.getLogger(__name__)


def link_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def delete_link(name: str) -> bool:
    """Delete the root namespace's link `name` if it exists; return whether it did."""
    with IPRoute() as ipr:
        indexes = ipr.link_lookup(ifname=name)
        for index in indexes:
            ipr.link("del", index=index)
        return bool(indexes)


def write_sysctl(netns_name: str | None, key: str, value: str) -> None:
    """Write /proc/sys/<key> (dots as slashes) in namespace `netns_name` (None: ours)."""
    path = Path("/proc/sys") / key.replace(".", "/")
    if netns_name is None:
        path.write_text(value)
        return
    errors: list[BaseException] = []

    def inside() -> None:
        try:
            netns.setns(netns_name)
            path.write_text(value)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=inside, name=f"sysctl-{netns_name}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


class Links:
    """The links `pinnace up` makes, and their removal."""

    def __init__(self) -> None:
        self.bridge: str | None = None  # made by create_bridge
        self.veths: list[str] = []  # root-namespace ends, in creation order
        self.routes: list[tuple[str, str]] = []  # (dst, gateway) added in the root namespace
        self._lock = threading.Lock()  # nodes are attached from several threads at once

    def __repr__(self) -> str:
        return f"<Links bridge={self.bridge} veths={self.veths} routes={len(self.routes)}>"

    def create_bridge(self, name: str, address: str, prefixlen: int) -> None:
        """Make bridge `name` with `address`, up. Refuse one that exists (not ours)."""
        with IPRoute() as ipr:
            if ipr.link_lookup(ifname=name):
                raise FileExistsError(f"link {name} exists already (not made by this run)")
            ipr.link("add", ifname=name, kind="bridge")
            self.bridge = name
            index = ipr.link_lookup(ifname=name)[0]
            ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
            ipr.link("set", index=index, state="up")

    def attach(self, netns_name: str, veth: str, *, address: str, prefixlen: int,
               gateway: str) -> None:
        """Link namespace `netns_name` into our bridge: `veth` here, eth0 there with `address`,
        default route via `gateway`, and IP forwarding on (it routes for its pods)."""
        if self.bridge is None:
            raise RuntimeError("create_bridge first")
        with IPRoute() as ipr:
            ipr.link("add", ifname=veth, kind="veth",
                     peer={"ifname": "eth0", "net_ns_fd": netns_name})
            with self._lock:
                self.veths.append(veth)
            index = ipr.link_lookup(ifname=veth)[0]
            bridge = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.link("set", index=index, master=bridge, state="up")
        with NetNS(netns_name) as ns:
            eth0 = ns.link_lookup(ifname="eth0")[0]
            ns.addr("add", index=eth0, address=address, prefixlen=prefixlen)
            ns.link("set", index=eth0, state="up")
            ns.route("add", dst="0.0.0.0/0", gateway=gateway)
        write_sysctl(netns_name, "net.ipv4.ip_forward", "1")

    def add_routes(self, netns_name: str | None, routes: list[tuple[str, str]]) -> None:
        """Add (dst, gateway) routes in `netns_name` (None: the root namespace, remembered)."""
        if not routes:
            return
        with (NetNS(netns_name) if netns_name else IPRoute()) as ipr:
            for dst, gateway in routes:
                ipr.route("add", dst=dst, gateway=gateway)
                if netns_name is None:
                    with self._lock:
                        self.routes.append((dst, gateway))

    def remove(self) -> None:
        """Delete our root-namespace routes, veths and bridge; what is gone already is fine."""
        with IPRoute() as ipr:
            for dst, gateway in reversed(self.routes):
                try:
                    ipr.route("del", dst=dst, gateway=gateway)
                except NetlinkError as exc:
                    log.debug("route %s via %s already gone: %s", dst, gateway, exc)
            self.routes.clear()
            for name in [*reversed(self.veths), *([self.bridge] if self.bridge else [])]:
                for index in ipr.link_lookup(ifname=name):
                    try:
                        ipr.link("del", index=index)
                    except NetlinkError as exc:
                        log.debug("link %s already gone: %s", name, exc)
            self.veths.clear()
            self.bridge = None
