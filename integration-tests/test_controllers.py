"""`pinnace controller-manager` against the real apiserver, driven by the real kubectl.

No node agent runs here, so pods never become Ready on their own: `Readiness` plays the
kubelet, marking pods Running/Ready through pods/status, and samples what it sees so the tests
can check the rollout invariants (never more than replicas + maxSurge pods, never fewer than
replicas - maxUnavailable ready; Recreate never mixes old and new pods).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl, eventually, pinnace_daemon

from controlplane.client.events import EventSink
from controlplane.client.rest import (
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    PODS,
    REPLICASETS,
    RESTClient,
)
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.daemon import PinnaceDaemon

Object = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"
LEASE_FLAGS = ("--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s",
               "--leader-elect-retry-period=0.5s")


def controller_manager_daemon(apiserver: APIServerProcess, workdir: Path, name: str,
                              status: str) -> AbstractContextManager[PinnaceDaemon]:
    """A leader-elected controller-manager, yielded once ready as `status` says: "leading" or
    "standby"."""
    return pinnace_daemon(
        "controller-manager", "--kubeconfig", str(apiserver.kubeconfig), "--leader-elect=true",
        *LEASE_FLAGS, "--concurrent-deployment-syncs", "3",
        log=workdir / "controller-manager" / f"{name}.log", name=name, status=status)


@pytest.fixture(scope="module")
def controller_manager(apiserver: APIServerProcess, workdir: Path) -> Iterator[PinnaceDaemon]:
    """The leader. The failover test, the last of this module, kills it."""
    with controller_manager_daemon(apiserver, workdir, "controller-manager",
                                   "leading") as proc:
        yield proc


@pytest.fixture
async def ns(client: RESTClient, controller_manager: PinnaceDaemon) -> str:
    name = f"cm-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def run(kubectl: Kubectl, *args: str) -> str:
    return await asyncio.to_thread(kubectl, *args)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def pods_of(client: RESTClient, ns: str, selector: str = "") -> list[Object]:
    items = (await client.list(PODS, ns, label_selector=selector))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def rses_of(client: RESTClient, ns: str) -> list[Object]:
    return list((await client.list(REPLICASETS, ns))["items"])


def is_ready(pod: Object) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class Readiness:
    """Marks the namespace's pods Ready (as a kubelet would) and samples pod counts."""

    def __init__(self, client: RESTClient, ns: str) -> None:
        self.client, self.ns = client, ns
        self.samples: list[tuple[int, int, set[str]]] = []  # (pods, ready, images)
        self._task: asyncio.Task[None] | None = None

    async def mark(self) -> None:
        for pod in await pods_of(self.client, self.ns):
            if not is_ready(pod):
                await self.client.patch(PODS, pod["metadata"]["name"], {"status": {
                    "phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now()}]}},
                    self.ns, subresource="status")

    async def _loop(self) -> None:
        while True:
            pods = await pods_of(self.client, self.ns)
            images = {p["spec"]["containers"][0]["image"] for p in pods}
            self.samples.append((len(pods), sum(map(is_ready, pods)), images))
            await self.mark()
            await asyncio.sleep(0.3)

    async def __aenter__(self) -> Readiness:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


async def test_lease_is_held(client: RESTClient, controller_manager: PinnaceDaemon) -> None:
    lease = await client.get(LEASES, "kube-controller-manager", "kube-system")
    assert lease["spec"]["holderIdentity"]


async def test_deployment_creates_scales_and_replaces_pods(
        client: RESTClient, ns: str, kubectl: Kubectl) -> None:
    await run(kubectl, "-n", ns, "create", "deployment", "web", "--image=busybox",
              "--replicas=3")

    async def count(n: int) -> bool:
        return len(await pods_of(client, ns, "app=web")) == n

    await eventually(lambda: count(3), "3 pods")
    (rs,) = await rses_of(client, ns)
    deployment = await client.get(DEPLOYMENTS, "web", ns)
    assert rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    assert rs["metadata"]["name"] == f"web-{rs['metadata']['labels']['pod-template-hash']}"
    assert rs["metadata"]["annotations"][REVISION] == "1"
    for pod in await pods_of(client, ns, "app=web"):
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["uid"], ref["controller"]) == (
            "ReplicaSet", rs["metadata"]["uid"], True)
        assert pod["metadata"]["name"].startswith(rs["metadata"]["name"] + "-")

    await run(kubectl, "-n", ns, "scale", "deployment", "web", "--replicas=5")
    await eventually(lambda: count(5), "5 pods")
    await run(kubectl, "-n", ns, "scale", "deployment", "web", "--replicas=2")
    await eventually(lambda: count(2), "2 pods")

    victim = (await pods_of(client, ns, "app=web"))[0]["metadata"]["name"]
    await run(kubectl, "-n", ns, "delete", "pod", victim)

    async def replaced() -> bool:
        names = {p["metadata"]["name"] for p in await pods_of(client, ns, "app=web")}
        return len(names) == 2 and victim not in names

    await eventually(replaced, "the deleted pod replaced")
    async with Readiness(client, ns):
        out = await run(kubectl, "-n", ns, "rollout", "status", "deployment/web",
                        "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in out
    status = (await client.get(DEPLOYMENTS, "web", ns))["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"],
            status["availableReplicas"]) == (2, 2, 2, 2)
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons == {"Available": "MinimumReplicasAvailable",
                       "Progressing": "NewReplicaSetAvailable"}

    described = await run(kubectl, "-n", ns, "describe", "deployment", "web")
    (rs,) = await rses_of(client, ns)
    assert f"NewReplicaSet:   {rs['metadata']['name']} (2/2 replicas created)" in described
    assert "ScalingReplicaSet" in described

    events = (await client.list(EVENTS, ns))["items"]
    seen = {(e["source"]["component"], e["reason"]) for e in events}
    assert ("deployment-controller", "ScalingReplicaSet") in seen
    assert ("replicaset-controller", "SuccessfulCreate") in seen
    assert ("replicaset-controller", "SuccessfulDelete") in seen


async def test_rolling_update_history_and_undo(client: RESTClient, ns: str,
                                               kubectl: Kubectl) -> None:
    await run(kubectl, "-n", ns, "create", "deployment", "web", "--image=busybox:1",
              "--replicas=4")
    async with Readiness(client, ns) as readiness:
        await run(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
        readiness.samples.clear()
        await run(kubectl, "-n", ns, "set", "image", "deployment/web", "busybox=busybox:2")
        out = await run(kubectl, "-n", ns, "rollout", "status", "deployment/web",
                        "--timeout=60s")
        assert 'deployment "web" successfully rolled out' in out
        # maxSurge 25% of 4 = 1 (up), maxUnavailable 25% of 4 = 1 (down)
        assert max(n for n, _, _ in readiness.samples) <= 5
        assert min(r for _, r, _ in readiness.samples) >= 3
        images = {i for _, _, imgs in readiness.samples for i in imgs}
        assert images == {"busybox:1", "busybox:2"}

        history = await run(kubectl, "-n", ns, "rollout", "history", "deployment/web")
        revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
        assert revisions == ["1", "2"]

        await run(kubectl, "-n", ns, "rollout", "undo", "deployment/web")
        await run(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    deployment = await client.get(DEPLOYMENTS, "web", ns)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"
    rses = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs
            for rs in await rses_of(client, ns)}
    assert len(rses) == 2  # the undo found the old ReplicaSet again
    assert rses["busybox:1"]["metadata"]["annotations"][REVISION] == "3"
    assert rses["busybox:1"]["metadata"]["annotations"][
        "deployment.kubernetes.io/revision-history"] == "1"
    assert rses["busybox:1"]["spec"]["replicas"] == 4 and rses["busybox:2"]["spec"][
        "replicas"] == 0
    assert deployment["metadata"]["annotations"][REVISION] == "3"
    images = {p["spec"]["containers"][0]["image"] for p in await pods_of(client, ns)}
    assert images == {"busybox:1"}


async def test_recreate_never_mixes_old_and_new_pods(client: RESTClient, ns: str,
                                                    kubectl: Kubectl) -> None:
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "db"},
        "spec": {"replicas": 2, "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                     "containers": [{"name": "db", "image": "busybox:1"}]}}}}
    await asyncio.to_thread(kubectl, "-n", ns, "apply", "-f", "-",
                            input=json.dumps(manifest))
    async with Readiness(client, ns) as readiness:
        await run(kubectl, "-n", ns, "rollout", "status", "deployment/db", "--timeout=60s")
        await run(kubectl, "-n", ns, "set", "image", "deployment/db", "db=busybox:2")
        await run(kubectl, "-n", ns, "rollout", "status", "deployment/db", "--timeout=60s")
    assert all(len(images) <= 1 for _, _, images in readiness.samples)
    pods = await pods_of(client, ns)
    assert [p["spec"]["containers"][0]["image"] for p in pods] == ["busybox:2"] * 2


async def test_pause_resume_and_restart(client: RESTClient, ns: str, kubectl: Kubectl) -> None:
    await run(kubectl, "-n", ns, "create", "deployment", "web", "--image=busybox:1",
              "--replicas=2")
    async with Readiness(client, ns):
        await run(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
        await run(kubectl, "-n", ns, "rollout", "pause", "deployment/web")
        await run(kubectl, "-n", ns, "set", "image", "deployment/web", "busybox=busybox:2")

        async def paused_condition() -> bool:
            d = await client.get(DEPLOYMENTS, "web", ns)
            return any(c.get("reason") == "DeploymentPaused"
                       for c in d["status"].get("conditions") or [])

        await eventually(paused_condition, "the DeploymentPaused condition")
        assert len(await rses_of(client, ns)) == 1  # no rollout while paused
        await run(kubectl, "-n", ns, "rollout", "resume", "deployment/web")
        await run(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
        assert len(await rses_of(client, ns)) == 2
        await run(kubectl, "-n", ns, "rollout", "restart", "deployment/web")
        await run(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    rses = await rses_of(client, ns)
    assert len(rses) == 3
    newest = max(rses, key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))
    assert "kubectl.kubernetes.io/restartedAt" in newest["spec"]["template"]["metadata"][
        "annotations"]
    assert newest["spec"]["replicas"] == 2


async def test_progress_deadline_exceeded(client: RESTClient, ns: str,
                                          kubectl: Kubectl) -> None:
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck"},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 2,
                 "selector": {"matchLabels": {"app": "stuck"}},
                 "template": {"metadata": {"labels": {"app": "stuck"}}, "spec": {
                     "containers": [{"name": "c", "image": "busybox"}]}}}}
    await asyncio.to_thread(kubectl, "-n", ns, "apply", "-f", "-",
                            input=json.dumps(manifest))
    result = await asyncio.to_thread(kubectl.run, "-n", ns, "rollout", "status",
                                     "deployment/stuck", "--timeout=60s")
    assert result.returncode == 1
    assert 'deployment "stuck" exceeded its progress deadline' in result.stderr
    d = await client.get(DEPLOYMENTS, "stuck", ns)
    progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False",
                                                              "ProgressDeadlineExceeded")


async def test_min_ready_seconds_delays_availability(client: RESTClient, ns: str,
                                                     kubectl: Kubectl) -> None:
    await run(kubectl, "-n", ns, "create", "deployment", "slow", "--image=busybox",
              "--replicas=2")
    await run(kubectl, "-n", ns, "patch", "deployment", "slow", "-p",
              '{"spec":{"minReadySeconds":3}}')

    async def rs_has_min_ready() -> bool:
        rses = await rses_of(client, ns)
        return len(rses) == 1 and rses[0]["spec"].get("minReadySeconds") == 3

    await eventually(rs_has_min_ready, "minReadySeconds copied to the ReplicaSet")
    await eventually(lambda: _count(client, ns, 2), "2 pods")
    await Readiness(client, ns).mark()

    async def status(ready: int, available: int) -> bool:
        s = (await client.get(DEPLOYMENTS, "slow", ns))["status"]
        return (s.get("readyReplicas", 0), s.get("availableReplicas", 0)) == (ready, available)

    await eventually(lambda: status(2, 0), "ready but not yet available", timeout=2.5)
    await eventually(lambda: status(2, 2), "available after minReadySeconds", timeout=15)


async def _count(client: RESTClient, ns: str, n: int) -> bool:
    return len(await pods_of(client, ns)) == n


async def test_repeated_events_bump_one_event(client: RESTClient, ns: str) -> None:
    cm = await client.create(CONFIGMAPS, {"metadata": {"name": "subject"}}, ns)
    sink = EventSink(client, host="test")
    recorder = sink.recorder("test-controller")
    for _ in range(3):
        recorder.event(dict(cm, kind="ConfigMap", apiVersion="v1"), "Warning", "Broken",
                       "it broke")
    runner = asyncio.create_task(sink.run())

    async def counted() -> bool:
        items = (await client.list(EVENTS, ns))["items"]
        return len(items) == 1 and items[0]["count"] == 3

    try:
        await eventually(counted, "one event with count 3", timeout=10)
    finally:
        runner.cancel()
    (event,) = (await client.list(EVENTS, ns))["items"]
    assert event["involvedObject"]["name"] == "subject"
    assert event["source"] == {"component": "test-controller", "host": "test"}
    assert event["lastTimestamp"] >= event["firstTimestamp"]


async def test_zz_leader_failover(client: RESTClient, ns: str, kubectl: Kubectl,
                                  controller_manager: PinnaceDaemon,
                                  apiserver: APIServerProcess,
                                  workdir: Path) -> None:
    """Two controller-managers; the leader is killed; the standby leads within a lease."""
    with controller_manager_daemon(apiserver, workdir, "controller-manager-standby",
                                   "standby") as standby:
        assert "controllers started" not in standby.log_path.read_text()  # not leading
        old = (await client.get(LEASES, "kube-controller-manager", "kube-system"))["spec"]
        assert controller_manager.popen is not None
        controller_manager.popen.kill()  # no chance to release the lease
        controller_manager.popen.wait()
        await run(kubectl, "-n", ns, "create", "deployment", "after", "--image=busybox",
                  "--replicas=2")
        await eventually(lambda: _count(client, ns, 2), "pods made by the new leader",
                         timeout=15)
        new = (await client.get(LEASES, "kube-controller-manager", "kube-system"))["spec"]
        assert new["holderIdentity"] != old["holderIdentity"]
        assert new["leaseTransitions"] == old["leaseTransitions"] + 1
        standby.stop()  # SIGTERM: stops cleanly and gives the lease up
        assert standby.popen is not None and standby.popen.returncode == 0
        released = (await client.get(LEASES, "kube-controller-manager", "kube-system"))["spec"]
        assert not released.get("holderIdentity")
