"""DaemonSets, default ServiceAccounts and pod GC on the real apiserver, scheduler and
controller-manager, driven by the real kubectl.

The nodes are Node objects made through the API (Ready, with allocatable), tainted and labelled
for this module's pool so other tests' pods and nodes never mix in. No agent runs: `FakeKubelet`
(a thread with its own event loop) plays the kubelet of the pool's nodes, marking bound pods
Running/Ready and finishing the deletion of pods being deleted, and it samples each DaemonSet's
pods per node before acting, so the rolling-update test can check its invariants.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import Kubectl, pinnace_daemon, wait_for

from controlplane.api import errors
from controlplane.client import kubeconfig
from controlplane.client.rest import PODS, RESTClient
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.process import Process

Object = dict[str, Any]
POOL = "pinnace.test/pool"
CONTROLLERS = "daemonset,serviceaccount,podgc,garbagecollector"


def make_node(kubectl: Kubectl, name: str, labels: dict[str, str],
              taints: list[Object]) -> None:
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            "spec": {"taints": taints}}
    kubectl("create", "-f", "-", input=json.dumps(node))
    allocatable = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
    status = {"status": {"capacity": allocatable, "allocatable": allocatable, "conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "message": "fake node for the daemonset test", "lastHeartbeatTime": now(),
         "lastTransitionTime": now()}]}}
    kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p",
            json.dumps(status))


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_ready(pod: Object) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


@dataclass
class FakeKubelet:
    """Runs bound pods of `ns` on `nodes` (Ready at once) and finishes their deletions."""

    apiserver: APIServerProcess
    ns: str
    nodes: set[str]
    samples: list[dict[str, tuple[int, int]]] = field(default_factory=list)  # node -> live, ready
    sample_selector: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        client = RESTClient(kubeconfig.load(self.apiserver.kubeconfig))
        try:
            while not self._stop.is_set():
                try:
                    await self._tick(client)
                except errors.APIError:
                    pass
                await asyncio.sleep(0.2)
        finally:
            await client.close()

    async def _tick(self, client: RESTClient) -> None:
        pods = (await client.list(PODS, self.ns))["items"]
        mine = [p for p in pods if p["spec"].get("nodeName") in self.nodes]
        if self.sample_selector:
            key, _, value = self.sample_selector.partition("=")
            sample: dict[str, tuple[int, int]] = {}
            for pod in mine:
                if (pod["metadata"].get("labels") or {}).get(key) != value or pod[
                        "metadata"].get("deletionTimestamp"):
                    continue
                live, ready = sample.get(pod["spec"]["nodeName"], (0, 0))
                sample[pod["spec"]["nodeName"]] = (live + 1, ready + is_ready(pod))
            self.samples.append(sample)
        for pod in mine:
            m = pod["metadata"]
            try:
                if m.get("deletionTimestamp"):
                    await client.delete(PODS, m["name"], self.ns, grace_period=0)
                elif not is_ready(pod):
                    await client.patch(PODS, m["name"], {"status": {
                        "phase": "Running", "conditions": [
                            {"type": "Ready", "status": "True", "lastTransitionTime": now()}]}},
                        self.ns, subresource="status")
            except errors.NotFound:
                pass


@dataclass
class Cluster:
    kubectl: Kubectl
    ns: str
    pool: str
    nodes: list[str]  # Ready, in the pool
    tainted: str  # in the pool, tainted dedicated=db:NoSchedule
    kubelet: FakeKubelet
    controller_manager: Process


@pytest.fixture(scope="module")
def cluster(apiserver: APIServerProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("daemonset")
    kubectl = Kubectl(apiserver.kubeconfig, workdir / "kube-cache")
    pool = f"d{uuid.uuid4().hex[:6]}"
    ns = f"ds-{pool}"
    kubectl("create", "namespace", ns)
    pool_taint = {"key": POOL, "value": pool, "effect": "NoSchedule"}
    names = [f"{pool}-{i}" for i in range(1, 4)]
    tainted = f"{pool}-tainted"
    made: list[str] = []
    kubelet = FakeKubelet(apiserver, ns, {*names, tainted})
    try:
        for name in names:
            make_node(kubectl, name, {POOL: pool}, [pool_taint])
            made.append(name)
        make_node(kubectl, tainted, {POOL: pool},
                  [pool_taint, {"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
        made.append(tainted)
        kc = str(apiserver.kubeconfig)
        with (pinnace_daemon("scheduler", "--kubeconfig", kc, "--leader-elect=false",
                             log=workdir / "scheduler.log"),
              pinnace_daemon("controller-manager", "--kubeconfig", kc, "--leader-elect=false",
                             f"--controllers={CONTROLLERS}", "--pod-gc-check-period=1s",
                             "--pod-gc-quarantine=2s",
                             log=workdir / "controller-manager.log") as controller_manager):
            kubelet.start()
            try:
                yield Cluster(kubectl, ns, pool, names, tainted, kubelet, controller_manager)
            finally:
                kubelet.stop()
    finally:
        for name in made:
            kubectl.run("delete", "node", name, "--wait=false")
        kubectl.run("delete", "namespace", ns, "--wait=false")


def daemonset(c: Cluster, name: str, *, image: str = "busybox:1",
              tolerations: Sequence[Object] = (), **spec: Any) -> None:
    body = {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": c.ns},
            "spec": {"selector": {"matchLabels": {"app": name}}, **spec,
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "nodeSelector": {POOL: c.pool},
                         "tolerations": [{"key": POOL, "operator": "Exists"}, *tolerations],
                         "containers": [{"name": "main", "image": image}]}}}}
    c.kubectl("apply", "-f", "-", input=json.dumps(body))


def pods(c: Cluster, selector: str) -> list[Object]:
    items: list[Object] = json.loads(c.kubectl("get", "pods", "-n", c.ns, "-l", selector,
                                               "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def placed(c: Cluster, selector: str) -> dict[str, str]:
    """node -> image of the live, bound, Ready pods."""
    return {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"]
            for p in pods(c, selector) if p["spec"].get("nodeName") and is_ready(p)}


def ds_status(c: Cluster, name: str) -> Object:
    obj: Object = json.loads(c.kubectl("get", "ds", name, "-n", c.ns, "-o", "json"))
    return dict(obj.get("status") or {})


def test_one_pod_per_ready_node_and_none_on_a_tainted_one(cluster: Cluster) -> None:
    c = cluster
    daemonset(c, "agent")
    wait_for(lambda: set(placed(c, "app=agent")) == set(c.nodes), "a pod on each pool node")
    time.sleep(1)
    assert set(placed(c, "app=agent")) == set(c.nodes)  # and still none on the tainted one
    status = wait_for(lambda: (s := ds_status(c, "agent")).get("numberAvailable") == 3 and s,
                      "status to count 3 available pods")
    assert status["desiredNumberScheduled"] == 3 and status["currentNumberScheduled"] == 3
    assert status["updatedNumberScheduled"] == 3 and status["observedGeneration"] == 1
    pod = pods(c, "app=agent")[0]
    assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
    revisions = json.loads(c.kubectl("get", "controllerrevisions", "-n", c.ns, "-l",
                                     "app=agent", "-o", "json"))["items"]
    assert [r["metadata"]["labels"]["controller-revision-hash"] for r in revisions] == [
        pod["metadata"]["labels"]["controller-revision-hash"]]
    keys = {t["key"] for t in pod["spec"]["tolerations"]}
    assert {"node.kubernetes.io/unreachable", "node.kubernetes.io/unschedulable"} <= keys
    events = c.kubectl("get", "events", "-n", c.ns, "--field-selector",
                       "involvedObject.kind=DaemonSet,involvedObject.name=agent")
    assert "SuccessfulCreate" in events

    daemonset(c, "tolerant", tolerations=[{"key": "dedicated", "operator": "Exists"}])
    wait_for(lambda: set(placed(c, "app=tolerant")) == {*c.nodes, c.tainted},
             "the tolerant DaemonSet on the tainted node too")
    c.kubectl("delete", "ds", "tolerant", "-n", c.ns)
    wait_for(lambda: not pods(c, "app=tolerant"), "the tolerant DaemonSet's pods to go")


def test_nodes_added_relabelled_and_removed_are_followed(cluster: Cluster) -> None:
    c = cluster
    wait_for(lambda: set(placed(c, "app=agent")) == set(c.nodes), "the agent pods")
    extra = f"{c.pool}-extra"
    make_node(c.kubectl, extra, {POOL: c.pool},
              [{"key": POOL, "value": c.pool, "effect": "NoSchedule"}])
    c.kubelet.nodes.add(extra)
    try:
        wait_for(lambda: extra in placed(c, "app=agent"), "a pod on the new node")
        c.kubectl("label", "node", extra, f"{POOL}-")
        wait_for(lambda: extra not in {p["spec"].get("nodeName")
                                       for p in pods(c, "app=agent")},
                 "the pod to leave the relabelled node")
        c.kubectl("label", "node", extra, f"{POOL}={c.pool}")
        wait_for(lambda: extra in placed(c, "app=agent"), "the pod back on the node")
    finally:
        c.kubectl("delete", "node", extra)
    wait_for(lambda: ds_status(c, "agent").get("desiredNumberScheduled") == 3,
             "the status to forget the deleted node")
    wait_for(lambda: extra not in {p["spec"].get("nodeName") for p in pods(c, "app=agent")},
             "pod GC to remove the pod of the deleted node")


def test_rolling_update_replaces_one_pod_at_a_time_and_rolls_back(cluster: Cluster) -> None:
    c = cluster
    wait_for(lambda: len(placed(c, "app=agent")) == 3, "the agent pods")
    c.kubelet.samples.clear()
    c.kubelet.sample_selector = "app=agent"
    c.kubectl("set", "image", "ds/agent", "-n", c.ns, "main=busybox:2")
    result = c.kubectl.run("rollout", "status", "ds/agent", "-n", c.ns, "--timeout=120s",
                           timeout=130)
    assert result.returncode == 0, result.stderr
    assert 'daemon set "agent" successfully rolled out' in result.stdout
    c.kubelet.sample_selector = ""
    assert set(placed(c, "app=agent").values()) == {"busybox:2"}
    samples = [s for s in c.kubelet.samples if s]
    assert samples, "the kubelet sampled nothing"
    for sample in samples:
        assert max(live for live, _ in sample.values()) <= 1, sample  # maxSurge 0
        assert sum(1 for _, ready in sample.values() if ready) >= 2, sample  # maxUnavailable 1
    assert any(sum(1 for _, r in s.values() if r) == 2 for s in samples)  # it did roll
    assert pods(c, "app=agent")[0]["metadata"]["labels"]["pod-template-generation"] == "2"

    history = c.kubectl("rollout", "history", "ds/agent", "-n", c.ns)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    c.kubectl("rollout", "undo", "ds/agent", "-n", c.ns)
    wait_for(lambda: set(placed(c, "app=agent").values()) == {"busybox:1"}
             and len(placed(c, "app=agent")) == 3, "the rollback to busybox:1")
    result = c.kubectl.run("rollout", "status", "ds/agent", "-n", c.ns, "--timeout=60s",
                           timeout=70)
    assert result.returncode == 0, result.stderr
    history = c.kubectl("rollout", "history", "ds/agent", "-n", c.ns)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]


def test_rolling_update_with_max_surge_keeps_every_node_available(cluster: Cluster) -> None:
    c = cluster
    daemonset(c, "surge", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 1, "maxUnavailable": 0}})
    wait_for(lambda: len(placed(c, "app=surge")) == 3, "the surge pods")
    c.kubelet.samples.clear()
    c.kubelet.sample_selector = "app=surge"
    c.kubectl("set", "image", "ds/surge", "-n", c.ns, "main=busybox:2")
    result = c.kubectl.run("rollout", "status", "ds/surge", "-n", c.ns, "--timeout=120s",
                           timeout=130)
    c.kubelet.sample_selector = ""
    assert result.returncode == 0, result.stderr
    assert set(placed(c, "app=surge").values()) == {"busybox:2"}
    samples = [s for s in c.kubelet.samples if s]
    for sample in samples:
        assert sum(1 for _, ready in sample.values() if ready) == 3, sample  # none missing
        assert sum(live for live, _ in sample.values()) <= 4, sample  # one surge pod at most
    assert any(max(live for live, _ in s.values()) == 2 for s in samples)  # it did surge
    c.kubectl("delete", "ds", "surge", "-n", c.ns)


def test_default_service_account_appears_and_comes_back(cluster: Cluster) -> None:
    c = cluster
    ns = f"sa-{uuid.uuid4().hex[:8]}"
    c.kubectl("create", "namespace", ns)
    try:
        wait_for(lambda: c.kubectl.run("get", "sa", "default", "-n", ns).returncode == 0,
                 "the default service account")
        c.kubectl("delete", "sa", "default", "-n", ns)
        wait_for(lambda: c.kubectl.run("get", "sa", "default", "-n", ns).returncode == 0,
                 "the default service account to be recreated")
    finally:
        c.kubectl("delete", "namespace", ns, "--wait=false")


def test_pod_gc_removes_the_pods_of_a_deleted_node(cluster: Cluster) -> None:
    c = cluster
    node = f"{c.pool}-doomed"
    make_node(c.kubectl, node, {}, [])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "namespace": c.ns},
           "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]}}
    c.kubectl("create", "-f", "-", input=json.dumps(pod))
    time.sleep(3)  # a pod on a live node stays
    assert c.kubectl.run("get", "pod", "orphan", "-n", c.ns).returncode == 0
    c.kubectl("delete", "node", node)
    wait_for(lambda: c.kubectl.run("get", "pod", "orphan", "-n", c.ns).returncode != 0,
             "pod GC to delete the orphaned pod")
