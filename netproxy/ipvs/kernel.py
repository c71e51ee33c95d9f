"""The kernel's IPVS table behind one Protocol, and its implementation over pyroute2's IPVS.

`IPVSClient.dump()` reads every IPv4 virtual server (fwmark and IPv6 services are left out: we
never make them) with its real servers; `apply(op)` performs one `state.Op`. `PyrouteIPVS` opens
a generic-netlink socket per call (safe from the sync thread), always asks for masquerading
(NAT) real servers as kube-proxy does, and maps netlink errors to OSError with the kernel's
errno. Two pyroute2 0.9 details are handled here: its IPVSDest defaults to direct routing
(fwd_method 3), and its "update" command sends a delete, so updates use "set". The message
parsing (`server_of`, `real_of`) is separate so unit tests can feed it encoded messages.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from netproxy.ipvs.state import (
    F_PERSISTENT,
    IPVSState,
    Op,
    RealServer,
    VirtualServer,
    VirtualServerKey,
)

PROTOCOL_NUMBERS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": 132}
PROTOCOL_NAMES = {n: p for p, n in PROTOCOL_NUMBERS.items()}
FWD_MASQ = 0  # IP_VS_CONN_F_MASQ (linux/ip_vs.h): NAT to the real server
FWD_MASK = 0x0007  # IP_VS_CONN_F_FWD_MASK


class IPVSClient(Protocol):
    """The IPVS table as the proxier uses it. Calls block: run them off the event loop."""

    def dump(self) -> IPVSState:
        """Every IPv4, non-fwmark virtual server with its real servers."""

    def apply(self, op: Op) -> None:
        """Perform one operation; raise OSError (errno from the kernel) on failure."""


def server_of(msg: Any) -> VirtualServer | None:
    """A virtual server from an IPVS_CMD_NEW_SERVICE message; None for fwmark/IPv6 ones."""
    attrs = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    if attrs is None or attrs.get_attr("IPVS_SVC_ATTR_AF") != socket.AF_INET or \
            attrs.get_attr("IPVS_SVC_ATTR_FWMARK"):
        return None
    protocol = PROTOCOL_NAMES.get(attrs.get_attr("IPVS_SVC_ATTR_PROTOCOL"))
    if protocol is None:
        return None
    flags = (attrs.get_attr("IPVS_SVC_ATTR_FLAGS") or {}).get("flags", 0)
    timeout = int(attrs.get_attr("IPVS_SVC_ATTR_TIMEOUT") or 0) if flags & F_PERSISTENT else 0
    key = VirtualServerKey(protocol, str(attrs.get_attr("IPVS_SVC_ATTR_ADDR")),
                           int(attrs.get_attr("IPVS_SVC_ATTR_PORT")))
    return VirtualServer(key, str(attrs.get_attr("IPVS_SVC_ATTR_SCHED_NAME") or ""), timeout)


def real_of(msg: Any) -> RealServer | None:
    """A real server from an IPVS_CMD_NEW_DEST message; None for IPv6 ones."""
    attrs = msg.get_attr("IPVS_CMD_ATTR_DEST")
    if attrs is None or attrs.get_attr("IPVS_DEST_ATTR_ADDR_FAMILY") not in (None, socket.AF_INET):
        return None
    return RealServer(str(attrs.get_attr("IPVS_DEST_ATTR_ADDR")),
                      int(attrs.get_attr("IPVS_DEST_ATTR_PORT")),
                      int(attrs.get_attr("IPVS_DEST_ATTR_WEIGHT") or 0))


def service_request(server: VirtualServer) -> Any:
    """pyroute2's IPVSService for `server` (scheduler, persistence flag and timeout)."""
    from pyroute2 import IPVSService

    return IPVSService(addr=server.key.address, port=server.key.port,
                       protocol=PROTOCOL_NUMBERS[server.key.protocol],
                       sched_name=server.scheduler, timeout=server.timeout,
                       flags={"flags": server.flags, "mask": 0xFFFF})


def dest_request(real: RealServer) -> Any:
    """pyroute2's IPVSDest for `real`, forwarded by NAT (never pyroute2's default, DR)."""
    from pyroute2 import IPVSDest

    return IPVSDest(addr=real.address, port=real.port, weight=real.weight, fwd_method=FWD_MASQ)


class PyrouteIPVS:
    """pyroute2's IPVS in the current network namespace (a socket per call)."""

    def __repr__(self) -> str:
        return "<PyrouteIPVS>"

    @contextmanager
    def _socket(self) -> Iterator[Any]:
        from pyroute2 import IPVS
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            ipvs = IPVS()
            try:
                yield ipvs
            finally:
                ipvs.close()
        except NetlinkError as exc:
            raise OSError(exc.code, f"ipvs: {exc}") from None

    def dump(self) -> IPVSState:
        servers: dict[VirtualServerKey, VirtualServer] = {}
        reals: dict[VirtualServerKey, frozenset[RealServer]] = {}
        with self._socket() as ipvs:
            for msg in ipvs.service("dump"):
                server = server_of(msg)
                if server is None:
                    continue
                servers[server.key] = server
                dests = ipvs.dest("dump", service=service_request(server))
                reals[server.key] = frozenset(r for r in map(real_of, dests) if r is not None)
        return IPVSState(servers, reals)

    def apply(self, op: Op) -> None:
        with self._socket() as ipvs:
            service = service_request(op.server)
            if op.real is None:
                command = {"add-server": "add", "update-server": "set",
                           "delete-server": "del"}[op.action]
                ipvs.service(command, service=service)
            else:
                command = {"add-real": "add", "update-real": "set",
                           "delete-real": "del"}[op.action]
                ipvs.dest(command, service=service, dest=dest_request(op.real))
