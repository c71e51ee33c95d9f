"""The CronJob controller: creates a Job for each activation of a CronJob's schedule.

`sync(key)` reconciles status.active with the Jobs the CronJob owns (events for the ones that
finished, lastSuccessfulTime), prunes finished Jobs beyond the history limits, then, unless
suspended, finds the most recent activation not yet run (within startingDeadlineSeconds) and
applies the concurrencyPolicy (Allow, Forbid: skip while one runs, Replace: delete the running
ones) before creating `<name>-<minutes>`. It requeues itself for the next activation (plus
100 ms), so a Job appears within the second it is due. A bad schedule or time zone is a
warning event and no requeue until the CronJob changes; it never fails the loop.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from typing import Any

from controlplane.api import errors
from controlplane.api.meta import controller_of, parse_time
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.rest import CRONJOBS, JOBS
from controlplane.controllers.base import (
    Controller,
    ControllerContext,
    deep_copy,
    resolve_controller_ref,
    split_key,
)
from controlplane.controllers.cronjob import logic
from controlplane.controllers.cronjob.schedule import Schedule, ScheduleError, parse, zone_of

log = logging.getLogger(__name__)
Object = dict[str, Any]
BACKGROUND = "Background"


class CronJobController(Controller):
    name = "cronjob"
    component = "cronjob-controller"
    kind = "CronJob"
    api_version = "batch/v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cronjobs = ctx.informers.lister(CRONJOBS)
        self.jobs = ctx.informers.lister(JOBS)
        self.cronjobs.informer.add_handlers(on_add=self.enqueue, on_update=self._update_cronjob,
                                            on_delete=self.enqueue)
        self.jobs.informer.add_handlers(on_add=self._job_changed,
                                        on_update=lambda old, cur: self._job_changed(cur),
                                        on_delete=self._job_changed)

    def _update_cronjob(self, old: Object, cur: Object) -> None:
        if old.get("spec") != cur.get("spec") or old["metadata"].get(
                "resourceVersion") != cur["metadata"].get("resourceVersion"):
            self.enqueue(cur)

    def _job_changed(self, job: Object) -> None:
        owner = resolve_controller_ref(self.cronjobs, job["metadata"].get("namespace", ""),
                                       controller_of(job), self.kind)
        if owner is not None:
            self.enqueue(owner)

    def _owned_jobs(self, cronjob: Object) -> list[Object]:
        uid = cronjob["metadata"]["uid"]
        return [j for j in self.jobs.list(cronjob["metadata"]["namespace"])
                if (controller_of(j) or {}).get("uid") == uid]

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        cronjob = self.cronjobs.get(namespace, name)
        if cronjob is None:
            return
        now = self.clock()
        jobs = self._owned_jobs(cronjob)
        status = deep_copy(cronjob.get("status") or {})
        update = logic.update_active(cronjob, jobs)
        for job, kind in update.finished:
            self.event(cronjob, NORMAL, "SawCompletedJob",
                       f"Saw completed job: {job['metadata']['name']}, status: {kind}")
        status["active"] = update.active
        if update.last_successful is not None:
            status["lastSuccessfulTime"] = update.last_successful
        try:
            if not cronjob["metadata"].get("deletionTimestamp"):
                await self._create_due_job(cronjob, status, jobs, now)
        finally:
            await self._write_status(cronjob, status)
        await self._clean_history(cronjob, jobs)

    def _schedule(self, cronjob: Object) -> tuple[Schedule, tzinfo] | None:
        spec = cronjob.get("spec") or {}
        try:
            zone = zone_of(spec.get("timeZone"))
        except ScheduleError as exc:
            self.event(cronjob, WARNING, "UnknownTimeZone",
                       f"invalid timeZone: {spec.get('timeZone')!r}: {exc}")
            return None
        try:
            schedule = parse(str(spec.get("schedule") or ""))
        except ScheduleError as exc:
            self.event(cronjob, WARNING, "UnparseableSchedule",
                       f'unparseable schedule: "{spec.get("schedule")}" : {exc}')
            return None
        return schedule, zone or UTC

    async def _create_due_job(self, cronjob: Object, status: Object, jobs: list[Object],
                              now: datetime) -> None:
        parsed = self._schedule(cronjob)
        if parsed is None:
            return
        schedule, zone = parsed
        spec = cronjob.get("spec") or {}
        self._requeue_for_next(cronjob, schedule, zone, now)
        if spec.get("suspend"):
            return
        scheduled, missed = logic.most_recent_time(schedule, zone,
                                                   logic.earliest_time(cronjob, now), now)
        if scheduled is None:
            return
        if missed > logic.MAX_MISSED:
            self.event(cronjob, WARNING, "TooManyMissedTimes",
                       f"too many missed start times: {missed}. Set or decrease "
                       ".spec.startingDeadlineSeconds or check clock skew")
        deadline = spec.get("startingDeadlineSeconds")
        if isinstance(deadline, int) and (now - scheduled).total_seconds() > deadline:
            self.event(cronjob, WARNING, "MissSchedule",
                       f"Missed scheduled time to start a job: {logic.rfc3339(scheduled)}")
            return
        name = logic.job_name(cronjob["metadata"]["name"], scheduled)
        if any(j["metadata"]["name"] == name for j in jobs) or any(
                ref.get("name") == name for ref in status.get("active") or []):
            last = status.get("lastScheduleTime")  # already ran (its status write may not have)
            if not last or parse_time(last) < scheduled:
                status["lastScheduleTime"] = logic.rfc3339(scheduled)
            return
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status.get("active"):
            self.event(cronjob, NORMAL, "JobAlreadyActive", "Not starting job because prior "
                       "execution is running and concurrency policy is Forbid")
            return
        if policy == "Replace":
            for ref in list(status.get("active") or []):
                await self._delete_job(cronjob, str(ref.get("name")))
                status["active"] = [r for r in status["active"] if r is not ref]
        await self._create_job(cronjob, status, scheduled, zone)

    def _requeue_for_next(self, cronjob: Object, schedule: Schedule, zone: tzinfo,
                          now: datetime) -> None:
        upcoming = schedule.next(now, zone)
        if upcoming is not None:
            delay = (upcoming - now).total_seconds() + logic.NEXT_SCHEDULE_DELTA
            self.enqueue_after(cronjob, max(delay, logic.NEXT_SCHEDULE_DELTA))

    async def _create_job(self, cronjob: Object, status: Object, scheduled: datetime,
                          zone: tzinfo) -> None:
        job = logic.job_from_template(cronjob, scheduled, zone)
        namespace = cronjob["metadata"]["namespace"]
        try:
            created = await self.client.create(JOBS, job, namespace)
        except errors.AlreadyExists:
            existing = await self.client.get(JOBS, job["metadata"]["name"], namespace)
            if (controller_of(existing) or {}).get("uid") != cronjob["metadata"]["uid"]:
                self.event(cronjob, WARNING, "FailedCreate",
                           f"Error creating job: job {job['metadata']['name']} already exists "
                           "and is not owned by this CronJob")
                return
            created = existing
        except errors.Invalid as exc:  # a bad template never becomes valid by retrying
            self.event(cronjob, WARNING, "FailedCreate", f"Error creating job: {exc}")
            status["lastScheduleTime"] = logic.rfc3339(scheduled)
            return
        except errors.APIError as exc:
            self.event(cronjob, WARNING, "FailedCreate", f"Error creating job: {exc}")
            raise
        else:
            self.event(cronjob, NORMAL, "SuccessfulCreate",
                       f"Created job {created['metadata']['name']}")
        if not logic.finished_type(created) and created["metadata"].get("uid") not in {
                r.get("uid") for r in status.get("active") or []}:
            status.setdefault("active", []).append(logic.job_ref(created))
        status["lastScheduleTime"] = logic.rfc3339(scheduled)

    async def _delete_job(self, cronjob: Object, name: str) -> bool:
        try:
            await self.client.delete(JOBS, name, cronjob["metadata"]["namespace"],
                                     propagation=BACKGROUND)
        except errors.NotFound:
            return True
        except errors.APIError as exc:
            self.event(cronjob, WARNING, "FailedDelete", f"Deleted job: {exc}")
            raise
        self.event(cronjob, NORMAL, "SuccessfulDelete", f"Deleted job {name}")
        return True

    async def _clean_history(self, cronjob: Object, jobs: list[Object]) -> None:
        spec = cronjob.get("spec") or {}
        ok_limit, failed_limit = (spec.get("successfulJobsHistoryLimit"),
                                  spec.get("failedJobsHistoryLimit"))
        victims = logic.history_victims(
            jobs, ok_limit if isinstance(ok_limit, int) else None,
            failed_limit if isinstance(failed_limit, int) else None)
        for job in victims:
            if not job["metadata"].get("deletionTimestamp"):
                await self._delete_job(cronjob, job["metadata"]["name"])

    async def _write_status(self, cronjob: Object, status: Object) -> None:
        """Write status with the cached resourceVersion: a stale cache is a conflict (and a
        retry), never an older status written over a newer one."""
        old = cronjob.get("status") or {}
        if _comparable(old) == _comparable(status):
            return
        body = deep_copy(cronjob)
        body["status"] = {k: v for k, v in status.items() if v not in (None, [], "")}
        await self.client.update(CRONJOBS, body, cronjob["metadata"]["namespace"],
                                 subresource="status")

def _comparable(status: Object) -> tuple[Any, ...]:
    active = sorted(str(r.get("uid")) for r in status.get("active") or [])
    return active, status.get("lastScheduleTime"), status.get("lastSuccessfulTime")
