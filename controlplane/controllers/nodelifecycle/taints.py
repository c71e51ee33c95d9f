"""Node taints from node conditions, and which pods a NoExecute taint evicts when.

NoSchedule taints mirror conditions (Ready False -> not-ready, Unknown -> unreachable, memory,
disk, PID pressure, NetworkUnavailable) and spec.unschedulable (TaintNodesByCondition).
The NoExecute taint is not-ready or unreachable by the Ready condition (taint-based eviction);
`Mode` says whether to apply it, hold what is there (a partially disrupted small zone) or clear
it (every zone fully disrupted: the control plane is likely the one cut off). A pod on a node
with NoExecute taints goes at once when one is not tolerated, else when the shortest
tolerationSeconds of its matching tolerations has run from the taint's timeAdded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from controlplane.api.meta import parse_time
from controlplane.api.tolerations import tolerates

Object = dict[str, Any]
NO_EXECUTE, NO_SCHEDULE = "NoExecute", "NoSchedule"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
CONDITION_TAINTS = {  # (condition, status) -> NoSchedule taint key
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
}
OUR_NO_SCHEDULE = frozenset([*CONDITION_TAINTS.values(), UNSCHEDULABLE])
OUR_NO_EXECUTE = frozenset([NOT_READY, UNREACHABLE])
IMMEDIATELY = datetime.min.replace(tzinfo=UTC)


class Mode(Enum):
    APPLY = "apply"  # the NoExecute taint follows the Ready condition
    HOLD = "hold"  # add none, keep what is there (removed only once the node is Ready)
    CLEAR = "clear"  # remove ours


def no_schedule_keys(node: Object) -> set[str]:
    keys = {key for cond in (node.get("status") or {}).get("conditions") or []
            if (key := CONDITION_TAINTS.get((str(cond.get("type")), str(cond.get("status")))))}
    if (node.get("spec") or {}).get("unschedulable"):
        keys.add(UNSCHEDULABLE)
    return keys


def no_execute_key(ready: str) -> str | None:
    """The NoExecute taint a node with this Ready status should carry."""
    return {"False": NOT_READY, "Unknown": UNREACHABLE}.get(ready)


def desired_taints(node: Object, ready: str, mode: Mode, now: str) -> list[Object]:
    """The node's taints with ours brought in line with its conditions."""
    wanted_ns = no_schedule_keys(node)
    wanted_ne = no_execute_key(ready)
    out: list[Object] = []
    have: set[tuple[str, str]] = set()
    for taint in (node.get("spec") or {}).get("taints") or []:
        key, effect = str(taint.get("key")), str(taint.get("effect"))
        if effect == NO_SCHEDULE and key in OUR_NO_SCHEDULE and key not in wanted_ns:
            continue
        if effect == NO_EXECUTE and key in OUR_NO_EXECUTE:
            drop = (mode is Mode.CLEAR or wanted_ne is None
                    or (mode is Mode.APPLY and key != wanted_ne))
            if drop:
                continue
        out.append(taint)
        have.add((key, effect))
    for key in sorted(wanted_ns - {k for k, e in have if e == NO_SCHEDULE}):
        out.append({"key": key, "effect": NO_SCHEDULE})
    if mode is Mode.APPLY and wanted_ne and (wanted_ne, NO_EXECUTE) not in have:
        out.append({"key": wanted_ne, "effect": NO_EXECUTE, "timeAdded": now})
    return out


def taint_start(taint: Object, fallback: Callable[[Object], datetime]) -> datetime:
    """When a taint was added: its timeAdded, else when we first saw it."""
    try:
        return parse_time(str(taint["timeAdded"]))
    except (KeyError, ValueError):
        return fallback(taint)


def eviction_time(pod: Object, taints: list[Object],
                  started: Callable[[Object], datetime]) -> datetime | None:
    """When the NoExecute `taints` evict `pod` (IMMEDIATELY, a time, or None: never)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    when: datetime | None = None
    for taint in taints:
        if taint.get("effect") != NO_EXECUTE:
            continue
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return IMMEDIATELY
        seconds = match.get("tolerationSeconds")
        if seconds is None:
            continue  # tolerated for ever
        deadline = started(taint) + timedelta(seconds=max(int(seconds), 0))
        when = deadline if when is None else min(when, deadline)
    return when
