"""Namespace deletion and cascading deletion, through `pinnace controller-manager` and kubectl.

A controller-manager (deployment, replicaset, namespace and garbagecollector controllers, no
leader election) runs against the session's apiserver; no scheduler or agent runs, so pods stay
Pending, unscheduled, and their deletion is immediate. kubectl does the deleting and waits as it
does against Kubernetes: `kubectl delete namespace` until the namespace is gone, `kubectl delete
--cascade=foreground` until the owner is gone (which the garbage collector allows only once its
blocking dependents are gone).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl, eventually, pinnace_daemon

from controlplane.api import errors
from controlplane.client.rest import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICASETS,
    SECRETS,
    RESTClient,
)
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.process import Process

Object = dict[str, Any]
CONTROLLERS = "deployment,replicaset,namespace,garbagecollector"


@pytest.fixture(scope="module")
def controller_manager(apiserver: APIServerProcess, workdir: Path) -> Iterator[Process]:
    with pinnace_daemon("controller-manager", "--kubeconfig", str(apiserver.kubeconfig),
                        "--leader-elect=false", "--controllers", CONTROLLERS,
                        log=workdir / "controller-manager" / "gc-namespaces.log",
                        name="controller-manager-gc") as proc:
        yield proc


@pytest.fixture
async def ns(client: RESTClient, controller_manager: Process) -> AsyncIterator[str]:
    name = f"gc-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    try:
        await client.delete(NAMESPACES, name)
    except errors.NotFound:
        pass


async def run(kubectl: Kubectl, *args: str) -> str:
    return await asyncio.to_thread(kubectl, *args)


def deployment(name: str, replicas: int = 2) -> Object:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "containers": [{"name": "c", "image": "busybox"}]}}}}


async def items(client: RESTClient, res: Any, ns: str) -> list[Object]:
    return list((await client.list(res, ns))["items"])


async def deployed(client: RESTClient, ns: str, name: str, replicas: int = 2
                   ) -> tuple[list[Object], list[Object]]:
    """Create a Deployment and wait for its ReplicaSet and pods; return them."""
    await client.create(DEPLOYMENTS, deployment(name, replicas), ns)

    async def ready() -> bool:
        return len(await items(client, REPLICASETS, ns)) == 1 and len(
            await items(client, PODS, ns)) == replicas

    await eventually(ready, f"deployment {name}'s replicaset and {replicas} pods")
    return await items(client, REPLICASETS, ns), await items(client, PODS, ns)


async def gone(client: RESTClient, res: Any, ns: str, name: str = "") -> bool:
    if name:
        try:
            await client.get(res, name, ns)
        except errors.NotFound:
            return True
        return False
    return not await items(client, res, ns)


async def test_kubectl_delete_namespace_deletes_its_content_then_itself(
        client: RESTClient, kubectl: Kubectl, ns: str) -> None:
    await deployed(client, ns, "web")
    await client.create(CONFIGMAPS, {"metadata": {"name": "settings"}, "data": {"a": "1"}}, ns)
    await client.create(SECRETS, {"metadata": {"name": "token"}, "stringData": {"t": "x"}}, ns)
    out = await run(kubectl, "delete", "namespace", ns, "--timeout=45s")
    assert f'namespace "{ns}" deleted' in out
    assert await gone(client, NAMESPACES, "", ns)
    for res in (DEPLOYMENTS, REPLICASETS, PODS, CONFIGMAPS, SECRETS):
        assert await gone(client, res, ns), f"{res.resource} left in {ns}"


async def test_content_held_by_a_finalizer_keeps_the_namespace_and_says_why(
        client: RESTClient, kubectl: Kubectl, ns: str) -> None:
    await client.create(CONFIGMAPS, {"metadata": {
        "name": "held", "finalizers": ["example.com/keep"]}}, ns)
    await run(kubectl, "delete", "namespace", ns, "--wait=false")

    async def says_why() -> bool:
        conditions = {c["type"]: c for c in
                      (await client.get(NAMESPACES, ns)).get("status", {}).get("conditions")
                      or []}
        held = conditions.get("NamespaceFinalizersRemaining", {})
        return bool(held.get("status") == "True")

    await eventually(says_why, "condition NamespaceFinalizersRemaining")
    status = (await client.get(NAMESPACES, ns))["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Terminating"
    assert conditions["NamespaceContentRemaining"]["message"] == \
        "Some resources are remaining: configmaps. has 1 resource instances"
    assert conditions["NamespaceFinalizersRemaining"]["message"] == \
        "Some content in the namespace has finalizers remaining: example.com/keep in 1 " \
        "resource instances"
    assert conditions["NamespaceDeletionContentFailure"]["status"] == "False"
    await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, ns)

    async def namespace_gone() -> bool:
        return await gone(client, NAMESPACES, "", ns)

    await eventually(namespace_gone, f"namespace {ns} to go once the finalizer is removed")


async def test_background_cascade_removes_replicasets_and_pods(
        client: RESTClient, kubectl: Kubectl, ns: str) -> None:
    await deployed(client, ns, "web")
    await run(kubectl, "-n", ns, "delete", "deployment", "web")  # --cascade=background

    async def all_gone() -> bool:
        return await gone(client, REPLICASETS, ns) and await gone(client, PODS, ns)

    await eventually(all_gone, "the replicaset and pods of a deleted deployment to go")


async def test_foreground_cascade_removes_dependents_before_the_owner(
        client: RESTClient, kubectl: Kubectl, ns: str) -> None:
    await deployed(client, ns, "web", replicas=3)
    out = await run(kubectl, "-n", ns, "delete", "deployment", "web", "--cascade=foreground",
                    "--timeout=45s")
    assert 'deployment.apps "web" deleted' in out
    # kubectl waited for the deployment to go; the collector let it go only after its
    # dependents (with blockOwnerDeletion) were gone
    assert await gone(client, DEPLOYMENTS, ns, "web")
    assert await gone(client, REPLICASETS, ns)
    assert await gone(client, PODS, ns)


async def test_orphan_cascade_leaves_the_replicaset_without_its_owner(
        client: RESTClient, kubectl: Kubectl, ns: str) -> None:
    (rs,), pods = await deployed(client, ns, "web")
    await run(kubectl, "-n", ns, "delete", "deployment", "web", "--cascade=orphan",
              "--timeout=45s")
    assert await gone(client, DEPLOYMENTS, ns, "web")
    left = await client.get(REPLICASETS, rs["metadata"]["name"], ns)
    assert left["metadata"]["uid"] == rs["metadata"]["uid"]
    assert not left["metadata"].get("ownerReferences")
    assert not left["metadata"].get("finalizers")
    await asyncio.sleep(1)  # the collector has had every chance to act: the pods stay, owned
    now = await items(client, PODS, ns)
    assert {p["metadata"]["uid"] for p in now} == {p["metadata"]["uid"] for p in pods}
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in now)
