"""Job arithmetic, pure: its spec with defaults, pod states, backoff, how many pods to run and
when it has succeeded or failed.

A pod counts as failed when its phase is Failed or when it is being deleted before succeeding
(it will never finish); `terminating` pods are being deleted and not yet in a terminal phase.
Recreation after failures waits 10 s doubling per failure since the last success, at most
6 minutes, timed from the last failure. A Job first gets an interim condition
(SuccessCriteriaMet / FailureTarget) and its remaining pods are deleted; the terminal one
(Complete / Failed) follows once no pod is active or terminating, as Kubernetes 1.31+ does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controlplane.api.meta import parse_time

Object = dict[str, Any]
FINALIZER = "batch.kubernetes.io/job-tracking"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
DEFAULT_BACKOFF = 10.0  # seconds (Kubernetes' DefaultJobPodFailureBackOff)
MAX_BACKOFF = 360.0  # seconds (MaxJobPodFailureBackOff)
COMPLETE, FAILED = "Complete", "Failed"
SUCCESS_CRITERIA_MET, FAILURE_TARGET, SUSPENDED = "SuccessCriteriaMet", "FailureTarget", "Suspended"


@dataclass(frozen=True)
class Finish:
    """Why a Job is done: the condition types, reason and message it gets."""

    interim: str  # SuccessCriteriaMet | FailureTarget
    terminal: str  # Complete | Failed
    reason: str
    message: str


COMPLETED = Finish(SUCCESS_CRITERIA_MET, COMPLETE, "CompletionsReached",
                   "Reached expected number of succeeded pods")
BACKOFF_LIMIT = Finish(FAILURE_TARGET, FAILED, "BackoffLimitExceeded",
                       "Job has reached the specified backoff limit")
DEADLINE = Finish(FAILURE_TARGET, FAILED, "DeadlineExceeded",
                  "Job was active longer than specified deadline")


# -- the spec -------------------------------------------------------------------------------------


def _int(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def parallelism(job: Object) -> int:
    return max(0, _int((job.get("spec") or {}).get("parallelism"), 1) or 0)


def completions(job: Object) -> int | None:
    """spec.completions; None is a work queue (done when any pod succeeds and none runs)."""
    return _int((job.get("spec") or {}).get("completions"), None)


def backoff_limit(job: Object) -> int:
    return _int((job.get("spec") or {}).get("backoffLimit"), 6) or 0


def active_deadline(job: Object) -> int | None:
    return _int((job.get("spec") or {}).get("activeDeadlineSeconds"), None)


def is_indexed(job: Object) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def is_suspended(job: Object) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def restart_policy(job: Object) -> str:
    template = (job.get("spec") or {}).get("template") or {}
    return str((template.get("spec") or {}).get("restartPolicy") or "Never")


def condition(job: Object, type_: str) -> Object | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def is_finished(job: Object) -> bool:
    return condition(job, COMPLETE) is not None or condition(job, FAILED) is not None


def pending_finish(job: Object) -> Finish | None:
    """The interim condition a Job already carries, as a Finish."""
    for type_, terminal in ((FAILURE_TARGET, FAILED), (SUCCESS_CRITERIA_MET, COMPLETE)):
        cond = condition(job, type_)
        if cond is not None:
            return Finish(type_, terminal, str(cond.get("reason", "")),
                          str(cond.get("message", "")))
    return None


# -- pods -----------------------------------------------------------------------------------------


def phase(pod: Object) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_active(pod: Object) -> bool:
    return phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp")


def is_terminating(pod: Object) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in (
        "Succeeded", "Failed")


def is_succeeded(pod: Object) -> bool:
    return phase(pod) == "Succeeded"


def is_failed(pod: Object) -> bool:
    """Failed, or deleted before it succeeded (it will never finish)."""
    return phase(pod) == "Failed" or (bool(pod["metadata"].get("deletionTimestamp"))
                                      and phase(pod) != "Succeeded")


def has_finalizer(pod: Object) -> bool:
    return FINALIZER in (pod["metadata"].get("finalizers") or [])


def is_ready(pod: Object) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _time(value: Any) -> datetime | None:
    try:
        return parse_time(str(value)) if value else None
    except ValueError:
        return None


def finish_time(pod: Object) -> datetime | None:
    """When a finished pod finished: its last container's finishedAt, else its deletion or
    creation time."""
    status = pod.get("status") or {}
    ends = [_time(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for s in status.get("containerStatuses") or []]
    found = [t for t in ends if t is not None]
    if found:
        return max(found)
    return _time(pod["metadata"].get("deletionTimestamp")) or _time(
        pod["metadata"].get("creationTimestamp"))


def restarts(pod: Object) -> int:
    status = pod.get("status") or {}
    return sum(int(s.get("restartCount") or 0) for s in [
        *(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])])


def backoff_remaining(pods: list[Object], now: datetime, *, base: float = DEFAULT_BACKOFF,
                      cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait before creating pods: base * 2^(failures since the last success - 1),
    at most `cap`, from the last failure."""
    last_success = max((t for p in pods if is_succeeded(p) if (t := finish_time(p))),
                       default=None)
    failures = [t for p in pods if is_failed(p) if (t := finish_time(p)) is not None
                and (last_success is None or t > last_success)]
    if not failures:
        return 0.0
    delay = min(base * 2.0 ** (len(failures) - 1), cap)
    elapsed = (now - max(failures)).total_seconds()
    return max(0.0, delay - elapsed)


# -- decisions ------------------------------------------------------------------------------------


def want_active(job: Object, succeeded: int, active: int) -> int:
    """How many pods should be running now."""
    par = parallelism(job)
    total = completions(job)
    if total is None:
        return active if succeeded > 0 else par  # work queue: no new pods after a success
    return max(0, min(par, total - succeeded))


def exceeds_backoff(job: Object, failed: int, active_pods: list[Object]) -> bool:
    if failed > backoff_limit(job):
        return True
    if restart_policy(job) != "OnFailure":
        return False
    total = sum(restarts(p) for p in active_pods if phase(p) in ("Running", "Pending"))
    limit = backoff_limit(job)
    return total > 0 if limit == 0 else total >= limit


def past_deadline(job: Object, now: datetime) -> tuple[bool, float | None]:
    """(whether activeDeadlineSeconds has passed, seconds left when it has not)."""
    deadline = active_deadline(job)
    start = _time((job.get("status") or {}).get("startTime"))
    if deadline is None or start is None or is_suspended(job):
        return False, None
    left = (start + timedelta(seconds=deadline) - now).total_seconds()
    return left <= 0, (left if left > 0 else None)


def finish_of(job: Object, *, succeeded: int, completed_indexes: set[int], active: int,
              failed: int, active_pods: list[Object], now: datetime) -> Finish | None:
    """Whether the Job has just failed or succeeded (failures win, as in Kubernetes)."""
    if exceeds_backoff(job, failed, active_pods):
        return BACKOFF_LIMIT
    if past_deadline(job, now)[0]:
        return DEADLINE
    total = completions(job)
    if total is None:
        return COMPLETED if succeeded > 0 and active == 0 else None
    if is_indexed(job):
        return COMPLETED if len(completed_indexes) >= total else None
    return COMPLETED if succeeded >= total else None


def condition_of(type_: str, status: str, reason: str, message: str, now: str) -> Object:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def with_condition(conditions: list[Object], new: Object) -> list[Object]:
    """`conditions` with `new` set; an unchanged status keeps its transition time."""
    out: list[Object] = []
    found = False
    for cond in conditions:
        if cond.get("type") != new["type"]:
            out.append(cond)
            continue
        found = True
        if cond.get("status") == new["status"] and cond.get("reason") == new["reason"]:
            out.append(cond)
        else:
            out.append(new)
    if not found:
        out.append(new)
    return out
