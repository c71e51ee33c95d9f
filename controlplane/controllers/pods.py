"""Pod predicates and orderings shared by the workload controllers (Kubernetes' controller_utils).

Readiness and availability read the Ready condition (available = Ready for minReadySeconds,
timed from the condition's lastTransitionTime). `deletion_order` ranks pods the way the
ReplicaSet controller picks victims: unscheduled, then pending, then not ready, then pods
doubled up on a node, then the most recently ready, the most restarted, the newest.
`pod_from_template` builds what a controller creates. All pure; nothing here does I/O.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from controlplane.api.meta import parse_time

Object = dict[str, Any]
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}
_INF = float("inf")


def is_active(pod: Object) -> bool:
    """Neither finished (Succeeded/Failed) nor being deleted."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not (
        pod["metadata"].get("deletionTimestamp"))


def ready_condition(pod: Object) -> Object | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def is_ready(pod: Object) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def is_available(pod: Object, min_ready_seconds: int, now: datetime) -> bool:
    """Ready, and for at least `min_ready_seconds` (by the condition's lastTransitionTime)."""
    cond = ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = cond.get("lastTransitionTime")
    if not since:
        return False
    return parse_time(since) + timedelta(seconds=min_ready_seconds) < now


def labels_match(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    """Whether `labels` carry every key/value of `wanted` (fullyLabeledReplicas)."""
    return all(labels.get(k) == v for k, v in wanted.items())


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        return parse_time(str(value)).timestamp()
    except ValueError:
        return None


def created_at(obj: Object) -> float:
    """The object's creationTimestamp as POSIX seconds; 0.0 (the oldest) when unset or bad."""
    return _timestamp(obj["metadata"].get("creationTimestamp")) or 0.0


def _deletion_cost(pod: Object) -> int:
    raw = (pod["metadata"].get("annotations") or {}).get(DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _restarts(pod: Object) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def deletion_order(pods: Sequence[Object], related: Iterable[Object] = ()) -> list[Object]:
    """`pods` sorted so the first ones are the best to delete.

    `related` are pods of sibling ReplicaSets (same owner), which count towards how doubled up
    a node is; `pods` themselves always count.
    """
    on_node: Counter[str] = Counter()
    seen: set[str] = set()
    for pod in [*pods, *related]:
        uid = str(pod["metadata"].get("uid") or id(pod))
        node = (pod.get("spec") or {}).get("nodeName")
        if node and uid not in seen and is_active(pod):
            on_node[node] += 1
        seen.add(uid)

    def key(pod: Object) -> tuple[float, ...]:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName") or ""
        ready = is_ready(pod)
        ready_at = _timestamp((ready_condition(pod) or {}).get("lastTransitionTime"))
        created = _timestamp(pod["metadata"].get("creationTimestamp"))
        return (
            1 if node else 0,
            _PHASE_ORDER.get(str(status.get("phase")), 0),
            1 if ready else 0,
            _deletion_cost(pod),
            -on_node[node] if node else 0,
            (-ready_at if ready_at is not None else -_INF) if ready else 0,
            -_restarts(pod),
            -created if created is not None else -_INF,
        )

    return sorted(pods, key=key)


def pod_from_template(template: Object, parent_name: str, owner_ref: Object) -> Object:
    """The pod a controller creates from its template: labels, annotations, spec, owner."""
    meta = template.get("metadata") or {}
    pod_meta: Object = {"generateName": f"{parent_name}-",
                        "labels": dict(meta.get("labels") or {}),
                        "ownerReferences": [dict(owner_ref)]}
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    if meta.get("finalizers"):
        pod_meta["finalizers"] = list(meta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def pod_key(pod: Object) -> str:
    m = pod["metadata"]
    return f"{m.get('namespace', '')}/{m['name']}"
