"""The IPVS state as plain data: what the Services want (`desired`) and how to get there (`diff`).

Both functions are pure. `desired` turns Service ports and their endpoints into virtual servers
(one per ClusterIP, externalIP, load-balancer ingress IP and NodePort node address, with the
port's protocol), their real servers (ready endpoints, weight 1; serving-terminating endpoints
only when none is ready; only this node's endpoints under a traffic policy Local) and the
addresses to bind on the service link. `diff` compares that with the kernel's dump and returns
the minimal operations, in a safe order: new and changed virtual servers, then their real
servers, then the virtual servers that are gone. It deletes only virtual servers that are ours
(`owned`), so IPVS entries made by anyone else are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from netproxy.model import Endpoint, ServicePort, ServicePortName
from netproxy.rules import categorize

log = logging.getLogger(__name__)

SCHEDULERS = ("rr", "lc", "sh")  # what --ipvs-scheduler accepts (kube-proxy's default: rr)
F_PERSISTENT = 0x0001  # IP_VS_SVC_F_PERSISTENT (linux/ip_vs.h): sessionAffinity ClientIP
F_HASHED = 0x0002  # IP_VS_SVC_F_HASHED: set by the kernel on every service; ignored here


@dataclass(frozen=True, order=True)
class VirtualServerKey:
    """What identifies an IPVS virtual server (IPv4, no fwmark services)."""

    protocol: str  # TCP, UDP or SCTP
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.address}:{self.port}"


@dataclass(frozen=True)
class VirtualServer:
    key: VirtualServerKey
    scheduler: str = "rr"
    timeout: int = 0  # persistence timeout in seconds; 0: not persistent
    service: str = field(default="", compare=False)  # the Service port, for logs only

    @property
    def flags(self) -> int:
        return F_PERSISTENT if self.timeout else 0

    def __str__(self) -> str:
        persistent = f" persistent {self.timeout}s" if self.timeout else ""
        return f"{self.key} {self.scheduler}{persistent}"


@dataclass(frozen=True, order=True)
class RealServer:
    address: str
    port: int
    weight: int = 1

    def __str__(self) -> str:
        return f"{self.address}:{self.port} weight {self.weight}"


@dataclass(frozen=True)
class IPVSState:
    """Virtual servers with their real servers, and (desired only) the addresses to bind."""

    servers: Mapping[VirtualServerKey, VirtualServer]
    reals: Mapping[VirtualServerKey, frozenset[RealServer]]
    addresses: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Op:
    """One change to the kernel's IPVS table; `str()` is its golden/log form."""

    action: str  # add-server, update-server, delete-server, add-real, update-real, delete-real
    server: VirtualServer
    real: RealServer | None = None

    def __str__(self) -> str:
        if self.real is None:
            what = self.server.key if self.action == "delete-server" else self.server
            return f"{self.action} {what}"
        return f"{self.action} {self.server.key} -> {self.real}"


@dataclass(frozen=True)
class IPVSOptions:
    """What the desired state depends on besides Services and endpoints."""

    node_name: str
    scheduler: str = "rr"
    nodeport_addresses: tuple[str, ...] = ()  # the node IPs NodePorts are served on


def _reals(endpoints: Sequence[Endpoint]) -> frozenset[RealServer]:
    return frozenset(RealServer(e.ip, e.port) for e in endpoints)


def desired(services: Mapping[ServicePortName, ServicePort],
            endpoints: Mapping[ServicePortName, Sequence[Endpoint]],
            options: IPVSOptions) -> IPVSState:
    """Render the virtual servers, real servers and bound addresses the Services call for."""
    servers: dict[VirtualServerKey, VirtualServer] = {}
    reals: dict[VirtualServerKey, frozenset[RealServer]] = {}
    addresses: set[str] = set()
    for spn in sorted(services):
        svc = services[spn]
        cluster, local, _, _ = categorize(endpoints.get(spn, ()), svc, options.node_name)
        internal = _reals(local if svc.internal_local else cluster)
        external = _reals(local if svc.external_local else cluster)
        wanted: list[tuple[VirtualServerKey, frozenset[RealServer], bool]] = [
            (VirtualServerKey(svc.protocol, svc.cluster_ip, svc.port), internal, True)]
        wanted += [(VirtualServerKey(svc.protocol, ip, svc.port), external, True)
                   for ip in (*svc.external_ips, *svc.load_balancer_ips)]
        if svc.node_port:
            wanted += [(VirtualServerKey(svc.protocol, ip, svc.node_port), external, False)
                       for ip in options.nodeport_addresses]
        for key, real_servers, bind in wanted:
            if key in servers:
                log.warning("service %s: %s is already service %s's; skipping it", spn, key,
                            servers[key].service)
                continue
            servers[key] = VirtualServer(key, options.scheduler, svc.sticky_seconds, str(spn))
            reals[key] = real_servers
            if bind:
                addresses.add(key.address)
    return IPVSState(servers, reals, frozenset(addresses))


def diff(current: IPVSState, wanted: IPVSState, owned: Collection[VirtualServerKey]
         ) -> list[Op]:
    """The operations that turn `current` into `wanted`, touching only `owned` stale servers."""
    ops: list[Op] = []
    real_ops: list[Op] = []
    for key in sorted(wanted.servers):
        server = wanted.servers[key]
        have = current.servers.get(key)
        if have is None:
            ops.append(Op("add-server", server))
        elif (have.scheduler, have.timeout) != (server.scheduler, server.timeout):
            ops.append(Op("update-server", server))
        before = {(r.address, r.port): r for r in current.reals.get(key, ()) if have}
        after = {(r.address, r.port): r for r in wanted.reals.get(key, ())}
        for addr in sorted(set(before) - set(after)):
            real_ops.append(Op("delete-real", server, before[addr]))
        for addr in sorted(after):
            if addr not in before:
                real_ops.append(Op("add-real", server, after[addr]))
            elif before[addr].weight != after[addr].weight:
                real_ops.append(Op("update-real", server, after[addr]))
    stale = [Op("delete-server", current.servers[k])
             for k in sorted(current.servers) if k not in wanted.servers and k in owned]
    return ops + real_ops + stale
