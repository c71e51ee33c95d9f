"""Filters on the node alone: NodeUnschedulable (cordon), NodeName, NodeReady.

NodeReady stands in for the node lifecycle controller's TaintNodesByCondition until that runs:
a node whose Ready condition is False (or missing) is treated as carrying the
`node.kubernetes.io/not-ready:NoSchedule` taint, Unknown as `node.kubernetes.io/unreachable`, so
a pod that tolerates them still fits and the message is the one Kubernetes prints for the taint.
"""

from __future__ import annotations

from controlplane.api.tolerations import tolerated
from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    NODE_ADD,
    NODE_CONDITION,
    NODE_LABEL,
    NODE_TAINT,
    NODE_UNSCHEDULABLE,
    SKIP,
    CycleState,
    FilterPlugin,
    Status,
)
from controlplane.scheduler.podinfo import PodInfo

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


class NodeUnschedulable(FilterPlugin):
    name = "NodeUnschedulable"
    events = frozenset({NODE_ADD, NODE_UNSCHEDULABLE, NODE_TAINT})
    REASON = "node(s) were unschedulable"

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and not tolerated(pod.tolerations, UNSCHEDULABLE_TAINT):
            return Status.unresolvable(self.REASON)
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: list[NodeInfo]) -> list[Status | None]:
        return [self.filter(state, pod, n) if n.unschedulable else None for n in nodes]


class NodeName(FilterPlugin):
    name = "NodeName"
    events = frozenset({NODE_ADD})
    REASON = "node(s) didn't match the requested node name"

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   snapshot: Snapshot) -> tuple[Status | None, set[str] | None]:
        return (None if pod.spec.get("nodeName") else SKIP), None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        wanted = str(pod.spec.get("nodeName") or "")
        if wanted and wanted != node.name:
            return Status.unresolvable(self.REASON)
        return None


class NodeReady(FilterPlugin):
    name = "NodeReady"
    events = frozenset({NODE_ADD, NODE_CONDITION, NODE_TAINT, NODE_LABEL})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.ready == "True":
            return None
        key = UNREACHABLE_TAINT if node.ready == "Unknown" else NOT_READY_TAINT
        if tolerated(pod.tolerations, {"key": key, "effect": "NoSchedule"}):
            return None
        return Status.unresolvable(f"node(s) had untolerated taint {{{key}: }}")

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: list[NodeInfo]) -> list[Status | None]:
        return [None if n.ready == "True" else self.filter(state, pod, n) for n in nodes]
