"""TaintToleration: untolerated NoSchedule/NoExecute taints filter a node out; untolerated
PreferNoSchedule taints lower its score (fewer is better, normalised and reversed to 0-100).

The failure reason names the first untolerated taint as Kubernetes 1.32 prints it:
`node(s) had untolerated taint {key: value}`.
"""

from __future__ import annotations

from controlplane.api.tolerations import tolerated
from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    NODE_ADD,
    NODE_TAINT,
    SKIP,
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
    default_normalize,
)
from controlplane.scheduler.plugins.helpers import first_untolerated
from controlplane.scheduler.podinfo import PodInfo


class TaintToleration(FilterPlugin, ScorePlugin):
    name = "TaintToleration"
    events = frozenset({NODE_ADD, NODE_TAINT})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        taint = first_untolerated(node.taints, pod.tolerations,
                                  lambda t: t.get("effect") in ("NoSchedule", "NoExecute"))
        if taint is None:
            return None
        return Status.unresolvable(
            f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}")

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: list[NodeInfo]) -> list[Status | None]:
        return [self.filter(state, pod, n) if n.taints else None for n in nodes]

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        if not snapshot.prefer_no_schedule:
            return SKIP  # every node would score the same
        state.write(self.name, [t for t in pod.tolerations
                                if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"])
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        tolerations = state.read(self.name, list)
        return sum(1 for taint in node.taints if taint.get("effect") == "PreferNoSchedule"
                   and not tolerated(tolerations, taint))

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        return default_normalize(scores, reverse=True)
