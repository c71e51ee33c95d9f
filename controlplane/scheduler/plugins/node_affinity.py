"""NodeAffinity: nodeSelector and required node affinity as a filter, preferred as a score.

PreFilter narrows the candidates when every required term pins node names with matchFields
`metadata.name In` (DaemonSet pods), as Kubernetes does; the other nodes then read "node(s)
didn't satisfy plugin(s) [NodeAffinity]" in the failure message. The score sums the weights of the
preferred terms a node matches, normalised to 0-100.
"""

from __future__ import annotations

from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    NODE_ADD,
    NODE_LABEL,
    SKIP,
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
    default_normalize,
)
from controlplane.scheduler.plugins.helpers import NodeSelectorTerm, RequiredNodeAffinity
from controlplane.scheduler.podinfo import PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"
CONFLICT = "pod affinity terms conflict"


class NodeAffinity(FilterPlugin, ScorePlugin):
    name = "NodeAffinity"
    events = frozenset({NODE_ADD, NODE_LABEL})

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   snapshot: Snapshot) -> tuple[Status | None, set[str] | None]:
        required = RequiredNodeAffinity(pod.spec)
        if required.empty:
            return SKIP, None
        state.write(self.name, required)
        if required.terms is None:
            return None, None
        names: set[str] | None = None
        for term in required.terms:
            pinned = term.names()
            if pinned is None:
                return None, None  # terms are ORed: this one allows any node
            names = pinned if names is None else names | pinned
        if names is not None and not names:
            return Status.unresolvable(CONFLICT), None
        return None, names

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        required = state.read(self.name, RequiredNodeAffinity)
        if required.empty or required.matches(node.name, node.labels):
            return None
        return Status.unresolvable(REASON)

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: list[NodeInfo]) -> list[Status | None]:
        required = state.read(self.name, RequiredNodeAffinity)
        rejected = Status.unresolvable(REASON)
        return [None if required.matches(n.name, n.labels) else rejected for n in nodes]

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        preferred = (((pod.spec.get("affinity") or {}).get("nodeAffinity") or {})
                     .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
        terms = [(int(p.get("weight") or 0), NodeSelectorTerm(p.get("preference") or {}))
                 for p in preferred if int(p.get("weight") or 0)]
        if not terms:
            return SKIP
        state.write(self.name + "/preferred", terms)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        terms: list[tuple[int, NodeSelectorTerm]] = state.read(self.name + "/preferred", list)
        return sum(weight for weight, term in terms if term.matches(node.name, node.labels))

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        terms: list[tuple[int, NodeSelectorTerm]] = state.read(self.name + "/preferred", list)
        return [sum(weight for weight, term in terms if term.matches(n.name, n.labels))
                for n in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        return default_normalize(scores)
