"""`pinnace cloud-controller-manager --cloud-provider local` against the real apiserver.

One leader-elected CCM per module over the session's etcd and apiserver, with a pool of three
addresses and an instances directory this module writes (as the operator would). Services are
created and deleted with the real kubectl; nodes are plain Node objects (no agent), so "not
Ready" is simply "no Ready condition". The failover test, the last, kills the leader; the
standby must lead within a lease and never hand out an address a Service already shows.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl, eventually, pinnace_daemon

from controlplane.api import errors
from controlplane.client.rest import EVENTS, LEASES, NAMESPACES, NODES, SERVICES, RESTClient
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.daemon import PinnaceDaemon

Object = dict[str, Any]
POOL = ["10.251.7.1", "10.251.7.2", "10.251.7.3"]
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
LEASE_FLAGS = ("--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s",
               "--leader-elect-retry-period=0.5s")


@pytest.fixture(scope="module")
def cloud_dir(workdir: Path) -> Path:
    base = workdir / "cloud"
    (base / "instances").mkdir(parents=True, exist_ok=True)
    (base / "cloud.yaml").write_text(
        f"loadBalancer:\n  addresses: ['{POOL[0]}-{POOL[-1]}']\n"
        f"instances:\n  directory: {base / 'instances'}\n")
    return base


def ccm_daemon(apiserver: APIServerProcess, cloud_dir: Path, name: str,
               status: str) -> AbstractContextManager[PinnaceDaemon]:
    """A leader-elected CCM, yielded once ready as `status` says: "leading" or "standby"."""
    return pinnace_daemon(
        "cloud-controller-manager", "--kubeconfig", str(apiserver.kubeconfig),
        "--cloud-provider", "local", "--cloud-config", str(cloud_dir / "cloud.yaml"),
        "--node-monitor-period=1s", *LEASE_FLAGS, log=cloud_dir / f"{name}.log", name=name,
        status=status)


@pytest.fixture(scope="module")
def ccm(apiserver: APIServerProcess, cloud_dir: Path) -> Iterator[PinnaceDaemon]:
    with ccm_daemon(apiserver, cloud_dir, "ccm", "leading") as proc:
        yield proc


@pytest.fixture
async def ns(client: RESTClient, kubectl: Kubectl, ccm: PinnaceDaemon) -> AsyncIterator[str]:
    """A namespace whose Services are deleted (through the CCM's finalizer) afterwards."""
    name = f"lb-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    await asyncio.to_thread(kubectl.run, "-n", name, "delete", "services", "--all",
                            "--timeout=30s")


def lb_manifest(name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name},
                       "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec}})


async def apply(kubectl: Kubectl, ns: str, manifest: str) -> None:
    await asyncio.to_thread(kubectl, "-n", ns, "apply", "-f", "-", input=manifest)


async def ingress_of(client: RESTClient, ns: str, name: str) -> list[str]:
    svc = await client.get(SERVICES, name, ns)
    return [i["ip"] for i in svc["status"].get("loadBalancer", {}).get("ingress") or []]


async def wait_ingress(client: RESTClient, ns: str, name: str) -> str:
    async def has() -> bool:
        return bool(await ingress_of(client, ns, name))

    await eventually(has, f"an ingress IP for {ns}/{name}")
    (ip,) = await ingress_of(client, ns, name)
    return ip


async def reasons(client: RESTClient, ns: str, name: str) -> list[tuple[str, str]]:
    items = (await client.list(EVENTS, ns))["items"]
    return [(e["reason"], e["message"]) for e in items
            if e["involvedObject"].get("name") == name]


async def gone(client: RESTClient, res: Any, name: str, ns: str = "") -> bool:
    try:
        await client.get(res, name, ns)
    except errors.NotFound:
        return True
    return False


async def test_addresses_from_the_pool_exhaustion_and_release(
        client: RESTClient, kubectl: Kubectl, ns: str) -> None:
    first = {}
    for name in ("a", "b", "c"):
        await apply(kubectl, ns, lb_manifest(name))
        first[name] = await wait_ingress(client, ns, name)
    assert sorted(first.values()) == POOL  # three services, three distinct addresses
    svc = await client.get(SERVICES, "a", ns)
    assert FINALIZER in svc["metadata"]["finalizers"]
    assert ("EnsuredLoadBalancer", "Ensured load balancer") in await reasons(client, ns, "a")
    out = await asyncio.to_thread(kubectl, "-n", ns, "get", "service", "a")
    assert first["a"] in out  # kubectl's EXTERNAL-IP column

    await apply(kubectl, ns, lb_manifest("d"))

    async def refused() -> bool:
        return any(r == "SyncLoadBalancerFailed" and "no free address in the pool" in m
                   for r, m in await reasons(client, ns, "d"))

    await eventually(refused, "SyncLoadBalancerFailed on d")
    assert await ingress_of(client, ns, "d") == []  # Pending
    await asyncio.to_thread(kubectl, "-n", ns, "delete", "service", "a", "--timeout=20s")
    assert await gone(client, SERVICES, "a", ns)  # the finalizer was removed
    assert await wait_ingress(client, ns, "d") == first["a"]  # released, handed on at once
    assert ("DeletedLoadBalancer", "Deleted load balancer") in await reasons(client, ns, "a")


async def test_type_change_class_and_requested_ip(client: RESTClient, kubectl: Kubectl,
                                                  ns: str) -> None:
    await apply(kubectl, ns, lb_manifest("e"))
    ip = await wait_ingress(client, ns, "e")
    await asyncio.to_thread(kubectl, "-n", ns, "patch", "service", "e", "--type=merge", "-p",
                            json.dumps({"spec": {"type": "ClusterIP"}}))

    async def released() -> bool:
        svc = await client.get(SERVICES, "e", ns)
        return (not svc["status"].get("loadBalancer", {}).get("ingress")
                and FINALIZER not in (svc["metadata"].get("finalizers") or []))

    await eventually(released, "e's address released, finalizer removed")
    await apply(kubectl, ns, lb_manifest("other", loadBalancerClass="example.com/other"))
    await apply(kubectl, ns, lb_manifest("g", loadBalancerIP=ip))
    assert await wait_ingress(client, ns, "g") == ip  # the requested (and freed) address
    other = await client.get(SERVICES, "other", ns)
    assert not other["metadata"].get("finalizers") and await ingress_of(client, ns, "other") == []


async def test_nodes_initialized_tainted_kept_and_deleted(client: RESTClient, ccm: PinnaceDaemon,
                                                          cloud_dir: Path) -> None:
    machines = cloud_dir / "instances"
    (machines / "machine-a").write_text(
        "addresses: [{type: InternalIP, address: 10.251.8.11}]\nzone: zone-a\n"
        "region: local\ninstanceType: vm\n")
    (machines / "machine-b").write_text("")
    (machines / "machine-off").write_text("shutdown: true\n")
    uninitialized = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
                     "effect": "NoSchedule"}
    names = ["machine-a", "machine-b", "machine-off", "vanished"]
    try:
        await client.create(NODES, {"metadata": {"name": "machine-a"},
                                    "spec": {"taints": [uninitialized]}})
        for name in names[1:]:
            await client.create(NODES, {"metadata": {"name": name}})

        async def initialized() -> bool:
            node = await client.get(NODES, "machine-a")
            return not node["spec"].get("taints") and bool(node["status"].get("addresses"))

        await eventually(initialized, "machine-a initialized")
        node = await client.get(NODES, "machine-a")
        assert node["spec"]["providerID"] == "local://machine-a"
        assert node["status"]["addresses"] == [{"type": "InternalIP",
                                                "address": "10.251.8.11"}]
        labels = node["metadata"]["labels"]
        assert labels["topology.kubernetes.io/zone"] == "zone-a"
        assert labels["node.kubernetes.io/instance-type"] == "vm"

        await eventually(lambda: gone(client, NODES, "vanished"), "vanished deleted")

        async def tainted() -> bool:
            taints = (await client.get(NODES, "machine-off"))["spec"].get("taints") or []
            return any(t["key"] == "node.cloudprovider.kubernetes.io/shutdown" for t in taints)

        await eventually(tainted, "machine-off tainted shutdown")
        await client.get(NODES, "machine-b")  # exists, not Ready, its machine listed: kept
        (machines / "machine-b").unlink()  # the operator removes the machine
        await eventually(lambda: gone(client, NODES, "machine-b"), "machine-b deleted")
        events = (await client.list(EVENTS, "default"))["items"]
        assert any(e["reason"] == "DeletingNode" and e["involvedObject"]["name"] == "vanished"
                   for e in events)
    finally:
        for name in names:
            try:
                await client.delete(NODES, name)
            except errors.NotFound:
                pass


async def test_zz_leader_failover_keeps_addresses_unique(
        client: RESTClient, kubectl: Kubectl, ns: str, ccm: PinnaceDaemon,
        apiserver: APIServerProcess, cloud_dir: Path) -> None:
    await apply(kubectl, ns, lb_manifest("x"))
    await apply(kubectl, ns, lb_manifest("y"))
    held = {await wait_ingress(client, ns, "x"), await wait_ingress(client, ns, "y")}
    with ccm_daemon(apiserver, cloud_dir, "ccm-standby", "standby") as standby:
        assert "controllers started" not in standby.log_path.read_text()  # not leading
        old = (await client.get(LEASES, "cloud-controller-manager", "kube-system"))["spec"]
        assert ccm.popen is not None
        ccm.popen.send_signal(signal.SIGKILL)  # no chance to release the lease
        ccm.popen.wait()
        await apply(kubectl, ns, lb_manifest("z"))
        new_ip = await wait_ingress(client, ns, "z")
        assert new_ip in POOL and new_ip not in held  # adopted x's and y's from their status
        new = (await client.get(LEASES, "cloud-controller-manager", "kube-system"))["spec"]
        assert new["holderIdentity"] != old["holderIdentity"]
        await asyncio.to_thread(kubectl, "-n", ns, "delete", "services", "--all",
                                "--timeout=30s")  # the new leader removes the finalizers
        standby.stop()
        assert standby.popen is not None and standby.popen.returncode == 0
        released = (await client.get(LEASES, "cloud-controller-manager", "kube-system"))["spec"]
        assert not released.get("holderIdentity")
