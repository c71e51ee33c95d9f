"""Whole profiles over snapshots: the chosen node, and failure messages word for word."""

from __future__ import annotations

import random

import pytest

from controlplane.scheduler.config import SchedulerConfig
from controlplane.scheduler.framework import Profile, nodes_to_find
from controlplane.scheduler.messages import (
    Diagnosis,
    FitError,
    NoNodesAvailable,
    fit_error_message,
    histogram,
)
from controlplane.scheduler.nodeinfo import Snapshot
from controlplane.scheduler.plugin import CycleState, Status
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.testing import make_node, make_pod, node_info, snapshot

CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def profile() -> Profile:
    return SchedulerConfig().build_profiles()["default-scheduler"]


def failure(pod: dict, snap: Snapshot) -> str:
    with pytest.raises(FitError) as caught:
        profile().schedule(PodInfo(pod), snap)
    return str(caught.value)


def test_histogram_sorts_as_go_strings() -> None:
    statuses = {f"m{i}": Status.unschedulable("Insufficient memory") for i in range(10)}
    statuses.update(t1=Status.unresolvable("node(s) had untolerated taint {a: }"),
                    t2=Status.unresolvable("node(s) had untolerated taint {a: }"))
    assert histogram(12, statuses, None) == ["10 Insufficient memory",
                                             "2 node(s) had untolerated taint {a: }"]
    diagnosis = Diagnosis(3, {"a": Status.unschedulable("Insufficient cpu", "Too many pods")},
                          absent=Status.unresolvable("x"))
    assert fit_error_message(diagnosis) == (
        "0/3 nodes are available: 1 Insufficient cpu, 1 Too many pods, 2 x.")


def test_the_classic_message() -> None:
    snap = snapshot(node_info(make_node("cp", taints=[CONTROL_PLANE])),
                    node_info(make_node("w1", cpu="1")), node_info(make_node("w2", cpu="1")))
    assert failure(make_pod("p", cpu="2"), snap) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes "
        "are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
        "found for incoming pod.")


def test_every_node_unresolvable() -> None:
    snap = snapshot(*(node_info(make_node(f"n{i}")) for i in range(3)))
    assert failure(make_pod("p", nodeSelector={"disk": "ssd"}), snap) == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def test_not_ready_cordoned_and_ports() -> None:
    port = {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}
    snap = snapshot(node_info(make_node("a", ready="False")),
                    node_info(make_node("b", unschedulable=True)),
                    node_info(make_node("c"), make_pod("x", node_name="c", **port)))
    assert failure(make_pod("p", **port), snap) == (
        "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod "
        "ports, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) "
        "were unschedulable. preemption: 0/3 nodes are available: 1 No preemption victims "
        "found for incoming pod, 2 Preemption is not helpful for scheduling.")


def test_pinned_pod_reports_the_other_nodes_as_prefiltered() -> None:
    snap = snapshot(*(node_info(make_node(n, cpu="1")) for n in ("a", "b", "c")))
    pinned = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}
    assert failure(make_pod("p", cpu="2", affinity=pinned), snap) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) "
        "[NodeAffinity]. preemption: 0/3 nodes are available: 1 No preemption victims found "
        "for incoming pod, 2 Preemption is not helpful for scheduling.")
    conflicting = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["a"]},
            {"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}
    assert failure(make_pod("p", affinity=conflicting), snap) == (
        "0/3 nodes are available: pod affinity terms conflict. preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling.")


def test_preemption_dry_run() -> None:
    low = make_pod("low", cpu="1", node_name="a", priority=0)
    snap = snapshot(node_info(make_node("a", cpu="1"), low),
                    node_info(make_node("b", cpu="1"), make_pod("high", cpu="1", node_name="b",
                                                                priority=1000)))
    # removing `low` frees a's cpu: Kubernetes would preempt; we say we do not
    assert failure(make_pod("p", cpu="1", priority=100), snap).endswith(
        "preemption: not attempted (this scheduler does not evict pods).")
    assert failure(make_pod("p", cpu="2", priority=100), snap) == (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
        "1 Insufficient cpu, 1 No preemption victims found for incoming pod.")
    assert failure(make_pod("p", cpu="1", priority=100, preemptionPolicy="Never"), snap) == (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to "
        "preemptionPolicy=Never.")


def test_no_nodes() -> None:
    with pytest.raises(NoNodesAvailable, match="^no nodes available to schedule pods$"):
        profile().schedule(PodInfo(make_pod("p")), snapshot())


def test_picks_the_best_node_and_breaks_ties_at_random() -> None:
    snap = snapshot(node_info(make_node("busy"), make_pod("x", cpu="3", node_name="busy")),
                    node_info(make_node("idle")))
    assert profile().schedule(PodInfo(make_pod("p", cpu="100m")), snap).node == "idle"
    twins = snapshot(node_info(make_node("a")), node_info(make_node("b")))
    chosen = set()
    p = profile()
    p.rng = random.Random(7)
    for _ in range(20):
        chosen.add(p.schedule(PodInfo(make_pod("p")), twins).node)
    assert chosen == {"a", "b"}


def test_feasible_node_budget() -> None:
    assert nodes_to_find(50, 0) == 50
    assert nodes_to_find(1000, 0) == 420  # (50 - 1000/125)% of the nodes
    assert nodes_to_find(5000, 0) == 500  # 10%
    assert nodes_to_find(100_000, 0) == 5000  # at least 5%
    assert nodes_to_find(150, 10) == 100  # never fewer than 100
    snap = snapshot(*(node_info(make_node(f"n{i:03}")) for i in range(200)))
    p = Profile("s", profile().filters, [], percentage_of_nodes_to_score=50)
    result = p.schedule(PodInfo(make_pod("p")), snap)
    assert result.feasible == 100 and p.next_start == 100


def _node_by_node(p: Profile, state: CycleState, pod: PodInfo, nodes: list, wanted: int,
                  start: int) -> tuple:
    """The filter pass as Kubernetes writes it: node after node until `wanted` fit."""
    feasible, statuses, processed = [], {}, 0
    for offset in range(len(nodes)):
        node = nodes[(start + offset) % len(nodes)]
        processed += 1
        status = p.run_filters(state, pod, node)
        if status is None:
            feasible.append(node.name)
            if len(feasible) >= wanted:
                break
        else:
            statuses[node.name] = status
    return feasible, statuses, (start + processed) % len(nodes)


@pytest.mark.parametrize("seed", range(5))
def test_chunked_filtering_matches_node_by_node(seed: int) -> None:
    rng = random.Random(seed)
    nodes = []
    for i in range(300):
        kind = rng.random()
        nodes.append(node_info(
            make_node(f"n{i:03}", cpu=rng.choice(["1", "2", "4"]),
                      unschedulable=kind < 0.1, ready="False" if 0.1 <= kind < 0.2 else "True",
                      labels={"zone": rng.choice("ab")}),
            *[make_pod(f"x{i}-{j}", cpu="500m", node_name=f"n{i:03}")
              for j in range(rng.randrange(4))]))
    snap = snapshot(*nodes)
    pod = PodInfo(make_pod("p", cpu="1500m", nodeSelector={"zone": "a"}))
    p = profile()
    p.next_start = rng.randrange(300)
    start = p.next_start
    diagnosis = Diagnosis(len(nodes))
    state = CycleState()
    p.pre_filter(state, pod, snap, diagnosis)
    got = p.find_feasible(state, pod, snap.nodes, diagnosis)
    want, statuses, next_start = _node_by_node(p, state, pod, snap.nodes, nodes_to_find(300, 0),
                                               start)
    assert [n.name for n in got] == want
    assert diagnosis.statuses == statuses
    assert p.next_start == next_start
