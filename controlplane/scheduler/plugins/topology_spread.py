"""PodTopologySpread: topologySpreadConstraints (DoNotSchedule filters, ScheduleAnyway scores)
and the default spreading of a workload's replicas.

A pod without constraints of its own gets the system defaults (hostname maxSkew 3, zone maxSkew 5,
ScheduleAnyway) with a selector built from the services selecting it and its owning ReplicaSet,
as Kubernetes' DefaultSelector does: replicas of one workload spread over nodes and zones. The
filter allows a node when matching pods in its domain + 1 - the global minimum <= maxSkew; the
score prefers domains with fewer matching pods (Kubernetes' log-weighted formula).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from controlplane.api.errors import APIError
from controlplane.api.selectors import IN, LabelSelector, Requirement
from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_DELETE,
    NODE_LABEL,
    NODE_TAINT,
    POD_ADD,
    POD_DELETE,
    POD_UPDATE,
    SKIP,
    WORKLOAD_CHANGE,
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
)
from controlplane.scheduler.plugins.helpers import RequiredNodeAffinity, first_untolerated
from controlplane.scheduler.podinfo import PodInfo

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
REASON = "node(s) didn't match pod topology spread constraints"
LABEL_REASON = REASON + " (missing required label)"
SYSTEM_DEFAULTS = [
    {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
    {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway"},
]


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int = 1
    honor_affinity: bool = True
    honor_taints: bool = False

    def includes(self, pod: PodInfo, node: NodeInfo, required: RequiredNodeAffinity) -> bool:
        """matchNodeInclusionPolicies: does this node's domain count for the constraint?"""
        if self.honor_affinity and not required.empty and not required.matches(node.name,
                                                                                node.labels):
            return False
        return not (self.honor_taints and first_untolerated(
            node.taints, pod.tolerations,
            lambda t: t.get("effect") in ("NoSchedule", "NoExecute")) is not None)


def matching_per_node(snapshot: Snapshot, selector: LabelSelector,
                      namespace: str) -> dict[str, int]:
    """Node name -> its pods in `namespace` the selector matches, terminating ones excluded
    (an empty selector matches none)."""
    counts: dict[str, int] = {}
    if selector.is_empty():
        return counts
    for pod, node in snapshot.index.matching(selector):
        if not pod.terminating and pod.namespace == namespace:
            counts[node] = counts.get(node, 0) + 1
    return counts


def _with_label_keys(selector: LabelSelector, keys: list[str], labels: dict[str, str]
                     ) -> LabelSelector:
    extra = [Requirement(k, IN, (labels[k],)) for k in keys if k in labels]
    if not extra or selector.nothing:
        return selector
    return LabelSelector(tuple(sorted((*selector.requirements, *extra), key=lambda r: r.key)))


def default_selector(pod: PodInfo, snapshot: Snapshot) -> LabelSelector:
    """Services selecting the pod, plus its controlling ReplicaSet's selector (DefaultSelector)."""
    merged: dict[str, str] = {}
    for service in snapshot.services.get(pod.namespace, []):
        wanted = (service.get("spec") or {}).get("selector") or {}
        if wanted and all(pod.labels.get(k) == v for k, v in wanted.items()):
            merged.update(wanted)
    selector = LabelSelector.from_set(merged)
    owner = next((r for r in (pod.pod.get("metadata") or {}).get("ownerReferences") or []
                  if r.get("controller")), None)
    if owner and owner.get("kind") == "ReplicaSet" and str(owner.get("apiVersion")) == "apps/v1":
        replica_set = snapshot.replica_sets.get(f"{pod.namespace}/{owner.get('name')}")
        if replica_set is not None:
            try:
                extra = LabelSelector.from_object((replica_set.get("spec") or {}).get("selector"))
            except APIError:
                return selector
            if not extra.nothing:
                selector = LabelSelector(tuple(sorted(
                    (*selector.requirements, *extra.requirements), key=lambda r: r.key)))
    return selector


class PodTopologySpread(FilterPlugin, ScorePlugin):
    name = "PodTopologySpread"
    events = frozenset({NODE_ADD, NODE_DELETE, NODE_LABEL, NODE_TAINT, POD_ADD, POD_UPDATE,
                        POD_DELETE, WORKLOAD_CHANGE})

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        super().__init__(args)
        self.system_defaulted = (self.args.get("defaultingType") or "System") == "System"
        self.defaults: list[dict[str, Any]] = (
            SYSTEM_DEFAULTS if self.system_defaulted
            else list(self.args.get("defaultConstraints") or []))

    def constraints(self, pod: PodInfo, action: str, snapshot: Snapshot) -> list[Constraint]:
        """The pod's constraints with `whenUnsatisfiable == action` (or the defaults)."""
        own = pod.spec.get("topologySpreadConstraints") or []
        found = []
        for raw in own or self.defaults:
            if (raw.get("whenUnsatisfiable") or "DoNotSchedule") != action:
                continue
            try:
                selector = LabelSelector.from_object(raw.get("labelSelector")) if own else None
            except APIError:
                continue
            if selector is None:
                selector = default_selector(pod, snapshot)
                if selector.is_empty():
                    return []
            selector = _with_label_keys(selector, list(raw.get("matchLabelKeys") or []),
                                        pod.labels)
            found.append(Constraint(
                int(raw.get("maxSkew") or 1), str(raw.get("topologyKey") or ""), selector,
                int(raw.get("minDomains") or 1),
                (raw.get("nodeAffinityPolicy") or "Honor") == "Honor",
                (raw.get("nodeTaintsPolicy") or "Ignore") == "Honor"))
        return found

    # -- filter ---------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   snapshot: Snapshot) -> tuple[Status | None, set[str] | None]:
        constraints = self.constraints(pod, "DoNotSchedule", snapshot)
        if not constraints:
            return SKIP, None
        required = RequiredNodeAffinity(pod.spec)
        on_node = {c.selector: matching_per_node(snapshot, c.selector, pod.namespace)
                   for c in constraints}
        matches: list[dict[str, int]] = [{} for _ in constraints]
        keys = {c.topology_key for c in constraints}
        # includes() is always true without node affinity to honour or taints to honour
        every = [required.empty and not c.honor_taints for c in constraints]
        for node in snapshot.nodes:
            if not keys <= node.labels.keys():
                continue
            for i, c in enumerate(constraints):
                if every[i] or c.includes(pod, node, required):
                    value = node.labels[c.topology_key]
                    matches[i][value] = matches[i].get(value, 0) + on_node[c.selector].get(
                        node.name, 0)
        # Per constraint: its domains' counts, the global minimum and the pod's own match.
        checks = [(c.topology_key, c.max_skew, domains,
                   min(domains.values()) if len(domains) >= c.min_domains else 0,
                   1 if c.selector.matches(pod.labels) else 0)
                  for c, domains in zip(constraints, matches, strict=True)]
        state.write(self.name, checks)
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for key, max_skew, domains, minimum, own in state.read(self.name, list):
            value = node.labels.get(key)
            if value is None:
                return Status.unresolvable(LABEL_REASON)
            if domains.get(value, 0) + own - minimum > max_skew:
                return Status.unschedulable(REASON)
        return None

    # -- score ----------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        constraints = self.constraints(pod, "ScheduleAnyway", snapshot)
        if not constraints:
            return SKIP
        require_all = bool(pod.spec.get("topologySpreadConstraints")) or not self.system_defaulted
        ignored: set[str] = set()
        counts: list[dict[str, int]] = [{} for _ in constraints]
        for node in nodes:
            if require_all and not all(c.topology_key in node.labels for c in constraints):
                ignored.add(node.name)
                continue
            for i, c in enumerate(constraints):
                if c.topology_key != HOSTNAME:
                    counts[i].setdefault(node.labels.get(c.topology_key, ""), 0)
        weights = [math.log((len(nodes) - len(ignored) if c.topology_key == HOSTNAME
                             else len(counts[i])) + 2) for i, c in enumerate(constraints)]
        # Count matching pods once per node and distinct selector: domains sum them, the
        # hostname constraint reads them per node in score().
        selectors = list(dict.fromkeys(c.selector for c in constraints))
        which = [selectors.index(c.selector) for c in constraints]
        per_node = [matching_per_node(snapshot, selector, pod.namespace)
                    for selector in selectors]
        required = RequiredNodeAffinity(pod.spec)
        for node in snapshot.nodes:
            if require_all and not all(c.topology_key in node.labels for c in constraints):
                continue
            for i, c in enumerate(constraints):
                value = node.labels.get(c.topology_key, "")
                if value in counts[i] and c.includes(pod, node, required):
                    counts[i][value] += per_node[which[i]].get(node.name, 0)
        hostname_counts = [per_node[which[i]] for i in range(len(constraints))]
        state.write(self.name + "/score", (constraints, counts, weights, ignored,
                                           [n.name in ignored for n in nodes], hostname_counts))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        constraints, counts, weights, ignored, _, on_node = state.read(self.name + "/score",
                                                                       tuple)
        if node.name in ignored:
            return 0
        total = 0.0
        for c, domains, weight, mine in zip(constraints, counts, weights, on_node, strict=True):
            value = node.labels.get(c.topology_key)
            if value is None:
                continue
            found = mine.get(node.name, 0) if c.topology_key == HOSTNAME else domains.get(value, 0)
            total += found * weight + (c.max_skew - 1)
        return math.floor(total + 0.5)

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        skipped: list[bool] = state.read(self.name + "/score", tuple)[4]
        valid = [s for s, skip in zip(scores, skipped, strict=True) if not skip]
        if not valid:
            return [0 for _ in scores]
        low, high = min(valid), max(valid)
        return [0 if skip else MAX_NODE_SCORE if high == 0
                else MAX_NODE_SCORE * (high + low - s) // high
                for s, skip in zip(scores, skipped, strict=True)]
