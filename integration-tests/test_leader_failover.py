"""Leader election of `pinnace scheduler` and `pinnace controller-manager`, two of each, on the
real apiserver and etcd: one leads; killed with SIGKILL (no goodbye), the other takes over once
the Lease expires, within one lease duration (plus its retry period), and work continues; stopped
with SIGTERM, the leader releases the Lease and the standby takes over at once, long before the
(longer) lease would have expired.

Every pair uses a Lease (and the schedulers a schedulerName) of its own, so nothing else running
in the session competes. No agent runs: the one node is a Node object of this module's pool,
tainted so that only this module's pods (which tolerate the taint) land there.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import Kubectl, pinnace_daemon, wait_for

from pinnace.local.apiserver import APIServerProcess
from pinnace.local.process import Process

POOL = "pinnace.test/pool"
LEASE, RENEW, RETRY = 4.0, 3.0, 0.5  # the kill tests: takeover waits for the expiry
LONG_LEASE, LONG_RENEW = 30.0, 20.0  # the SIGTERM tests: takeover must not wait for it
SLACK = 3.0  # kubectl polling and a busy shared machine


@dataclass
class Env:
    apiserver: APIServerProcess
    kubectl: Kubectl
    workdir: Path
    ns: str
    pool: str


@pytest.fixture(scope="module")
def env(apiserver: APIServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("failover")
    kubectl = Kubectl(apiserver.kubeconfig, workdir / "kube-cache")
    pool = f"f{uuid.uuid4().hex[:6]}"
    node = f"{pool}-node"
    kubectl("create", "namespace", f"failover-{pool}")
    kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, POOL: pool}},
        "spec": {"taints": [{"key": POOL, "value": pool, "effect": "NoSchedule"}]}}))
    allocatable = {"cpu": "8", "memory": "16Gi", "pods": "110"}
    kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"capacity": allocatable, "allocatable": allocatable, "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "fake node for the failover test",
             "lastHeartbeatTime": "2025-01-01T00:00:00Z",
             "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}))
    try:
        yield Env(apiserver, kubectl, workdir, f"failover-{pool}", pool)
    finally:
        kubectl.run("delete", "node", node, "--wait=false")
        kubectl.run("delete", "namespace", f"failover-{pool}", "--wait=false")


def scheduler_flags(name: str, lease: float, renew: float) -> list[str]:
    return ["--scheduler-name", name, "--leader-elect=true", "--lease-name", name,
            "--leader-elect-lease-duration", str(lease), "--leader-elect-renew-deadline",
            str(renew), "--leader-elect-retry-period", str(RETRY)]


def controller_manager_flags(name: str, lease: float, renew: float) -> list[str]:
    return ["--controllers", "replicaset", "--leader-elect=true",
            f"--leader-elect-resource-name={name}", f"--leader-elect-lease-duration={lease}s",
            f"--leader-elect-renew-deadline={renew}s", f"--leader-elect-retry-period={RETRY}s"]


def holder(env: Env, lease: str) -> str:
    result = env.kubectl.run("get", "lease", lease, "-n", "kube-system", "-o",
                             "jsonpath={.spec.holderIdentity}")
    return result.stdout.strip() if result.returncode == 0 else ""


@dataclass
class Pair:
    leader: Process
    standby: Process
    leader_id: str


IDENTITY = {"scheduler": "as {}", "controller-manager": "identity={}"}  # how each names itself


def has_identity(process: Process, identity: str) -> bool:
    component = process.name.rsplit("-", 1)[0]
    return IDENTITY[component].format(identity) in process.log_path.read_text()


@contextmanager
def pair(env: Env, component: str, lease: str, flags: list[str]) -> Iterator[Pair]:
    """Two `pinnace <component>` campaigning for `lease`, started at once; yields once one
    leads with synced caches and the other stands by (both said READY=1)."""
    with ExitStack() as stack:
        processes = [stack.enter_context(pinnace_daemon(
            component, "--kubeconfig", str(env.apiserver.kubeconfig), *flags,
            log=env.workdir / f"{lease}-{i}.log", name=f"{component}-{i}", wait=False))
            for i in (1, 2)]
        for process in processes:
            process.wait_notified(30)
        leader_id = wait_for(lambda: holder(env, lease), "a leader", 30)
        leader, standby = processes if has_identity(processes[0], leader_id) else (
            processes[1], processes[0])
        assert has_identity(leader, leader_id)
        try:
            wait_for(lambda: leader.status == "leading; caches synced", "the leader to work",
                     30)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (leader {leader_id}):\n{leader.log_tail(30)}\n"
                                 f"standby:\n{standby.log_tail(30)}") from None
        assert standby.status == f"standby; {leader_id} leads"  # the standby only campaigns
        yield Pair(leader, standby, leader_id)


def create_pod(env: Env, name: str, scheduler: str) -> None:
    env.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": env.ns},
        "spec": {"schedulerName": scheduler, "nodeSelector": {POOL: env.pool},
                 "tolerations": [{"key": POOL, "operator": "Equal", "value": env.pool}],
                 "containers": [{"name": "c", "image": "busybox",
                                 "resources": {"requests": {"cpu": "10m"}}}]}}))


def node_of(env: Env, pod: str, timeout: float) -> str:
    def bound() -> str:
        got = json.loads(env.kubectl("get", "pod", pod, "-n", env.ns, "-o", "json"))
        return str(got["spec"].get("nodeName") or "")

    return str(wait_for(bound, f"pod {pod} to be bound", timeout))


def scheduled_by(env: Env, pod: str) -> str:
    events = json.loads(env.kubectl("get", "events", "-n", env.ns, "--field-selector",
                                    f"involvedObject.name={pod}", "-o", "json"))["items"]
    [event] = [e for e in events if e["reason"] == "Scheduled"]
    return str(event["reportingInstance"])


def create_replica_set(env: Env, name: str, replicas: int) -> None:
    labels = {"app": name}
    env.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": env.ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "containers": [{"name": "c", "image": "busybox"}]}}}}))


def pods_of(env: Env, replica_set: str) -> int:
    pods = json.loads(env.kubectl("get", "pods", "-n", env.ns, "-l", f"app={replica_set}",
                                  "-o", "json"))["items"]
    return len(pods)


def kill(process: Process) -> float:
    """SIGKILL by PID (no chance to release the lease); return when it was sent."""
    assert process.popen is not None and process.pid is not None
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGKILL)
    process.popen.wait()
    return sent


def takeover(env: Env, lease: str, old: str, since: float, timeout: float) -> tuple[str, float]:
    """Wait for a holder other than `old`; return it and the seconds since `since`."""
    new = wait_for(lambda: (h := holder(env, lease)) and h != old and h, "a new leader",
                   timeout)
    return str(new), time.monotonic() - since


def test_scheduler_killed_leader_is_replaced_within_a_lease(env: Env) -> None:
    name = f"{env.pool}-sched-kill"
    with pair(env, "scheduler", name, scheduler_flags(name, LEASE, RENEW)) as p:
        create_pod(env, "kill-before", name)
        node_of(env, "kill-before", 30)
        assert scheduled_by(env, "kill-before") == p.leader_id
        killed = kill(p.leader)
        create_pod(env, "kill-after", name)
        new_id, took = takeover(env, name, p.leader_id, killed, LEASE + RETRY + SLACK)
        assert has_identity(p.standby, new_id)
        assert took <= LEASE + RETRY + SLACK, f"took {took:.1f}s for a {LEASE:.0f}s lease"
        node_of(env, "kill-after", 30)  # the new leader syncs its caches, then binds
        assert scheduled_by(env, "kill-after") == new_id


def test_scheduler_sigterm_releases_the_lease(env: Env) -> None:
    name = f"{env.pool}-sched-term"
    with pair(env, "scheduler", name, scheduler_flags(name, LONG_LEASE, LONG_RENEW)) as p:
        stopped = time.monotonic()
        p.leader.stop()
        assert p.leader.popen is not None and p.leader.popen.returncode == 0
        assert "released" in p.leader.log_path.read_text()
        new_id, took = takeover(env, name, p.leader_id, stopped, LONG_LEASE)
        assert took < LONG_LEASE / 3, f"took {took:.1f}s: the lease was not released"
        create_pod(env, "term-after", name)
        node_of(env, "term-after", 30)
        assert scheduled_by(env, "term-after") == new_id


def test_controller_manager_killed_leader_is_replaced_within_a_lease(env: Env) -> None:
    name = f"{env.pool}-cm-kill"
    with pair(env, "controller-manager", name, controller_manager_flags(name, LEASE, RENEW)) as p:
        create_replica_set(env, "rs-before", 1)
        wait_for(lambda: pods_of(env, "rs-before") == 1, "the leader's pod", 30)
        killed = kill(p.leader)
        create_replica_set(env, "rs-after", 2)
        new_id, took = takeover(env, name, p.leader_id, killed, LEASE + RETRY + SLACK)
        assert has_identity(p.standby, new_id)
        assert took <= LEASE + RETRY + SLACK, f"took {took:.1f}s for a {LEASE:.0f}s lease"
        wait_for(lambda: pods_of(env, "rs-after") == 2, "pods made by the new leader", 30)
        assert pods_of(env, "rs-before") == 1  # adopted as it is, not made twice


def test_controller_manager_sigterm_releases_the_lease(env: Env) -> None:
    name = f"{env.pool}-cm-term"
    with pair(env, "controller-manager", name,
              controller_manager_flags(name, LONG_LEASE, LONG_RENEW)) as p:
        stopped = time.monotonic()
        p.leader.stop()
        assert p.leader.popen is not None and p.leader.popen.returncode == 0
        new_id, took = takeover(env, name, p.leader_id, stopped, LONG_LEASE)
        assert has_identity(p.standby, new_id)
        assert took < LONG_LEASE / 3, f"took {took:.1f}s: the lease was not released"
        create_replica_set(env, "rs-term", 2)
        wait_for(lambda: pods_of(env, "rs-term") == 2, "pods made by the new leader", 30)
