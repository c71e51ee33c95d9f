"""Conntrack cleanup for UDP: flows the kernel pinned to an endpoint that is gone.

UDP has no connection end, so conntrack keeps sending a client's datagrams to the endpoint it
first chose, even after that endpoint is removed, and keeps "no DNAT" entries made while a
service had no endpoints. After a sync, kube-proxy deletes those entries with `conntrack -D`; we
compute the same filters with a pure function (`stale_flow_filters`) and run them through the
`Conntrack` Protocol (the `conntrack` tool in the current network namespace, or a fake).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Mapping
from typing import Protocol

from netproxy.model import Endpoint, ServicePort, ServicePortName

log = logging.getLogger(__name__)


class Conntrack(Protocol):
    def delete(self, filters: list[str]) -> None:
        """Delete the flows matching `filters` (conntrack -D arguments); none is no error."""


class ConntrackTool:
    """The `conntrack` binary (Debian's conntrack package)."""

    def __init__(self, binary: str = "conntrack") -> None:
        self.binary = binary
        self._missing_logged = False

    def __repr__(self) -> str:
        return f"<ConntrackTool {self.binary}>"

    def delete(self, filters: list[str]) -> None:
        try:
            result = subprocess.run([self.binary, "-D", *filters], capture_output=True,
                                    text=True, timeout=30)
        except FileNotFoundError:
            if not self._missing_logged:
                log.warning("%s not found: stale UDP flows will not be cleared", self.binary)
                self._missing_logged = True
            return
        except subprocess.TimeoutExpired:
            log.warning("conntrack -D %s timed out", " ".join(filters))
            return
        # Exit status 1 with "0 flow entries have been deleted" just means nothing matched.
        if result.returncode not in (0, 1) or (result.returncode == 1 and
                                               "0 flow entries" not in result.stderr):
            log.warning("conntrack -D %s: %s", " ".join(filters), result.stderr.strip())


class FakeConntrack:
    """Records the filters it was asked to delete."""

    def __init__(self) -> None:
        self.deleted: list[list[str]] = []

    def delete(self, filters: list[str]) -> None:
        self.deleted.append(filters)


def _addresses(svc: ServicePort) -> list[str]:
    return [svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips]


def stale_flow_filters(services: Mapping[ServicePortName, ServicePort], *,
                       deleted_udp_ips: Iterable[str] = (),
                       new_udp_services: Iterable[ServicePortName] = (),
                       stale_endpoints: Iterable[tuple[ServicePortName, Endpoint]] = ()
                       ) -> list[list[str]]:
    """The `conntrack -D` filters for one sync's UDP changes, in a stable order."""
    filters: list[list[str]] = []
    for ip in sorted(set(deleted_udp_ips)):
        filters.append(["--orig-dst", ip, "-p", "udp"])
    for spn in sorted(set(new_udp_services)):
        svc = services.get(spn)
        if svc is None:
            continue
        filters.extend(["--orig-dst", ip, "-p", "udp"] for ip in _addresses(svc))
        if svc.node_port:
            filters.append(["-p", "udp", "--dport", str(svc.node_port)])
    for spn, ep in stale_endpoints:
        svc = services.get(spn)
        if svc is None:
            continue
        filters.extend(["--orig-dst", ip, "--dst-nat", ep.ip, "-p", "udp"]
                       for ip in _addresses(svc))
        if svc.node_port:
            filters.append(["-p", "udp", "--dport", str(svc.node_port), "--dst-nat", ep.ip])
    unique: list[list[str]] = []
    for f in filters:
        if f not in unique:
            unique.append(f)
    return unique
