"""The last gate of `pinnace up`: every planned node Ready, and the `kubernetes` service answering.

Polled through the API with our own client (controlplane.client), as any component would see it.
The service "answers" when it has a ClusterIP and its Endpoints name the apiserver's advertised
address and port; once netproxy programs ClusterIPs, also when a TCP connection from inside a
node's namespace to ClusterIP:443 succeeds. The checks of objects are pure functions.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controlplane.api import errors
from controlplane.client import kubeconfig
from controlplane.client.rest import ENDPOINTS, NODES, SERVICES, RESTClient

Object = dict[str, Any]
POLL = 0.1  # seconds between polls of the API


class NotReady(Exception):
    """The cluster did not get ready in time; the message says what was missing."""


def node_ready(node: Object, since: datetime | None = None) -> bool:
    """Whether `node` is Ready, by a heartbeat at or after `since` (a resumed cluster's nodes
    are Ready in etcd from the last run until their agents post again)."""
    conditions = (node.get("status") or {}).get("conditions") or []
    for c in conditions:
        if c.get("type") == "Ready" and c.get("status") == "True":
            if since is None:
                return True
            try:
                beat = datetime.strptime(str(c.get("lastHeartbeatTime")), "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                return False
            return beat.replace(tzinfo=UTC) >= since.replace(microsecond=0)
    return False


def endpoints_name(endpoints: Object, address: str, port: int) -> bool:
    """Whether Endpoints list `address:port` among their ready addresses."""
    for subset in endpoints.get("subsets") or []:
        ips = {a.get("ip") for a in subset.get("addresses") or []}
        ports = {p.get("port") for p in subset.get("ports") or []}
        if address in ips and port in ports:
            return True
    return False


def tcp_connects_in(netns_name: str, host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to host:port succeeds from inside namespace `netns_name`."""
    from pyroute2 import netns

    result: list[bool] = []

    def inside() -> None:
        try:
            netns.setns(netns_name)
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=inside, name=f"probe-{netns_name}")
    thread.start()
    thread.join()
    return bool(result and result[0])


class ClusterGate:
    """Polls until the planned nodes are Ready and the kubernetes service answers."""

    def __init__(self, kubeconfig_path: Path, nodes: list[str], *, advertise: tuple[str, int],
                 probe_netns: str | None, report: Callable[[str], None],
                 problem: Callable[[], str], since: datetime | None = None) -> None:
        self.kubeconfig_path = kubeconfig_path
        self.nodes = nodes
        self.advertise = advertise
        self.probe_netns = probe_netns  # a node namespace with netproxy running, or None
        self.report = report
        self.problem = problem  # why waiting longer is pointless ("" while it is not)
        self.since = since  # heartbeats before this are a previous run's
        self.ready: set[str] = set()  # nodes reported Ready so far (owned by the polling task)

    def wait(self, timeout: float) -> None:
        asyncio.run(self._wait(timeout))

    async def _wait(self, timeout: float) -> None:
        client = RESTClient(kubeconfig.load(self.kubeconfig_path), user_agent="pinnace-up",
                            timeout=5)
        deadline = time.monotonic() + timeout
        missing = "nothing polled yet"
        try:
            while not (problem := self.problem()):
                try:
                    missing = await self._missing(client)
                except errors.APIError as exc:
                    missing = f"the API: {exc}"
                if not missing:
                    return
                if time.monotonic() > deadline:
                    raise NotReady(f"not ready after {timeout:.0f} s: waiting for {missing}")
                await asyncio.sleep(POLL)
            raise NotReady(f"gave up waiting for {missing}: {problem}")
        finally:
            await client.close()

    async def _missing(self, client: RESTClient) -> str:
        listed = await client.list(NODES)
        by_name = {n["metadata"]["name"]: n for n in listed.get("items") or []}
        for name in self.nodes:
            if name not in self.ready and name in by_name and node_ready(by_name[name], self.since):
                self.ready.add(name)
                addresses = (by_name[name].get("status") or {}).get("addresses") or []
                ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "")
                cidr = (by_name[name].get("spec") or {}).get("podCIDR")
                self.report(f"node {name} Ready ({ip}, pods {cidr})")
        waiting = [n for n in self.nodes if n not in self.ready]
        if waiting:
            return "nodes " + ", ".join(waiting) + " to be Ready"
        return await self._service_missing(client)

    async def _service_missing(self, client: RESTClient) -> str:
        try:
            service = await client.get(SERVICES, "kubernetes", "default")
            endpoints = await client.get(ENDPOINTS, "kubernetes", "default")
        except errors.NotFound:
            return "the kubernetes service and its endpoints"
        cluster_ip = (service.get("spec") or {}).get("clusterIP")
        if not cluster_ip:
            return "the kubernetes service's ClusterIP"
        if not endpoints_name(endpoints, *self.advertise):
            return f"the kubernetes endpoints to name {self.advertise[0]}:{self.advertise[1]}"
        if self.probe_netns and not await asyncio.to_thread(
                tcp_connects_in, self.probe_netns, cluster_ip, 443):
            return f"the kubernetes service at {cluster_ip}:443 to answer"
        return ""
