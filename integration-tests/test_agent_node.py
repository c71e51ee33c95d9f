"""The agent's node management against the real apiserver (over etcd) and a real containerd.

A NodeManager registers a node of its own; the real kubectl sees it NotReady until its podCIDR is
set, then Ready with the agent's version, and sees its Lease renewed. With an external cloud
provider the node registers with the cloud's taint, which is never put back once removed.
kubectl calls run in a thread: the manager runs on this test's event loop and must keep running
meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl

from agent.node import NodeConfig, NodeManager, parse_taints
from controlplane.client import kubeconfig
from controlplane.client.rest import RESTClient
from cri.runtime import RuntimeClient
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.containerd import Containerd

PERIOD = 0.5  # status and lease periods, shortened from the kubelet's 10 s for the test


async def kubectl_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(await asyncio.to_thread(kubectl, *args, "-o", "json"))


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Await `check()` (a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.2)


class Running:
    """A NodeManager running on the test's loop, cleaned up (task, node, lease) on exit."""

    def __init__(self, apiserver: APIServerProcess, socket: str, root: Path, kubectl: Kubectl):
        self.name = f"it-node-{secrets.token_hex(3)}"
        self.kubectl = kubectl
        self.client = RESTClient(kubeconfig.load(apiserver.kubeconfig))
        self.runtime = RuntimeClient(socket)
        self.config = NodeConfig(
            node_name=self.name, node_ip="10.99.0.7", root_dir=root / "agent",
            cni_conf_dir=root / "net.d", status_update_frequency=PERIOD,
            lease_renew_interval=PERIOD, retry_interval=0.2)
        self.manager = NodeManager(self.client, self.runtime, self.config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.manager.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.to_thread(self.kubectl.run, "delete", "node", self.name,
                                "--ignore-not-found")
        await asyncio.to_thread(self.kubectl.run, "delete", "lease", "-n", "kube-node-lease",
                                self.name, "--ignore-not-found")
        await self.client.close()
        await self.runtime.close()

    async def row(self) -> list[str]:
        """`kubectl get node NAME`: NAME STATUS ROLES AGE VERSION ([] until it exists)."""
        result = await asyncio.to_thread(self.kubectl.run, "get", "node", self.name,
                                         "--no-headers")
        return result.stdout.split() if result.returncode == 0 else []

    async def ready(self) -> dict[str, Any]:
        node = await kubectl_json(self.kubectl, "get", "node", self.name)
        found: dict[str, Any] = next(c for c in node["status"]["conditions"]
                                     if c["type"] == "Ready")
        return found


@pytest.fixture
async def running(apiserver: APIServerProcess, containerd: Containerd, kubectl: Kubectl,
                  tmp_path: Path) -> AsyncIterator[Running]:
    async with Running(apiserver, containerd.socket, tmp_path, kubectl) as node:
        yield node


async def test_node_registers_not_ready_until_its_pod_cidr_then_ready(
        running: Running, kubectl: Kubectl) -> None:
    row = await eventually(running.row)
    assert row[0] == running.name and row[1] == "NotReady" and row[4] == "v1.32.4-pinnace", row
    ready = await running.ready()
    assert (ready["reason"], ready["status"]) == ("KubeletNotReady", "False")
    assert "no pod CIDR assigned" in ready["message"]
    conflist = running.config.cni_conf_dir / "10-pinnace.conflist"
    assert not conflist.exists()

    await asyncio.to_thread(kubectl, "patch", "node", running.name, "-p", json.dumps(
        {"spec": {"podCIDR": "10.254.7.0/24", "podCIDRs": ["10.254.7.0/24"]}}))

    async def is_ready() -> bool:
        row = await running.row()
        return row[1:2] == ["Ready"]

    assert await eventually(is_ready), await running.ready()
    ready = await running.ready()
    assert (ready["reason"], ready["message"]) == ("KubeletReady",
                                                   "kubelet is posting ready status")
    conf = json.loads(conflist.read_text())
    bridge = conf["plugins"][0]
    assert (conf["name"], bridge["bridge"]) == (f"pinnace-{running.name}", "cni0")
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.254.7.0/24"}]]

    node = await kubectl_json(kubectl, "get", "node", running.name)
    labels = node["metadata"]["labels"]
    assert (labels["kubernetes.io/hostname"], labels["kubernetes.io/os"]) == (running.name,
                                                                              "linux")
    assert labels["kubernetes.io/arch"] == labels["beta.kubernetes.io/arch"]
    status = node["status"]
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.99.0.7"},
                                   {"type": "Hostname", "address": running.name}]
    assert set(status["capacity"]) == {"cpu", "memory", "pods", "ephemeral-storage"}
    assert status["capacity"]["pods"] == "110" and int(status["capacity"]["cpu"]) >= 1
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert info["kernelVersion"] and info["osImage"] and info["bootID"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    names = {n for image in status["images"] for n in image["names"]}
    assert "localhost/pause:1" in names
    assert {c["type"]: c["status"] for c in status["conditions"]}["MemoryPressure"] == "False"

    # Nothing changes: the status is not re-posted every period (the kubelet's behaviour).
    version = node["metadata"]["resourceVersion"]
    await asyncio.sleep(PERIOD * 5)
    again = await kubectl_json(kubectl, "get", "node", running.name)
    assert again["metadata"]["resourceVersion"] == version


async def test_node_lease_is_renewed(running: Running, kubectl: Kubectl) -> None:
    async def lease() -> Any:
        result = await asyncio.to_thread(kubectl.run, "get", "lease", "-n", "kube-node-lease",
                                         running.name, "-o", "json")
        return json.loads(result.stdout) if result.returncode == 0 else None

    first = await eventually(lease)
    assert first["spec"]["holderIdentity"] == running.name
    assert first["spec"]["leaseDurationSeconds"] == 40
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Node"
    await asyncio.sleep(PERIOD * 3)
    second = await lease()
    assert second["spec"]["renewTime"] > first["spec"]["renewTime"]
    table = await asyncio.to_thread(kubectl, "get", "lease", "-n", "kube-node-lease")
    assert any(line.split()[:2] == [running.name, running.name]
               for line in table.splitlines()), table


async def test_node_registers_without_a_runtime_and_says_why_it_is_not_ready(
        apiserver: APIServerProcess, kubectl: Kubectl, tmp_path: Path) -> None:
    async with Running(apiserver, str(tmp_path / "no-containerd.sock"), tmp_path,
                       kubectl) as node:
        row = await eventually(node.row)
        assert row[1] == "NotReady"
        ready = await node.ready()
        assert ready["message"].startswith(  # the missing socket, named at once
            "[container runtime is down: no such socket (is containerd running?), ")
        assert node.task is not None and not node.task.done()


async def test_external_cloud_provider_taint_is_set_at_registration_only(
        apiserver: APIServerProcess, containerd: Containerd, kubectl: Kubectl,
        tmp_path: Path) -> None:
    """As the kubelet with --cloud-provider=external --register-with-taints: the Node is
    created with both taints and the provided-node-ip annotation; once a cloud controller has
    removed the uninitialized taint and written its addresses, neither the running manager nor
    a restarted one puts the taint back or overwrites the addresses."""
    node = Running(apiserver, containerd.socket, tmp_path, kubectl)
    node.config = replace(node.config, cloud_provider="external", provided_node_ip="10.99.0.7",
                          register_with_taints=parse_taints("dedicated=infra:NoExecute"),
                          pod_cidr="10.254.8.0/24")
    node.manager = NodeManager(node.client, node.runtime, node.config)
    async with node:
        await eventually(node.row)
        registered = await kubectl_json(kubectl, "get", "node", node.name)
        assert registered["spec"]["taints"] == [
            {"key": "dedicated", "value": "infra", "effect": "NoExecute"},
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
             "effect": "NoSchedule"}]
        assert registered["metadata"]["annotations"][
            "alpha.kubernetes.io/provided-node-ip"] == "10.99.0.7"
        # What the cloud node controller does: addresses, then providerID and no taint.
        cloud = [{"type": "InternalIP", "address": "10.99.0.7"},
                 {"type": "ExternalIP", "address": "203.0.113.7"},
                 {"type": "Hostname", "address": f"{node.name}.example"}]
        await asyncio.to_thread(kubectl, "patch", "node", node.name, "--subresource=status",
                                "-p", json.dumps({"status": {"addresses": cloud}}))
        kept = [{"key": "dedicated", "value": "infra", "effect": "NoExecute"}]
        await asyncio.to_thread(kubectl, "patch", "node", node.name, "-p", json.dumps(
            {"spec": {"providerID": f"local://{node.name}", "taints": kept}}))
        await asyncio.sleep(PERIOD * 4)  # several status periods
        after = await kubectl_json(kubectl, "get", "node", node.name)
        assert after["spec"]["taints"] == kept
        assert after["status"]["addresses"] == cloud
        # The agent restarted: a new manager adopts the node.
        assert node.task is not None
        node.task.cancel()
        await asyncio.gather(node.task, return_exceptions=True)
        restarted = NodeManager(node.client, node.runtime, node.config)
        node.task = asyncio.create_task(restarted.run())
        await asyncio.sleep(PERIOD * 4)
        assert restarted.node is not None and restarted.last_report is not None
        again = await kubectl_json(kubectl, "get", "node", node.name)
        assert again["spec"]["taints"] == kept
        assert again["status"]["addresses"] == cloud
