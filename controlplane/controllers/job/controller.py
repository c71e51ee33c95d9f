"""The Job controller: runs a Job's pods to completion and keeps its status.

`sync(key)` claims the Job's pods (adopting matching orphans), counts finished ones exactly once
through the tracking finalizer (see `tracking`), then either finishes the Job (interim
condition, remaining pods deleted, terminal condition once none is left), suspends it (pods
deleted) or creates/deletes pods towards `want_active`, honouring expectations (no double
creates on a slow watch) and the failure backoff. Pods of a deleted Job, or of an older Job of
the same name, get their finalizer removed so they can go. Status goes through /status as an
update carrying the cached resourceVersion: a stale cache is a conflict and a retry, never a
lost count.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.api.meta import controller_of
from controlplane.api.selectors import LabelSelector
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.rest import JOBS, PODS
from controlplane.controllers import pods as podutil
from controlplane.controllers.base import (
    Controller,
    ControllerContext,
    SyncError,
    controller_ref,
    deep_copy,
    resolve_controller_ref,
    split_key,
)
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.job import indexes, logic, tracking
from controlplane.controllers.podcontrol import PodControl
from controlplane.controllers.refmanager import SMP, claim, recheck_owner

log = logging.getLogger(__name__)
Object = dict[str, Any]
BURST = 500  # pod creates or deletes per sync


class JobController(Controller):
    name = "job"
    component = "job-controller"
    kind = "Job"
    api_version = "batch/v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informers.lister(JOBS)
        self.pods = ctx.informers.lister(PODS)
        self.expectations = Expectations()  # pod creates/deletes in flight, by job key
        self.pod_control = PodControl(self, self.expectations)
        self.in_flight: dict[str, set[str]] = {}  # job key -> uids whose finalizer we removed
        self.jobs.informer.add_handlers(on_add=self.enqueue, on_update=self._update_job,
                                        on_delete=self._delete_job)
        self.pods.informer.add_handlers(on_add=self._add_pod,
                                        on_update=lambda old, cur: self._pod_changed(cur),
                                        on_delete=lambda pod: self._pod_changed(pod, True))

    # -- handlers ---------------------------------------------------------------------------------

    def _update_job(self, old: Object, cur: Object) -> None:
        if old["metadata"].get("uid") != cur["metadata"].get("uid"):
            self._delete_job(old)
        self.enqueue(cur)

    def _delete_job(self, job: Object) -> None:
        key = _key(job)
        self.expectations.delete(key)
        self.queue.add(key)  # its pods' finalizers must go

    def _add_pod(self, pod: Object) -> None:
        ref = controller_of(pod)
        job = self._owner(pod, ref)
        if job is not None:
            self.expectations.creation_observed(_key(job))
        self._pod_changed(pod)

    def _pod_changed(self, pod: Object, deleted: bool = False) -> None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != self.kind:
            return
        key = f"{pod['metadata'].get('namespace', '')}/{ref.get('name')}"
        uid = str(pod["metadata"].get("uid"))
        if deleted or not logic.has_finalizer(pod):
            self.in_flight.get(key, set()).discard(uid)
        job = self._owner(pod, ref)
        if job is None:
            if logic.has_finalizer(pod) and not deleted:
                self.queue.add(key)  # an orphan: its finalizer must go
            return
        if deleted or pod["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(key, podutil.pod_key(pod))
        self.enqueue(job)

    def _owner(self, pod: Object, ref: Object | None) -> Object | None:
        return resolve_controller_ref(self.jobs, pod["metadata"].get("namespace", ""), ref,
                                      self.kind)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        job = self.jobs.get(namespace, name)
        await self._release_orphans(key, namespace, name, job)
        if job is None:
            self.expectations.delete(key)
            self.in_flight.pop(key, None)
            return
        try:
            selector = LabelSelector.from_object((job.get("spec") or {}).get("selector"))
        except errors.APIError as exc:
            self.event(job, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return
        needs_sync = self.expectations.satisfied(key)
        pods = await claim(self.client, PODS, owner=job,
                           owner_ref=controller_ref(job, self.api_version, self.kind),
                           selector=selector, children=list(self.pods.list(namespace)),
                           can_adopt=recheck_owner(self.client, JOBS, job))
        in_flight = self.in_flight.setdefault(key, set())
        plan = tracking.plan(job, pods, in_flight)
        status = deep_copy(job.get("status") or {})
        if plan.changed:
            status["uncountedTerminatedPods"] = _uncounted(plan)
            if logic.is_indexed(job):
                status["completedIndexes"] = indexes.format_indexes(plan.completed_indexes)
            job = await self._put_status(job, status)
        held = await self._remove_finalizers(job, plan.to_finalize, in_flight)
        if logic.is_finished(job):
            return
        ok, failed = tracking.settle(plan, held)
        status["succeeded"] = int(status.get("succeeded") or 0) + ok
        if logic.is_indexed(job):
            status["succeeded"] = len(plan.completed_indexes)
        status["failed"] = int(status.get("failed") or 0) + failed
        status["uncountedTerminatedPods"] = _uncounted(plan)
        await self._reconcile(job, key, pods, plan, status, needs_sync)

    async def _reconcile(self, job: Object, key: str, pods: list[Object],
                         plan: tracking.Tracking, status: Object, needs_sync: bool) -> None:
        now = self.clock()
        stamp = _rfc3339(now)
        active = [p for p in pods if logic.is_active(p)]
        terminating = sum(1 for p in pods if logic.is_terminating(p))
        succeeded = int(status["succeeded"]) + (0 if logic.is_indexed(job) else len(
            plan.succeeded))
        failed = int(status["failed"]) + len(plan.failed)
        conditions = list(status.get("conditions") or [])
        created = deleted = 0
        error: Exception | None = None
        finish = logic.pending_finish(job)
        if finish is None and not logic.is_suspended(job):
            finish = logic.finish_of(job, succeeded=succeeded, active=len(active),
                                     completed_indexes=plan.completed_indexes, failed=failed,
                                     active_pods=active, now=now)
        try:
            if finish is not None:
                conditions = logic.with_condition(conditions, logic.condition_of(
                    finish.interim, "True", finish.reason, finish.message, stamp))
                if needs_sync:
                    deleted = await self._delete_pods(job, key, active)
                active, terminating = [], terminating + deleted
                if terminating == 0 and not plan.succeeded and not plan.failed:
                    conditions = self._finish(job, finish, conditions, status, stamp)
            elif logic.is_suspended(job):
                conditions = self._suspend(job, conditions, stamp)
                if needs_sync:
                    deleted = await self._delete_pods(job, key, active)
            else:
                conditions = self._resume(job, conditions, status, stamp)
                status.setdefault("startTime", stamp)
                left = logic.past_deadline(dict(job, status=status), now)[1]
                if left is not None:
                    self.enqueue_after(job, left + 0.1)
                if needs_sync:
                    created, deleted = await self._manage(job, key, pods, active, succeeded,
                                                          plan, now)
        except errors.APIError as exc:
            error = exc
        ready = sum(1 for p in active if logic.is_ready(p))
        status.update(active=max(0, len(active) + created - deleted), ready=ready,
                      terminating=terminating + (deleted if finish is None else 0),
                      conditions=conditions)
        await self._put_status(job, status)
        if error is not None:
            raise error

    def _finish(self, job: Object, finish: logic.Finish, conditions: list[Object],
                status: Object, stamp: str) -> list[Object]:
        conditions = logic.with_condition(conditions, logic.condition_of(
            finish.terminal, "True", finish.reason, finish.message, stamp))
        if finish.terminal == logic.COMPLETE:
            status["completionTime"] = stamp
            self.event(job, NORMAL, "Completed", "Job completed")
        else:
            self.event(job, WARNING, finish.reason, finish.message)
        return conditions

    def _suspend(self, job: Object, conditions: list[Object], stamp: str) -> list[Object]:
        if logic.condition(job, logic.SUSPENDED) is None:
            self.event(job, NORMAL, "Suspended", "Job suspended")
            return logic.with_condition(conditions, logic.condition_of(
                logic.SUSPENDED, "True", "JobSuspended", "Job suspended", stamp))
        return conditions

    def _resume(self, job: Object, conditions: list[Object], status: Object,
                stamp: str) -> list[Object]:
        if logic.condition(job, logic.SUSPENDED) is None:
            return conditions
        self.event(job, NORMAL, "Resumed", "Job resumed")
        status["startTime"] = stamp  # the deadline counts from the resumption
        return logic.with_condition(conditions, logic.condition_of(
            logic.SUSPENDED, "False", "JobResumed", "Job resumed", stamp))

    async def _manage(self, job: Object, key: str, pods: list[Object], active: list[Object],
                      succeeded: int, plan: tracking.Tracking, now: datetime) -> tuple[int, int]:
        """Create or delete pods towards want_active; return (created, deleted)."""
        want = logic.want_active(job, succeeded, len(active))
        victims: list[Object] = []
        if logic.is_indexed(job):
            victims = _duplicate_indexes(active, plan.completed_indexes)
        if len(active) - len(victims) > want:
            rest = [p for p in active if p not in victims]
            victims += podutil.deletion_order(rest)[:len(rest) - want]
        if victims:
            return 0, await self._delete_pods(job, key, victims[:BURST])
        missing = min(want - len(active), BURST)
        if missing <= 0:
            return 0, 0
        wait = logic.backoff_remaining(pods, now)
        if wait > 0:
            self.enqueue_after(job, wait + 0.1)
            return 0, 0
        slots: list[int | None] = [None] * missing
        if logic.is_indexed(job):
            running = {i for p in active if (i := indexes.index_of(p)) is not None}
            slots = list(indexes.to_create(logic.completions(job) or 0,
                                           plan.completed_indexes, running, missing))
        return await self._create_pods(job, key, slots), 0

    async def _create_pods(self, job: Object, key: str, slots: list[int | None]) -> int:
        if not slots:
            return 0
        owner_ref = controller_ref(job, self.api_version, self.kind)
        template = (job.get("spec") or {}).get("template") or {}
        name = job["metadata"]["name"]
        queue = list(slots)

        def make() -> Object:
            pod = podutil.pod_from_template(template, name, owner_ref)
            finalizers = pod["metadata"].setdefault("finalizers", [])
            if logic.FINALIZER not in finalizers:
                finalizers.append(logic.FINALIZER)
            index = queue.pop(0)
            if index is not None:
                indexes.decorate(pod, name, index)
            return pod

        return await self.pod_control.create(job, key, len(slots), make)

    async def _delete_pods(self, job: Object, key: str, victims: list[Object]) -> int:
        if not victims:
            return 0
        return await self.pod_control.delete(job, key, victims)

    # -- finalizers and status --------------------------------------------------------------------

    async def _remove_finalizers(self, job: Object | None, pods: list[Object],
                                 in_flight: set[str]) -> set[str]:
        """Remove the tracking finalizer from `pods`; return the uids where that failed."""
        async def remove(pod: Object) -> str | None:
            m = pod["metadata"]
            patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [logic.FINALIZER],
                                  "uid": m.get("uid")}}
            try:
                await self.client.patch(PODS, m["name"], patch, m["namespace"], patch_type=SMP)
            except errors.NotFound:
                pass
            except errors.APIError as exc:
                log.info("job %s: removing the finalizer of pod %s failed: %s",
                         (job or {}).get("metadata", {}).get("name"), m["name"], exc)
                return str(m.get("uid"))
            in_flight.add(str(m.get("uid")))
            return None

        results = await asyncio.gather(*(remove(p) for p in pods))
        return {uid for uid in results if uid is not None}

    async def _release_orphans(self, key: str, namespace: str, name: str,
                               job: Object | None) -> None:
        """Remove the finalizer from pods whose Job (by this name) no longer exists."""
        uid = job["metadata"].get("uid") if job is not None else None
        in_flight = self.in_flight.setdefault(key, set())
        orphans = [p for p in self.pods.list(namespace) if logic.has_finalizer(p)
                   and str(p["metadata"].get("uid")) not in in_flight
                   and (ref := controller_of(p)) is not None and ref.get("kind") == self.kind
                   and ref.get("name") == name and ref.get("uid") != uid]
        if orphans:
            held = await self._remove_finalizers(job, orphans, in_flight)
            if held:
                raise SyncError(f"finalizers of {len(held)} orphan pods remain")

    async def _put_status(self, job: Object, status: Object) -> Object:
        """Write `status` (unless unchanged) with the job's resourceVersion; return the job."""
        clean = _omit_empty(status)
        if clean == _omit_empty(job.get("status") or {}):
            return job
        body = deep_copy(job)
        body["status"] = clean
        m = job["metadata"]
        return await self.client.update(JOBS, body, m["namespace"], subresource="status")


_ALWAYS = ("ready", "terminating", "uncountedTerminatedPods")


def _omit_empty(status: Object) -> Object:
    return {k: v for k, v in status.items() if k in _ALWAYS or v not in (None, 0, "", [], {})}


def _uncounted(plan: tracking.Tracking) -> Object:
    out: Object = {}
    if plan.succeeded:
        out["succeeded"] = list(plan.succeeded)
    if plan.failed:
        out["failed"] = list(plan.failed)
    return out


def _duplicate_indexes(active: list[Object], completed: set[int]) -> list[Object]:
    """Active pods of an index that already completed or already has an older pod."""
    seen: set[int] = set()
    extra: list[Object] = []
    for pod in sorted(active, key=lambda p: str(p["metadata"].get("creationTimestamp"))):
        index = indexes.index_of(pod)
        if index is None or index in completed or index in seen:
            extra.append(pod)
        else:
            seen.add(index)
    return extra


def _key(job: Object) -> str:
    return f"{job['metadata'].get('namespace')}/{job['metadata']['name']}"


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
