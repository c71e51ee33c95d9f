"""NodeResourcesFit (filter + LeastAllocated/MostAllocated score) and
NodeResourcesBalancedAllocation.

Fit compares the pod's requests with the node's allocatable minus what its bound and assumed pods
request, for cpu, memory, ephemeral-storage, extended resources and the pod count, reporting every
shortfall ("Insufficient cpu", "Too many pods", ...). Scores follow Kubernetes' integer arithmetic:
least-allocated uses the "non-zero" requests (100m / 200Mi for containers that request nothing),
balanced allocation the exact ones and skips pods that request nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_ALLOCATABLE,
    POD_DELETE,
    POD_UPDATE,
    SKIP,
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
)
from controlplane.scheduler.podinfo import CPU, EPHEMERAL_STORAGE, MEMORY, PodInfo, Resources

DEFAULT_RESOURCES: list[dict[str, Any]] = [{"name": CPU, "weight": 1},
                                           {"name": MEMORY, "weight": 1}]
DEFAULT_WEIGHTS = [(CPU, 1), (MEMORY, 1)]  # the common case, scored in one tight loop


def insufficient(pod: Resources, node: NodeInfo) -> list[str]:
    """Every reason the pod's requests do not fit on the node (noderesources.fitsRequest)."""
    reasons = []
    if len(node.pods) + 1 > node.allocatable.pods:
        reasons.append("Too many pods")
    if pod.is_empty():
        return reasons
    free, used = node.allocatable, node.requested
    if pod.milli_cpu > 0 and pod.milli_cpu > free.milli_cpu - used.milli_cpu:
        reasons.append("Insufficient cpu")
    if pod.memory > 0 and pod.memory > free.memory - used.memory:
        reasons.append("Insufficient memory")
    if pod.ephemeral_storage > 0 and (
            pod.ephemeral_storage > free.ephemeral_storage - used.ephemeral_storage):
        reasons.append("Insufficient ephemeral-storage")
    for name, amount in sorted(pod.scalar.items()):
        if amount > 0 and amount > free.scalar.get(name, 0) - used.scalar.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def _weights(args: dict[str, Any], key: str) -> list[tuple[str, int]]:
    specs = args.get(key) or DEFAULT_RESOURCES
    return [(str(s["name"]), int(s.get("weight") or 1)) for s in specs]


def allocatable_and_requested(node: NodeInfo, pod: PodInfo, resource: str,
                              use_requested: bool) -> tuple[int, int]:
    """(allocatable, requested including the pod) for one resource; (0, 0) to skip it."""
    requested = node.requested if use_requested else node.non_zero_requested
    pod_requests = pod.requests if use_requested else pod.non_zero_requests
    if resource == CPU:
        return node.allocatable.milli_cpu, requested.milli_cpu + pod_requests.milli_cpu
    if resource == MEMORY:
        return node.allocatable.memory, requested.memory + pod_requests.memory
    if resource == EPHEMERAL_STORAGE:
        return (node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage + pod.requests.ephemeral_storage)
    wanted = pod.requests.scalar.get(resource, 0)
    if not wanted:
        return 0, 0
    return (node.allocatable.scalar.get(resource, 0),
            node.requested.scalar.get(resource, 0) + wanted)


def least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


class NodeResourcesFit(FilterPlugin, ScorePlugin):
    name = "NodeResourcesFit"
    events = frozenset({NODE_ADD, NODE_ALLOCATABLE, POD_DELETE, POD_UPDATE})

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        super().__init__(args)
        strategy = self.args.get("scoringStrategy") or {}
        kind = strategy.get("type") or "LeastAllocated"
        scorers: dict[str, Callable[[int, int], int]] = {
            "LeastAllocated": least_requested, "MostAllocated": most_requested}
        if kind not in scorers:
            raise ValueError(f"NodeResourcesFit: scoring strategy {kind!r} is not supported "
                             f"(LeastAllocated, MostAllocated)")
        self.scorer = scorers[kind]
        self.resources = _weights(strategy, "resources")

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        reasons = insufficient(pod.requests, node)
        return Status.unschedulable(*reasons) if reasons else None

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: list[NodeInfo]) -> list[Status | None]:
        """`filter` per node, with a quick yes for nodes where cpu, memory and a pod slot fit."""
        wants = pod.requests
        cpu, memory = wants.milli_cpu, wants.memory
        simple = not wants.ephemeral_storage and not wants.scalar
        found: list[Status | None] = []
        for node in nodes:
            free, used = node.allocatable, node.requested
            if (simple and len(node.pods) < free.pods
                    and cpu <= free.milli_cpu - used.milli_cpu
                    and memory <= free.memory - used.memory):
                found.append(None)
            else:
                found.append(self.filter(state, pod, node))
        return found

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        total = weights = 0
        for resource, weight in self.resources:
            allocatable, requested = allocatable_and_requested(node, pod, resource, False)
            if allocatable == 0:
                continue
            total += self.scorer(requested, allocatable) * weight
            weights += weight
        return total // weights if weights else 0

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        if self.resources != DEFAULT_WEIGHTS:
            return super().score_nodes(state, pod, nodes)
        scorer, cpu, memory = self.scorer, pod.non_zero_requests.milli_cpu, \
            pod.non_zero_requests.memory
        found = []
        for node in nodes:  # cpu and memory, weight 1 each: score() without the lookups
            free, used = node.allocatable, node.non_zero_requested
            total = weights = 0
            if free.milli_cpu:
                total += scorer(used.milli_cpu + cpu, free.milli_cpu)
                weights += 1
            if free.memory:
                total += scorer(used.memory + memory, free.memory)
                weights += 1
            found.append(total // weights if weights else 0)
        return found


class NodeResourcesBalancedAllocation(ScorePlugin):
    name = "NodeResourcesBalancedAllocation"
    events = frozenset({NODE_ADD, NODE_ALLOCATABLE, POD_DELETE, POD_UPDATE})

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        super().__init__(args)
        self.resources = _weights(self.args, "resources")

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        if pod.requests.is_empty():
            return SKIP  # best-effort pods would all pile onto one node otherwise
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        fractions = []
        for resource, _ in self.resources:
            allocatable, requested = allocatable_and_requested(node, pod, resource, True)
            if allocatable:
                fractions.append(min(requested / allocatable, 1.0))
        deviation = 0.0
        if len(fractions) == 2:
            deviation = abs((fractions[0] - fractions[1]) / 2)
        elif len(fractions) > 2:
            mean = sum(fractions) / len(fractions)
            deviation = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        return int((1 - deviation) * MAX_NODE_SCORE)

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        if self.resources != DEFAULT_WEIGHTS:
            return super().score_nodes(state, pod, nodes)
        cpu, memory = pod.requests.milli_cpu, pod.requests.memory
        found = []
        for node in nodes:  # cpu and memory: score() without the lookups
            free, used = node.allocatable, node.requested
            if free.milli_cpu and free.memory:
                deviation = abs((min((used.milli_cpu + cpu) / free.milli_cpu, 1.0)
                                 - min((used.memory + memory) / free.memory, 1.0)) / 2)
                found.append(int((1 - deviation) * MAX_NODE_SCORE))
            else:
                found.append(self.score(state, pod, node))
        return found


class NodeResourcesLeastAllocated(ScorePlugin):
    """The pre-v1 name of NodeResourcesFit's LeastAllocated score, still accepted in configs."""

    name = "NodeResourcesLeastAllocated"
    events = NodeResourcesFit.events

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        super().__init__(args)
        self.fit = NodeResourcesFit({"scoringStrategy": {
            "type": "LeastAllocated", "resources": self.args.get("resources")}})

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return self.fit.score(state, pod, node)
