"""Node IPAM, Endpoints, EndpointSlices and node lifecycle in `pinnace controller-manager`,
against the real apiserver and etcd.

No agent runs here: the test plays the kubelets, writing pod status (podIP, Ready) through
pods/status and renewing the Leases of the nodes meant to be alive (`Heartbeats`). The grace
period is shortened to 3s, so nodes left by other modules are marked Unknown and tainted while
this module runs: their taints and conditions are put back when it ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl, eventually, pinnace_daemon

from controlplane.api import errors
from controlplane.client import kubeconfig
from controlplane.client.rest import (
    ENDPOINTS,
    ENDPOINTSLICES,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    RESTClient,
)
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.process import Process

Object = dict[str, Any]
GRACE = 3.0
UNREACHABLE = "node.kubernetes.io/unreachable"
LEASE_NS = "kube-node-lease"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _snapshot(client: RESTClient) -> dict[str, tuple[Any, Any]]:
    nodes = (await client.list(NODES))["items"]
    return {n["metadata"]["name"]: (n["spec"].get("taints"), n.get("status", {}).get(
        "conditions")) for n in nodes}


async def _restore(client: RESTClient, before: dict[str, tuple[Any, Any]]) -> None:
    """Put back the taints and conditions of the nodes that existed before this module."""
    for name, (taints, conditions) in before.items():
        try:
            node = await client.get(NODES, name)
            if node["spec"].get("taints") != taints:
                node["spec"]["taints"] = taints
                node = await client.update(NODES, node)
            if node.get("status", {}).get("conditions") != conditions:
                node.setdefault("status", {})["conditions"] = conditions
                await client.update(NODES, node, subresource="status")
        except errors.APIError as exc:
            print(f"could not restore node {name}: {exc}")


@pytest.fixture(scope="module")
def controller_manager(apiserver: APIServerProcess, workdir: Path) -> Iterator[Process]:
    config = kubeconfig.load(apiserver.kubeconfig)

    async def with_client(fn: Callable[[RESTClient], Awaitable[Any]]) -> Any:
        client = RESTClient(config)
        try:
            return await fn(client)
        finally:
            await client.close()

    before = asyncio.run(with_client(_snapshot))
    try:
        with pinnace_daemon("controller-manager", "--kubeconfig", str(apiserver.kubeconfig),
                            "--leader-elect=false",
                            "--controllers=endpoint,endpointslice,nodeipam,nodelifecycle",
                            f"--node-monitor-grace-period={GRACE}s",
                            "--node-startup-grace-period=5s",
                            log=workdir / "controller-manager" / "network.log",
                            name="controller-manager-network") as proc:
            yield proc
    finally:
        asyncio.run(with_client(lambda c: _restore(c, before)))


@pytest.fixture
async def ns(client: RESTClient, controller_manager: Process) -> str:
    name = f"net-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


class Nodes:
    """Nodes this test creates (deleted at the end); `alive` ones get their Lease renewed."""

    def __init__(self, client: RESTClient, zone: str) -> None:
        self.client, self.zone = client, zone
        self.names: list[str] = []
        self.alive: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def create(self, short: str, *, alive: bool = True) -> str:
        name = f"{self.zone}-{short}"
        await self.client.create(NODES, {"metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": self.zone}}})
        self.names.append(name)
        await self.post_ready(name)
        if alive:
            self.alive.add(name)
            await self._renew(name)
        return name

    async def post_ready(self, name: str) -> None:
        stamp = seconds_now()
        await self.client.patch(NODES, name, {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
             "lastTransitionTime": stamp}]}}, subresource="status")

    async def _renew(self, name: str) -> None:
        try:
            await self.client.patch(LEASES, name, {"spec": {"renewTime": now()}}, LEASE_NS)
        except errors.NotFound:
            await self.client.create(LEASES, {"metadata": {"name": name}, "spec": {
                "holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now()}},
                LEASE_NS)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for name in list(self.alive):
                await self._renew(name)

    async def __aenter__(self) -> Nodes:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for name in self.names:
            for res, namespace in ((NODES, ""), (LEASES, LEASE_NS)):
                try:
                    await self.client.delete(res, name, namespace)
                except errors.NotFound:
                    pass


def backend(name: str, node: str, port: int, *, tolerations: list[Object] | None = None
            ) -> Object:
    spec: Object = {"nodeName": node, "containers": [{
        "name": "main", "image": "busybox", "ports": [{"name": "http", "containerPort": port}]}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}


async def set_pod_status(client: RESTClient, ns: str, name: str, ip: str, ready: bool) -> None:
    await client.patch(PODS, name, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                        "lastTransitionTime": seconds_now()}]}}, ns, subresource="status")


def condition(obj: Object, type_: str) -> Object:
    return next((c for c in obj.get("status", {}).get("conditions") or []
                 if c["type"] == type_), {})


async def test_nodes_get_distinct_pod_cidrs(client: RESTClient,
                                            controller_manager: Process) -> None:
    async with Nodes(client, f"ipam-{uuid.uuid4().hex[:6]}") as nodes:
        a, b = await nodes.create("a"), await nodes.create("b")

        async def cidrs() -> list[str] | None:
            found = [(await client.get(NODES, n))["spec"] for n in (a, b)]
            if not all(s.get("podCIDR") for s in found):
                return None
            assert all(s["podCIDRs"] == [s["podCIDR"]] for s in found), found
            return [s["podCIDR"] for s in found]

        got = await eventually(cidrs, "both nodes to get a podCIDR")
        assert got[0] != got[1]
        cluster = IPv4Network("10.244.0.0/16")
        assert all(IPv4Network(c).subnet_of(cluster) for c in got), got
        assert all(IPv4Network(c).prefixlen == 24 for c in got), got


async def test_service_endpoints_and_slices_follow_the_pods(
        client: RESTClient, ns: str, kubectl: Kubectl) -> None:
    async with Nodes(client, f"ep-{uuid.uuid4().hex[:6]}") as nodes:
        node = await nodes.create("n")
        await client.create(SERVICES, {"metadata": {"name": "web", "labels": {"team": "a"}},
                                       "spec": {"selector": {"app": "web"}, "ports": [
                                           {"name": "http", "port": 80,
                                            "targetPort": "http"}]}}, ns)
        await client.create(PODS, backend("p1", node, 8080), ns)
        await client.create(PODS, backend("p2", node, 9090), ns)
        await set_pod_status(client, ns, "p1", "10.244.7.11", True)
        await set_pod_status(client, ns, "p2", "10.244.7.12", True)

        async def subsets(want: list[Object]) -> bool:
            try:
                ep = await client.get(ENDPOINTS, "web", ns)
            except errors.NotFound:
                return False
            return bool(ep.get("subsets") == want)

        def addr(name: str, ip: str) -> Object:
            return {"ip": ip, "nodeName": node, "targetRef": {
                "kind": "Pod", "namespace": ns, "name": name,
                "uid": uids[name]}}

        uids = {p["metadata"]["name"]: p["metadata"]["uid"]
                for p in (await client.list(PODS, ns))["items"]}
        port = [{"name": "http", "port": 8080, "protocol": "TCP"}]
        port_b = [{"name": "http", "port": 9090, "protocol": "TCP"}]
        both = [{"addresses": [addr("p1", "10.244.7.11")], "ports": port},
                {"addresses": [addr("p2", "10.244.7.12")], "ports": port_b}]
        await eventually(lambda: subsets(both), "Endpoints with both pods")
        ep = await client.get(ENDPOINTS, "web", ns)
        assert ep["metadata"]["labels"] == {"team": "a"}
        assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"][
            "annotations"]

        async def slices() -> list[Object]:
            found = await client.list(ENDPOINTSLICES, ns,
                                      label_selector="kubernetes.io/service-name=web")
            return list(found["items"])

        async def endpoints_by_port() -> dict[int, list[tuple[str, bool, bool]]]:
            out: dict[int, list[tuple[str, bool, bool]]] = {}
            for s in await slices():
                for e in s.get("endpoints") or []:
                    out.setdefault(s["ports"][0]["port"], []).append(
                        (e["addresses"][0], e["conditions"]["ready"],
                         e["conditions"]["terminating"]))
            return out

        async def sliced(want: dict[int, list[tuple[str, bool, bool]]]) -> bool:
            return await endpoints_by_port() == want

        await eventually(lambda: sliced({8080: [("10.244.7.11", True, False)],
                                         9090: [("10.244.7.12", True, False)]}),
                         "EndpointSlices with both pods")
        for s in await slices():
            assert s["addressType"] == "IPv4"
            assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
                "endpointslice-controller.k8s.io"
            assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
            assert s["endpoints"][0]["nodeName"] == node
            assert s["endpoints"][0]["zone"] == nodes.zone
            assert s["ports"][0]["name"] == "http" and s["ports"][0]["protocol"] == "TCP"
        table = kubectl("get", "endpointslices", "-n", ns, "-l",
                        "kubernetes.io/service-name=web")
        assert "10.244.7.11" in table and "10.244.7.12" in table

        # p1 becomes not ready
        await set_pod_status(client, ns, "p1", "10.244.7.11", False)
        not_ready = [{"notReadyAddresses": [addr("p1", "10.244.7.11")], "ports": port},
                     {"addresses": [addr("p2", "10.244.7.12")], "ports": port_b}]
        await eventually(lambda: subsets(not_ready), "p1 in notReadyAddresses")
        await eventually(lambda: sliced({8080: [("10.244.7.11", False, False)],
                                         9090: [("10.244.7.12", True, False)]}),
                         "p1 not ready in its EndpointSlice")

        # p2 is deleted
        await client.delete(PODS, "p2", ns, grace_period=0)
        only_p1 = [{"notReadyAddresses": [addr("p1", "10.244.7.11")], "ports": port}]
        await eventually(lambda: subsets(only_p1), "p2 gone from the Endpoints")
        await eventually(lambda: sliced({8080: [("10.244.7.11", False, False)]}),
                         "p2 gone from the EndpointSlices")

        # the service goes: so do its Endpoints and EndpointSlices
        await client.delete(SERVICES, "web", ns)

        async def all_gone() -> bool:
            try:
                await client.get(ENDPOINTS, "web", ns)
                return False
            except errors.NotFound:
                return not await slices()

        await eventually(all_gone, "Endpoints and EndpointSlices deleted with the service")


async def test_silent_node_goes_unknown_tainted_and_its_pods_are_evicted(
        client: RESTClient, ns: str) -> None:
    async with Nodes(client, f"lc-{uuid.uuid4().hex[:6]}") as nodes:
        alive = await nodes.create("alive")
        dead = await nodes.create("dead", alive=False)
        quick = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": 3}]
        await client.create(PODS, backend("doomed", dead, 80, tolerations=quick), ns)
        await client.create(PODS, backend("patient", dead, 80), ns)  # 300s by admission
        await set_pod_status(client, ns, "doomed", "10.244.9.2", True)
        await set_pod_status(client, ns, "patient", "10.244.9.3", True)

        async def unknown() -> Object | None:
            node = await client.get(NODES, dead)
            ready = condition(node, "Ready")
            return node if ready.get("status") == "Unknown" else None

        node = await eventually(unknown, "the silent node to become Unknown", timeout=20)
        ready = condition(node, "Ready")
        assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown",
                                                       "Kubelet stopped posting node status.")

        async def tainted() -> list[tuple[str, str]] | None:
            taints = (await client.get(NODES, dead))["spec"].get("taints") or []
            found = sorted((t["key"], t["effect"]) for t in taints)
            return found if (UNREACHABLE, "NoExecute") in found else None

        assert await eventually(tainted, "the unreachable taints") == [
            (UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]

        async def pod_not_ready() -> bool:
            pod = await client.get(PODS, "patient", ns)
            return condition(pod, "Ready").get("status") == "False"

        await eventually(pod_not_ready, "pods on the node marked not ready")

        async def evicted() -> Object | None:
            try:
                pod = await client.get(PODS, "doomed", ns)
            except errors.NotFound:
                return {"gone": True}
            return pod if pod["metadata"].get("deletionTimestamp") else None

        gone = await eventually(evicted, "the pod with a 3s toleration to be evicted")
        if not gone.get("gone"):
            assert condition(gone, "DisruptionTarget").get("reason") == "DeletionByTaintManager"
        patient = await client.get(PODS, "patient", ns)
        assert not patient["metadata"].get("deletionTimestamp")  # tolerates 300s

        living = await client.get(NODES, alive)
        assert condition(living, "Ready")["status"] == "True"
        assert not living["spec"].get("taints")

        # the kubelet comes back: Ready again, taints removed
        nodes.alive.add(dead)
        await nodes.post_ready(dead)

        async def healed() -> bool:
            node = await client.get(NODES, dead)
            return condition(node, "Ready").get("status") == "True" and not node["spec"].get(
                "taints")

        await eventually(healed, "the node's taints removed once it is Ready")
