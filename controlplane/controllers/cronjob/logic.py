"""What a CronJob should do at a given time, as pure functions over its object and its Jobs.

`most_recent_time` finds the latest activation in (earliest, now], earliest being the last
schedule time (or creation) moved forward to now - startingDeadlineSeconds; past 100 missed
activations it stops counting and looks back from now in growing windows, so a long-stopped
controller costs little. A Job is named `<cronjob>-<scheduled unix time in minutes>`, so the
same activation can never make two Jobs. `history_victims` picks the oldest finished Jobs
beyond the history limits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from controlplane.api.meta import parse_time
from controlplane.controllers.cronjob.schedule import Schedule

Object = dict[str, Any]
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100  # Kubernetes' limit before it warns about missed start times
NEXT_SCHEDULE_DELTA = 0.1  # seconds added to a requeue so it lands after the activation
_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=366),
            timedelta(days=5 * 366))


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def earliest_time(cronjob: Object, now: datetime) -> datetime:
    """Where the search for missed activations starts."""
    status = cronjob.get("status") or {}
    last = status.get("lastScheduleTime") or cronjob["metadata"].get("creationTimestamp")
    earliest = parse_time(last) if last else now
    deadline = (cronjob.get("spec") or {}).get("startingDeadlineSeconds")
    if isinstance(deadline, int):
        earliest = max(earliest, now - timedelta(seconds=deadline))
    return earliest


def most_recent_time(schedule: Schedule, zone: tzinfo, earliest: datetime,
                     now: datetime) -> tuple[datetime | None, int]:
    """(the latest activation in (earliest, now] or None, how many were missed; past
    MAX_MISSED the count is MAX_MISSED + 1)."""
    if earliest > now:
        return None, 0
    latest: datetime | None = None
    missed = 0
    t = schedule.next(earliest, zone)
    while t is not None and t <= now:
        latest, missed = t, missed + 1
        if missed > MAX_MISSED:
            return _latest_in_windows(schedule, zone, earliest, now) or latest, missed
        t = schedule.next(t, zone)
    return latest, missed


def _latest_in_windows(schedule: Schedule, zone: tzinfo, earliest: datetime,
                       now: datetime) -> datetime | None:
    for window in _WINDOWS:
        start = max(earliest, now - window)
        latest = None
        t = schedule.next(start, zone)
        while t is not None and t <= now:
            latest = t
            t = schedule.next(t, zone)
        if latest is not None:
            return latest
    return None


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: Object, scheduled: datetime, zone: tzinfo) -> Object:
    """The Job a CronJob creates for the activation at `scheduled`."""
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    meta = template.get("metadata") or {}
    m = cronjob["metadata"]
    annotations = dict(meta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = scheduled.astimezone(zone).isoformat().replace(
        "+00:00", "Z")
    job_meta: Object = {"name": job_name(m["name"], scheduled), "namespace": m.get("namespace"),
                        "labels": dict(meta.get("labels") or {}), "annotations": annotations,
                        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                             "name": m["name"], "uid": m["uid"],
                                             "controller": True, "blockOwnerDeletion": True}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def finished_type(job: Object) -> str:
    """"Complete" or "Failed" when the Job has finished, else ""."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return ""


def job_ref(job: Object) -> Object:
    m = job["metadata"]
    return {"kind": "Job", "namespace": m.get("namespace"), "name": m["name"],
            "uid": m.get("uid"), "apiVersion": "batch/v1",
            "resourceVersion": m.get("resourceVersion")}


@dataclass
class ActiveUpdate:
    """The new status.active and what changed to get there."""

    active: list[Object]
    finished: list[tuple[Object, str]]  # (job, Complete|Failed) dropped from the list
    last_successful: str | None  # status.lastSuccessfulTime to write (None: unchanged)


def update_active(cronjob: Object, jobs: list[Object]) -> ActiveUpdate:
    """Drop finished or vanished Jobs from status.active, add running Jobs it owns."""
    status = cronjob.get("status") or {}
    by_uid = {j["metadata"].get("uid"): j for j in jobs}
    active: list[Object] = []
    finished: list[tuple[Object, str]] = []
    last_ok = status.get("lastSuccessfulTime")
    last_ok_new: str | None = None
    listed = set()
    for ref in status.get("active") or []:
        job = by_uid.get(ref.get("uid"))
        if job is None:
            continue  # deleted, or not yet in the cache (then re-added below when it appears)
        listed.add(ref.get("uid"))
        kind = finished_type(job)
        if kind:
            finished.append((job, kind))
        else:
            active.append(ref)
    for job in jobs:
        uid = job["metadata"].get("uid")
        kind = finished_type(job)
        if uid not in listed and not kind:
            active.append(job_ref(job))
        if kind == "Complete":
            done = (job.get("status") or {}).get("completionTime")
            if done and (last_ok is None or parse_time(done) > parse_time(last_ok)):
                last_ok = last_ok_new = done
    return ActiveUpdate(active, finished, last_ok_new)


def history_victims(jobs: list[Object], successful_limit: int | None,
                    failed_limit: int | None) -> list[Object]:
    """The finished Jobs to delete, oldest first, so each kind keeps at most its limit."""
    victims: list[Object] = []
    for kind, limit in (("Complete", successful_limit), ("Failed", failed_limit)):
        if limit is None:
            continue
        done = sorted((j for j in jobs if finished_type(j) == kind), key=_start_key)
        victims += done[:max(0, len(done) - limit)]
    return victims


def _start_key(job: Object) -> tuple[float, str]:
    start = (job.get("status") or {}).get("startTime") or job["metadata"].get(
        "creationTimestamp")
    return (parse_time(start).timestamp() if start else 0.0, job["metadata"]["name"])
