"""`pinnace scheduler` against the real apiserver and etcd, observed with the real kubectl.

No agent runs here: the nodes are Node objects made through the API (created, then given
allocatable and a Ready condition through the status subresource). Every pod selects this
module's node pool, so nodes or pods other tests leave in the session do not change the outcome;
foreign nodes only add "didn't match Pod's node affinity/selector" to failure messages.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Kubectl, pinnace_daemon, wait_for

from pinnace.local.apiserver import APIServerProcess
from pinnace.local.daemon import PinnaceDaemon

POOL = "pinnace.test/pool"


@dataclass
class Cluster:
    kubectl: Kubectl
    ns: str
    pool: str
    node_names: list[str]
    workdir: Path

    def node(self, short: str) -> str:
        return f"{self.pool}-{short}"


def make_node(kubectl: Kubectl, name: str, pool: str, *, cpu: str, memory: str = "8Gi",
              labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
              ready: str = "True") -> None:
    pool_taint = {"key": POOL, "value": pool, "effect": "NoSchedule"}  # keeps others' pods off
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, POOL: pool,
                                                  **(labels or {})}},
            "spec": {"taints": [pool_taint, *(taints or [])]}}
    kubectl("create", "-f", "-", input=json.dumps(node))
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "20Gi"}
    status = {"status": {"capacity": allocatable, "allocatable": allocatable, "conditions": [
        {"type": "Ready", "status": ready, "reason": "KubeletReady" if ready == "True"
         else "KubeletNotReady", "message": "fake node for the scheduler test",
         "lastHeartbeatTime": "2025-01-01T00:00:00Z",
         "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}
    kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p",
            json.dumps(status))


def scheduler_daemon(apiserver: APIServerProcess, workdir: Path, name: str,
                     *extra: str) -> AbstractContextManager[PinnaceDaemon]:
    """`pinnace scheduler`, yielded once it leads with synced caches (it schedules)."""
    return pinnace_daemon("scheduler", "--kubeconfig", str(apiserver.kubeconfig), *extra,
                          log=workdir / f"{name}.log", name=name, status="leading")


@pytest.fixture(scope="module")
def cluster(apiserver: APIServerProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Four fake nodes of one pool (tainted for it) and the default scheduler, leader-elected."""
    workdir = tmp_path_factory.mktemp("scheduler")
    kubectl = Kubectl(apiserver.kubeconfig, workdir / "kube-cache")
    pool = f"s{uuid.uuid4().hex[:6]}"
    ns = f"sched-{pool}"
    kubectl("create", "namespace", ns)
    names: list[str] = []
    try:
        for short, cpu, extra in (
                ("small", "1", {"memory": "2Gi"}),
                ("big", "4", {"labels": {"disk": "ssd"}}),
                ("tainted", "8", {"taints": [{"key": "dedicated", "value": "gpu",
                                              "effect": "NoSchedule"}]}),
                ("notready", "16", {"ready": "False"})):
            names.append(f"{pool}-{short}")
            make_node(kubectl, names[-1], pool, cpu=cpu, **extra)  # type: ignore[arg-type]
        with scheduler_daemon(apiserver, workdir, "scheduler"):
            yield Cluster(kubectl, ns, pool, names, workdir)
    finally:
        for name in names:
            kubectl.run("delete", "node", name, "--wait=false")


def create_pod(c: Cluster, name: str, *, cpu: str | None = None, scheduler: str | None = None,
               pool: bool = True, **spec: Any) -> None:
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    selector = {POOL: c.pool} if pool else {}
    selector.update(spec.pop("nodeSelector", {}))
    spec["tolerations"] = [*spec.get("tolerations", []),
                           {"key": POOL, "operator": "Equal", "value": c.pool}]
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": c.ns},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                                     "resources": resources}],
                     "nodeSelector": selector, **spec}}
    if scheduler:
        body["spec"]["schedulerName"] = scheduler
    c.kubectl("create", "-f", "-", input=yaml.safe_dump(body))


def get_pod(c: Cluster, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = json.loads(c.kubectl("get", "pod", name, "-n", c.ns, "-o", "json"))
    return pod


def node_of(c: Cluster, name: str, timeout: float = 30.0) -> str:
    return str(wait_for(lambda: get_pod(c, name)["spec"].get("nodeName"),
                        f"pod {name} to be bound", timeout))


def condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((cond for cond in pod.get("status", {}).get("conditions") or []
                 if cond["type"] == "PodScheduled"), None)


def events_for(c: Cluster, name: str) -> list[dict[str, Any]]:
    found = json.loads(c.kubectl("get", "events", "-n", c.ns, "--field-selector",
                                 f"involvedObject.name={name}", "-o", "json"))
    return list(found["items"])


def expected_failure(c: Cluster, own: list[tuple[str, int]], preemptable: int) -> str:
    """The Kubernetes message, given the reasons of this pool's nodes (others: selector)."""
    total = len(json.loads(c.kubectl("get", "nodes", "-o", "json"))["items"])
    reasons = dict(own)
    foreign = total - sum(count for _, count in own)
    selector = "node(s) didn't match Pod's node affinity/selector"
    if foreign:
        reasons[selector] = reasons.get(selector, 0) + foreign
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    after = {"No preemption victims found for incoming pod": preemptable,
             "Preemption is not helpful for scheduling": total - preemptable}
    tail = sorted(f"{count} {reason}" for reason, count in after.items() if count)
    return (f"0/{total} nodes are available: {', '.join(parts)}. preemption: 0/{total} nodes "
            f"are available: {', '.join(tail)}.")


def test_pods_land_by_resources_selectors_and_taints(cluster: Cluster) -> None:
    c = cluster
    create_pod(c, "needs-3cpu", cpu="3")
    create_pod(c, "wants-ssd", nodeSelector={"disk": "ssd"})
    create_pod(c, "gpu-job", cpu="6", tolerations=[
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    create_pod(c, "tiny", cpu="100m")
    assert node_of(c, "needs-3cpu") == c.node("big")
    assert node_of(c, "wants-ssd") == c.node("big")
    assert node_of(c, "gpu-job") == c.node("tainted")
    assert node_of(c, "tiny") in (c.node("small"), c.node("big"))
    pod = get_pod(c, "needs-3cpu")
    assert (condition(pod) or {}).get("status") == "True"
    scheduled = wait_for(lambda: [e for e in events_for(c, "needs-3cpu")
                                  if e["reason"] == "Scheduled"], "the Scheduled event")
    assert scheduled[0]["type"] == "Normal"
    assert scheduled[0]["message"] == (
        f"Successfully assigned {c.ns}/needs-3cpu to {c.node('big')}")
    assert scheduled[0]["source"]["component"] == "default-scheduler"
    assert c.kubectl("get", "pod", "needs-3cpu", "-n", c.ns, "-o", "wide").split("\n")[1].split(
    )[6] == c.node("big")


def test_bound_pods_count_before_they_run(cluster: Cluster) -> None:
    c = cluster
    pin = {"kubernetes.io/hostname": c.node("small")}
    create_pod(c, "first", cpu="700m", nodeSelector=pin)
    assert node_of(c, "first") == c.node("small")
    create_pod(c, "second", cpu="700m", nodeSelector=pin)  # "first" is bound, not running
    pod = wait_for(lambda: condition(get_pod(c, "second")), "PodScheduled=False on second")
    assert pod["status"] == "False" and pod["reason"] == "Unschedulable"
    assert pod["message"] == expected_failure(c, [
        ("Insufficient cpu", 1), ("node(s) didn't match Pod's node affinity/selector", 1),
        ("node(s) had untolerated taint {dedicated: gpu}", 1),
        ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }", 1)], preemptable=1)
    assert not get_pod(c, "second")["spec"].get("nodeName")


def test_impossible_pod_waits_with_its_reason_then_fits_a_new_node(cluster: Cluster) -> None:
    c = cluster
    create_pod(c, "huge", cpu="32")
    cond = wait_for(lambda: condition(get_pod(c, "huge")), "PodScheduled=False on huge")
    message = expected_failure(c, [
        ("Insufficient cpu", 2), ("node(s) had untolerated taint {dedicated: gpu}", 1),
        ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }", 1)], preemptable=2)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable",
                                                                 message)
    failed = wait_for(lambda: [e for e in events_for(c, "huge")
                               if e["reason"] == "FailedScheduling"], "FailedScheduling")
    assert failed[0]["type"] == "Warning" and failed[0]["message"] == message
    described = c.kubectl("describe", "pod", "huge", "-n", c.ns)
    assert "Warning  FailedScheduling" in described
    assert "default-scheduler" in described
    assert "0/" in described and "Insufficient cpu" in described
    assert re.search(r"PodScheduled\s+False", described)
    time.sleep(2)  # nothing changes: no retries, no new events
    assert all(e.get("count", 1) <= 2 for e in events_for(c, "huge"))
    c.node_names.append(c.node("huge"))
    make_node(c.kubectl, c.node("huge"), c.pool, cpu="64")
    assert node_of(c, "huge", timeout=20) == c.node("huge")
    assert (condition(get_pod(c, "huge")) or {}).get("status") == "True"


def test_second_scheduler_takes_only_its_own_pods(cluster: Cluster,
                                                  apiserver: APIServerProcess) -> None:
    c = cluster
    custom = f"{c.pool}-custom"
    with scheduler_daemon(apiserver, c.workdir, "custom-scheduler", "--scheduler-name", custom,
                          "--leader-elect=false") as second:
        create_pod(c, "for-custom", scheduler=custom, cpu="100m")
        create_pod(c, "for-nobody", scheduler="nobody-runs-this")
        create_pod(c, "for-default", cpu="100m")
        assert node_of(c, "for-custom")
        assert node_of(c, "for-default")
        by = {name: [e["source"]["component"] for e in events_for(c, name)
                     if e["reason"] == "Scheduled"] for name in ("for-custom", "for-default")}
        assert by == {"for-custom": [custom], "for-default": ["default-scheduler"]}
        time.sleep(2)
        orphan = get_pod(c, "for-nobody")
        assert not orphan["spec"].get("nodeName") and condition(orphan) is None
        assert events_for(c, "for-nobody") == []
    assert not second.alive()
