"""Deployment status and conditions (Kubernetes' deployment/progress.go and status helpers).

Status is computed from the ReplicaSets alone: replicas/ready/available are sums of their
statuses, updatedReplicas is the new RS's, unavailableReplicas is spec total minus available.
Available is True (MinimumReplicasAvailable) while at least replicas - maxUnavailable are
available. Progressing follows a rollout: NewReplicaSetCreated / FoundNewReplicaSet /
ReplicaSetUpdated while it advances, NewReplicaSetAvailable once complete, and False with
ProgressDeadlineExceeded when nothing advanced for progressDeadlineSeconds (a stuck rollout is
re-checked at its deadline, so no resync is needed to notice).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from controlplane.api.meta import parse_time
from controlplane.controllers.deployment import util

if TYPE_CHECKING:
    from controlplane.controllers.deployment.controller import DeploymentController

Object = dict[str, Any]
AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
MINIMUM_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
FAILED_RS_CREATE = "ReplicaSetCreateError"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Object:
    stamp = rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def get_condition(status: Object, type_: str) -> Object | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def set_condition(status: Object, cond: Object) -> None:
    """Set `cond`; an unchanged status and reason is left alone, an unchanged status keeps its
    lastTransitionTime."""
    current = get_condition(status, cond["type"])
    if current and current.get("status") == cond["status"] and current.get(
            "reason") == cond["reason"]:
        return
    if current and current.get("status") == cond["status"]:
        cond = dict(cond, lastTransitionTime=current.get("lastTransitionTime"))
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Object, type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != type_]


def has_progress_deadline(d: Object) -> bool:
    deadline = d["spec"].get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) < 2**31 - 1


def calculate_status(all_rses: list[Object | None], new_rs: Object | None,
                     d: Object, now: datetime) -> Object:
    available = util.available_count(all_rses)
    status: Object = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": util.actual_count(all_rses),
        "updatedReplicas": util.actual_count([new_rs]),
        "readyReplicas": util.ready_count(all_rses),
        "availableReplicas": available,
        "unavailableReplicas": max(util.spec_count(all_rses) - available, 0),
        "conditions": [dict(c) for c in (d.get("status") or {}).get("conditions") or []],
    }
    collisions = (d.get("status") or {}).get("collisionCount")
    if collisions is not None:
        status["collisionCount"] = collisions
    if available >= util.replicas(d) - util.max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    return status


def _count(status: Object, name: str) -> int:
    return int(status.get(name) or 0)


def deployment_complete(d: Object, status: Object) -> bool:
    want = util.replicas(d)
    return (_count(status, "updatedReplicas") == want and _count(status, "replicas") == want
            and _count(status, "availableReplicas") == want
            and _count(status, "observedGeneration") >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Object, new: Object) -> bool:
    """Whether `new` shows progress over the Deployment's current status."""
    old = d.get("status") or {}
    old_olds = _count(old, "replicas") - _count(old, "updatedReplicas")
    new_olds = _count(new, "replicas") - _count(new, "updatedReplicas")
    return (_count(new, "updatedReplicas") > _count(old, "updatedReplicas")
            or new_olds < old_olds
            or _count(new, "readyReplicas") > _count(old, "readyReplicas")
            or _count(new, "availableReplicas") > _count(old, "availableReplicas"))


def deployment_timed_out(d: Object, status: Object, now: datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = cond.get("lastUpdateTime")
    if not since:
        return False
    deadline = timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))
    return parse_time(since) + deadline < now


def comparable(status: Object) -> Object:
    return {k: v for k, v in status.items() if v not in (None, 0, [], {})}


async def sync_deployment_status(dc: DeploymentController, all_rses: list[Object | None],
                                 new_rs: Object | None, d: Object) -> None:
    """Write the computed status if it differs (scaling and paused syncs)."""
    status = calculate_status(all_rses, new_rs, d, dc.clock())
    if comparable(d.get("status") or {}) != comparable(status):
        await dc.write_status(d, status)


async def sync_rollout_status(dc: DeploymentController, all_rses: list[Object | None],
                              new_rs: Object | None, d: Object) -> None:
    """Write the status of a rollout in progress, with the Progressing condition's verdict."""
    now = dc.clock()
    status = calculate_status(all_rses, new_rs, d, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.get("status") or {}, PROGRESSING)
    complete_before = (_count(status, "replicas") == _count(status, "updatedReplicas")
                       and current is not None and current.get("reason") == NEW_RS_AVAILABLE)
    name = d["metadata"]["name"]
    if has_progress_deadline(d) and not complete_before:
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else \
            f'Deployment "{name}"'
        if deployment_complete(d, status):
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                                f"{subject} has successfully progressed.", now))
        elif deployment_progressing(d, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.",
                                 now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT,
                                                f"{subject} has timed out progressing.", now))
    failures = replica_failures(all_rses, new_rs)
    if failures:
        set_condition(status, failures[0])
    else:
        remove_condition(status, REPLICA_FAILURE)
    if comparable(d.get("status") or {}) == comparable(status):
        requeue_stuck(dc, d, status, now)
        return
    await dc.write_status(d, status)


def replica_failures(all_rses: list[Object | None], new_rs: Object | None) -> list[Object]:
    """ReplicaFailure conditions of the new RS, else of any RS, as Deployment conditions."""
    def of(rs: Object | None) -> list[Object]:
        out = []
        for c in ((rs or {}).get("status") or {}).get("conditions") or []:
            if c.get("type") == REPLICA_FAILURE:
                out.append({"type": REPLICA_FAILURE, "status": c.get("status"),
                            "lastUpdateTime": c.get("lastTransitionTime"),
                            "lastTransitionTime": c.get("lastTransitionTime"),
                            "reason": c.get("reason"), "message": c.get("message")})
        return out
    found = of(new_rs)
    if found:
        return found
    return [c for rs in all_rses for c in of(rs)]


def requeue_stuck(dc: DeploymentController, d: Object, status: Object, now: datetime) -> None:
    """Re-check a rollout that shows no progress when its deadline passes."""
    current = get_condition(d.get("status") or {}, PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return
    if deployment_complete(d, status) or current.get("reason") == TIMED_OUT:
        return
    since = current.get("lastUpdateTime")
    if not since:
        return
    after = (parse_time(since) + timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))
             - now).total_seconds()
    if after < 1:
        dc.queue.add_rate_limited(dc.key(d))
    else:
        dc.enqueue_after(d, after + 1)
