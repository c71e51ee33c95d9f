"""DefaultPreemption's dry run, for the "preemption: ..." half of the failure message.

Nodes rejected as unresolvable cannot be helped ("Preemption is not helpful for scheduling");
on the others the pods of lower priority are removed in a copy of the node and the filters run
again: no such pods gives "No preemption victims found for incoming pod", still failing gives the
filter's reasons. This scheduler does not evict: when the dry run finds a node where preemption
would work, the message says so instead of Kubernetes' nomination.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from controlplane.scheduler.messages import (
    NO_VICTIMS,
    PREEMPTION_NOT_HELPFUL,
    Diagnosis,
    fit_error_message,
)
from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import Code, CycleState, Status
from controlplane.scheduler.podinfo import PodInfo

if TYPE_CHECKING:
    from controlplane.scheduler.framework import Profile

log = logging.getLogger(__name__)


def _dry_run(profile: Profile, pod: PodInfo, snapshot: Snapshot,
             node: NodeInfo) -> Status | None:
    """Filter `pod` on `node` without its lower-priority pods; None means it would fit."""
    victims = [key for key, p in node.pods.items() if p.priority < pod.priority]
    if not victims:
        return Status.unresolvable(NO_VICTIMS)
    trimmed = node.clone()
    for key in victims:
        trimmed.remove_pod(key)
    view = snapshot.with_node(trimmed)
    state = CycleState()
    for plugin in profile.filters:
        status, names = plugin.pre_filter(state, pod, view)
        if status is not None and status.code == Code.SKIP:
            state.skip_filter.add(plugin.name)
        elif status is not None:
            return status
        if names is not None and node.name not in names:
            return Status.unresolvable(PREEMPTION_NOT_HELPFUL)
    return profile.run_filters(state, pod, trimmed)


def post_filter_message(profile: Profile, pod: PodInfo, snapshot: Snapshot,
                        diagnosis: Diagnosis) -> str:
    """The PostFilter message for a pod no node fits ("" when preemption would succeed)."""
    if pod.spec.get("preemptionPolicy") == "Never":
        return "preemption: not eligible due to preemptionPolicy=Never."
    outcome = Diagnosis(len(snapshot.nodes), absent=Status.unresolvable(PREEMPTION_NOT_HELPFUL))
    lowest = min((p.priority for n in snapshot.nodes for p in n.pods.values()),
                 default=pod.priority)
    for node in snapshot.nodes:
        status = diagnosis.status_of(node.name)
        if status is None or status.code != Code.UNSCHEDULABLE:
            continue
        if lowest >= pod.priority:
            outcome.statuses[node.name] = Status.unresolvable(NO_VICTIMS)
            continue
        result = _dry_run(profile, pod, snapshot, node)
        if result is None:
            log.info("pod %s would fit on %s by preempting lower-priority pods; this scheduler "
                     "does not preempt", pod.key, node.name)
            return "preemption: not attempted (this scheduler does not evict pods)."
        outcome.statuses[node.name] = result
    return "preemption: " + fit_error_message(outcome)
