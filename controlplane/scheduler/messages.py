"""Why a pod does not fit, worded exactly as Kubernetes 1.32 words it.

`0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane:
}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for
scheduling, 2 No preemption victims found for incoming pod.` Each node contributes the reasons of
the first plugin that rejected it; reasons are counted, rendered as "<count> <reason>" and sorted
as strings (Go's sort.Strings), as framework.FitError.Error does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from controlplane.scheduler.plugin import Status

NO_NODES_AVAILABLE = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


@dataclass
class Diagnosis:
    """Per-node statuses of one failed attempt, plus what applies to nodes not listed."""

    num_all_nodes: int
    statuses: dict[str, Status] = field(default_factory=dict)
    absent: Status | None = None  # the status of every node missing from `statuses`
    pre_filter_message: str = ""
    post_filter_message: str = ""
    unschedulable_plugins: set[str] = field(default_factory=set)

    def status_of(self, node: str) -> Status | None:
        return self.statuses.get(node, self.absent)


def histogram(num_all_nodes: int, statuses: Mapping[str, Status],
              absent: Status | None) -> list[str]:
    """`<count> <reason>` for every reason, sorted as Go sorts strings."""
    reasons: Counter[str] = Counter()
    for status in statuses.values():
        reasons.update(status.reasons)
    missing = num_all_nodes - len(statuses)
    if missing > 0 and absent is not None:
        for reason in absent.reasons:
            reasons[reason] += missing
    return sorted((f"{count} {reason}" for reason, count in reasons.items()),
                  key=lambda text: text.encode())


def fit_error_message(diagnosis: Diagnosis) -> str:
    """framework.FitError.Error()."""
    message = f"0/{diagnosis.num_all_nodes} nodes are available:"
    if diagnosis.pre_filter_message:
        message += f" {diagnosis.pre_filter_message}."
    else:
        parts = histogram(diagnosis.num_all_nodes, diagnosis.statuses, diagnosis.absent)
        if parts:
            message += f" {', '.join(parts)}."
    if diagnosis.post_filter_message:
        message += f" {diagnosis.post_filter_message}"  # it ends with its own period
    return message


class FitError(Exception):
    """No node fits the pod; str() is the message for the condition and the event."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(fit_error_message(diagnosis))
        self.diagnosis = diagnosis


class NoNodesAvailable(Exception):
    """The cluster has no nodes at all."""

    def __init__(self) -> None:
        super().__init__(NO_NODES_AVAILABLE)
