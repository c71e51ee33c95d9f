"""The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished` after it
finished (its completionTime, else the Complete/Failed condition's transition time).

`sync(key)` requeues a Job not yet expired for the moment it expires; an expired one is read
again from the API (the cache may be behind a TTL change) and deleted with propagation
Background and a uid precondition, so its pods go through the garbage collector and a new Job
of the same name is never touched. Pure timing lives in `expires_at`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from controlplane.api import errors
from controlplane.api.meta import parse_time
from controlplane.client.rest import JOBS
from controlplane.controllers.base import Controller, ControllerContext, split_key

log = logging.getLogger(__name__)
Object = dict[str, Any]


def finish_time(job: Object) -> datetime | None:
    """When the Job finished, or None while it has not."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            when = status.get("completionTime") or cond.get("lastTransitionTime")
            try:
                return parse_time(str(when)) if when else None
            except ValueError:
                return None
    return None


def expires_at(job: Object) -> datetime | None:
    """When a finished Job with a TTL is due for deletion (None: never, or not yet finished)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or job["metadata"].get(
            "deletionTimestamp"):
        return None
    finished = finish_time(job)
    return finished + timedelta(seconds=ttl) if finished is not None else None


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"
    component = "ttl-after-finished-controller"
    kind = "Job"
    api_version = "batch/v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informers.lister(JOBS)
        self.jobs.informer.add_handlers(on_add=self._maybe_enqueue,
                                        on_update=lambda old, cur: self._maybe_enqueue(cur))

    def _maybe_enqueue(self, job: Object) -> None:
        if expires_at(job) is not None:
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        job = self.jobs.get(namespace, name)
        if job is None or not self._expired(job):
            return
        try:
            fresh = await self.client.get(JOBS, name, namespace)
        except errors.NotFound:
            return
        if not self._expired(fresh):
            return
        uid = fresh["metadata"].get("uid")
        log.info("deleting job %s/%s: ttlSecondsAfterFinished passed", namespace, name)
        try:
            await self.client.delete(JOBS, name, namespace, propagation="Background",
                                     preconditions={"uid": uid})
        except errors.NotFound:
            return

    def _expired(self, job: Object) -> bool:
        """Whether `job` is due; if it will be later, requeue it for then."""
        when = expires_at(job)
        if when is None:
            return False
        left = (when - self.clock()).total_seconds()
        if left > 0:
            self.enqueue_after(job, left + 0.1)
            return False
        return True
