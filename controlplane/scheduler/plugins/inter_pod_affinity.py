"""InterPodAffinity: required pod affinity / anti-affinity as a filter, preferred as a score.

PreFilter counts, per topology pair (key, value), the existing pods that match the incoming pod's
required affinity terms (all of them) and anti-affinity terms (any), and the existing pods whose
own required anti-affinity matches the incoming pod. Filter then only looks the node's topology
values up. The first pod of a group that has affinity to itself may go anywhere with the keys.
The score adds preferred term weights (and existing pods' required affinity at
hardPodAffinityWeight) per topology value, then scales the sums to 0-100.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    MAX_NODE_SCORE,
    NAMESPACE_CHANGE,
    NODE_ADD,
    NODE_LABEL,
    POD_ADD,
    POD_DELETE,
    POD_UPDATE,
    SKIP,
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
)
from controlplane.scheduler.podindex import (
    PREFERRED_AFFINITY,
    PREFERRED_ANTI_AFFINITY,
    REQUIRED_AFFINITY,
    REQUIRED_ANTI_AFFINITY,
)
from controlplane.scheduler.podinfo import AffinityTerm, PodInfo

AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
Pair = tuple[str, str]


@dataclass
class _FilterState:
    affinity: Counter[Pair] = field(default_factory=Counter)
    anti_affinity: Counter[Pair] = field(default_factory=Counter)
    existing_anti_affinity: Counter[Pair] = field(default_factory=Counter)


def _count(counter: Counter[Pair], term: AffinityTerm, node: NodeInfo | None,
           amount: int = 1) -> None:
    value = node.labels.get(term.topology_key) if node is not None else None
    if value is not None:
        counter[(term.topology_key, value)] += amount


def filter_state(pod: PodInfo, snapshot: Snapshot) -> _FilterState:
    """The topology-pair counts Filter needs (InterPodAffinity.PreFilter).

    Existing pods' anti-affinity comes from their distinct terms; the incoming pod's terms look
    at the pods the index finds for their selectors. Pods on nodes outside the snapshot count
    nowhere.
    """
    state = _FilterState()
    index, nodes = snapshot.index, snapshot.by_name
    own_ns_labels = snapshot.labels_of_namespace(pod.namespace)
    for term, per_node in index.terms(REQUIRED_ANTI_AFFINITY):
        if term.matches(pod, own_ns_labels):
            for name, count in per_node.items():
                _count(state.existing_anti_affinity, term, nodes.get(name), count)
    if pod.required_affinity:
        for existing, name in index.candidates(pod.required_affinity[0].selector):
            ns_labels = snapshot.labels_of_namespace(existing.namespace)
            if all(t.matches(existing, ns_labels) for t in pod.required_affinity):
                for term in pod.required_affinity:
                    _count(state.affinity, term, nodes.get(name))
    for term in pod.required_anti_affinity:
        for existing, name in index.candidates(term.selector):
            if term.matches(existing, snapshot.labels_of_namespace(existing.namespace)):
                _count(state.anti_affinity, term, nodes.get(name))
    return state


def _satisfies_affinity(pod: PodInfo, state: _FilterState, node: NodeInfo,
                        own_ns_labels: dict[str, str]) -> bool:
    pods_exist = True
    for term in pod.required_affinity:
        value = node.labels.get(term.topology_key)
        if value is None:
            return False  # every topology key must be on the node
        if state.affinity[(term.topology_key, value)] <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # The first pod of a series with affinity to itself may start anywhere.
    return not +state.affinity and all(t.matches(pod, own_ns_labels)
                                       for t in pod.required_affinity)


class InterPodAffinity(FilterPlugin, ScorePlugin):
    name = "InterPodAffinity"
    events = frozenset({NODE_ADD, NODE_LABEL, POD_ADD, POD_UPDATE, POD_DELETE, NAMESPACE_CHANGE})

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        super().__init__(args)
        self.hard_weight = int(self.args.get("hardPodAffinityWeight", 1))
        self.ignore_existing = bool(self.args.get("ignorePreferredTermsOfExistingPods", False))

    # -- filter ---------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   snapshot: Snapshot) -> tuple[Status | None, set[str] | None]:
        if pod.parse_error:
            return Status.unresolvable(f"parsing pod: {pod.parse_error}"), None
        computed = filter_state(pod, snapshot)
        if not (+computed.existing_anti_affinity or pod.required_affinity
                or pod.required_anti_affinity):
            return SKIP, None
        state.write(self.name, computed)
        state.write(self.name + "/ns", snapshot.labels_of_namespace(pod.namespace))
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        computed = state.read(self.name, _FilterState)
        if not _satisfies_affinity(pod, computed, node, state.read(self.name + "/ns", dict)):
            return Status.unresolvable(AFFINITY_REASON)
        for term in pod.required_anti_affinity:
            value = node.labels.get(term.topology_key)
            if value is not None and computed.anti_affinity[(term.topology_key, value)] > 0:
                return Status.unschedulable(ANTI_AFFINITY_REASON)
        for pair in node.labels.items():
            if computed.existing_anti_affinity[pair] > 0:
                return Status.unschedulable(EXISTING_ANTI_AFFINITY_REASON)
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: list[NodeInfo]) -> list[Status | None]:
        if pod.required_affinity or pod.required_anti_affinity:
            return super().filter_nodes(state, pod, nodes)
        # Only existing pods' anti-affinity applies: a node is out when one of its labels is a
        # topology pair such a pod occupies.
        occupied = {pair for pair, count in
                    state.read(self.name, _FilterState).existing_anti_affinity.items()
                    if count > 0}
        rejected = Status.unschedulable(EXISTING_ANTI_AFFINITY_REASON)
        return [None if occupied.isdisjoint(n.labels.items()) else rejected for n in nodes]

    # -- score ----------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        has_preferences = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if self.ignore_existing and not has_preferences:
            return SKIP
        scores: dict[str, Counter[str]] = {}
        index, by_name = snapshot.index, snapshot.by_name

        def add(term: AffinityTerm, node: NodeInfo | None, weight: int) -> None:
            value = node.labels.get(term.topology_key) if node is not None else None
            if value is not None:
                scores.setdefault(term.topology_key, Counter())[value] += weight

        # The incoming pod's preferences, over the pods they select ...
        for terms, sign in ((pod.preferred_affinity, 1), (pod.preferred_anti_affinity, -1)):
            for term in terms:
                for existing, name in index.candidates(term.selector):
                    if term.matches(existing, snapshot.labels_of_namespace(existing.namespace)):
                        add(term, by_name.get(name), sign * term.weight)
        # ... and the existing pods' terms that select the incoming pod.
        own_ns_labels = snapshot.labels_of_namespace(pod.namespace)
        for role, sign in ((REQUIRED_AFFINITY, 0), (PREFERRED_AFFINITY, 1),
                           (PREFERRED_ANTI_AFFINITY, -1)):
            if role == REQUIRED_AFFINITY and self.hard_weight <= 0:
                continue
            for term, per_node in index.terms(role):
                if not term.matches(pod, own_ns_labels):
                    continue
                weight = self.hard_weight if role == REQUIRED_AFFINITY else sign * term.weight
                for name, count in per_node.items():
                    add(term, by_name.get(name), weight * count)
        scores = {key: values for key, values in scores.items() if any(values.values())}
        if not scores:
            return SKIP
        state.write(self.name + "/score", scores)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: dict[str, Counter[str]] = state.read(self.name + "/score", dict)
        return sum(values[node.labels[key]] for key, values in scores.items()
                   if key in node.labels)

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        if not scores:
            return scores
        low, high = min(scores), max(scores)
        if high == low:
            return [0 for _ in scores]
        return [int(MAX_NODE_SCORE * (s - low) / (high - low)) for s in scores]
