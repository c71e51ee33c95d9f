"""The scheduling loop: informer events in, bindings, pod conditions and events out.

Informer handlers (synchronous, on the event loop) keep the cache and the queue current and turn
cluster changes into queue move requests. `schedule_one` pops a pod, runs its profile over the
cache synchronously (nothing can change the cache meanwhile), assumes the pod on the chosen node
and binds it in a background task, so the next pod already sees this one's requests. A failure
parks the pod (or backs it off), patches PodScheduled=False and records FailedScheduling. No pod
can stop the loop: any exception is logged and the pod retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from controlplane.api import errors
from controlplane.api.meta import now_rfc3339
from controlplane.client.events import NORMAL, WARNING, EventRecorder, EventSink
from controlplane.scheduler import plugin as events
from controlplane.scheduler.cache import Cache, is_terminal
from controlplane.scheduler.config import SchedulerConfig
from controlplane.scheduler.framework import Profile
from controlplane.scheduler.messages import FitError, NoNodesAvailable
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.queue import QueuedPod, SchedulingQueue

log = logging.getLogger(__name__)
Object = dict[str, Any]


class SchedulerAPI(Protocol):
    """The writes the scheduler makes but events (a REST adapter in production, a fake in tests)."""

    async def bind(self, namespace: str, name: str, node: str) -> None: ...

    async def patch_pod_status(self, namespace: str, name: str, patch: Object) -> None: ...


def key_of(obj: Object) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _stripped(pod: Object) -> Object:
    meta = {k: v for k, v in (pod.get("metadata") or {}).items()
            if k not in ("resourceVersion", "generation", "managedFields", "finalizers")}
    return {**{k: v for k, v in pod.items() if k != "status"}, "metadata": meta}


def pod_spec_changed(old: Object, new: Object) -> bool:
    """isPodUpdated: a change beyond status and bookkeeping metadata."""
    return _stripped(old) != _stripped(new)


def node_events(old: Object, new: Object) -> list[str]:
    """What changed on a node that scheduling cares about (heartbeats alone change nothing)."""
    def conditions(node: Object) -> list[tuple[str, str]]:
        return sorted((str(c.get("type")), str(c.get("status")))
                      for c in (node.get("status") or {}).get("conditions") or [])

    found = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        found.append(events.NODE_LABEL)
    if old_spec.get("taints") != new_spec.get("taints"):
        found.append(events.NODE_TAINT)
    if bool(old_spec.get("unschedulable")) != bool(new_spec.get("unschedulable")):
        found.append(events.NODE_UNSCHEDULABLE)
    if old_status.get("allocatable") != new_status.get("allocatable"):
        found.append(events.NODE_ALLOCATABLE)
    if conditions(old) != conditions(new):
        found.append(events.NODE_CONDITION)
    if old_status.get("images") != new_status.get("images"):
        found.append(events.NODE_IMAGES)
    return found


def scheduled_condition(pod: Object) -> Object | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return dict(condition)
    return None


class Scheduler:
    """One scheduler process's state: cache, queue, profiles; fed by `on_*` handlers."""

    def __init__(self, api: SchedulerAPI, config: SchedulerConfig, *, sink: EventSink) -> None:
        self.api = api
        self.config = config
        self.profiles: dict[str, Profile] = config.build_profiles()
        self.cache = Cache()
        self.queue = SchedulingQueue(interested=self.interested,
                                     initial_backoff=config.pod_initial_backoff,
                                     max_backoff=config.pod_max_backoff)
        self.sink = sink  # events; its run() task belongs to the caller
        self.recorders: dict[str, EventRecorder] = {  # source.component: the schedulerName
            name: sink.recorder(name) for name in self.profiles}
        self.pending: dict[str, Object] = {}  # key -> latest object of our unbound pods
        self._plugin_events = {name: p.events for profile in self.profiles.values()
                               for name, p in profile.plugins.items()}
        self._tasks: set[asyncio.Task[None]] = set()  # bindings and status patches in flight

    def __repr__(self) -> str:
        return f"<Scheduler profiles={list(self.profiles)} {self.cache!r} {self.queue!r}>"

    def responsible(self, pod: Object) -> bool:
        return str((pod.get("spec") or {}).get("schedulerName")
                   or "default-scheduler") in self.profiles

    def profile_name(self, pod: PodInfo) -> str:
        return str(pod.spec.get("schedulerName") or "default-scheduler")

    def interested(self, plugins: frozenset[str], event: str) -> bool:
        """Queueing hint: may `event` help a pod the named plugins rejected?"""
        if not plugins:
            return True
        return any(event in self._plugin_events.get(name, frozenset()) for name in plugins)

    # -- informer handlers ------------------------------------------------------------------------

    def on_pod_add(self, pod: Object) -> None:
        self.on_pod_update(None, pod)

    def on_pod_update(self, old: Object | None, pod: Object) -> None:
        key = key_of(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            self.pending.pop(key, None)
            self.queue.delete(key)
            was_known = key in self.cache.pods and not self.cache.is_assumed(key)
            self.cache.add_pod(pod)
            if is_terminal(pod):
                self.queue.move_all(events.POD_DELETE)
            elif not was_known and not (old and (old.get("spec") or {}).get("nodeName")):
                self.queue.move_all(events.POD_ADD)
            elif old is not None and pod_spec_changed(old, pod):
                self.queue.move_all(events.POD_UPDATE)
            return
        if (not self.responsible(pod) or is_terminal(pod)
                or (pod.get("metadata") or {}).get("deletionTimestamp")):
            self.pending.pop(key, None)
            self.queue.delete(key)
            return
        if (pod.get("spec") or {}).get("schedulingGates"):
            self.pending.pop(key, None)  # gated (SchedulingGates): queued once the gates go
            self.queue.delete(key)
            return
        self.pending[key] = pod
        if self.cache.is_assumed(key):
            return  # bound by us a moment ago; the informer has not caught up yet
        self.queue.update(PodInfo(pod), spec_changed=old is None or pod_spec_changed(old, pod))

    def on_pod_delete(self, pod: Object) -> None:
        key = key_of(pod)
        self.pending.pop(key, None)
        self.queue.delete(key)
        if key in self.cache.pods:
            self.cache.remove_pod(key)
            self.queue.move_all(events.POD_DELETE)

    def on_node_add(self, node: Object) -> None:
        self.cache.set_node(node)
        self.queue.move_all(events.NODE_ADD)

    def on_node_update(self, old: Object, node: Object) -> None:
        self.cache.set_node(node)
        for event in node_events(old, node):
            self.queue.move_all(event)

    def on_node_delete(self, node: Object) -> None:
        self.cache.remove_node(str(node["metadata"]["name"]))
        self.queue.move_all(events.NODE_DELETE)

    def on_namespace(self, old: Object | None, namespace: Object | None) -> None:
        if namespace is None:
            self.cache.remove_namespace(str((old or {}).get("metadata", {}).get("name")))
            return
        self.cache.set_namespace(namespace)
        if ((old or {}).get("metadata") or {}).get("labels") != namespace["metadata"].get(
                "labels"):
            self.queue.move_all(events.NAMESPACE_CHANGE)

    def on_service(self, old: Object | None, service: Object | None) -> None:
        """Services select the pods default spreading counts together."""
        if service is None:
            self.cache.remove_service(old or {})
        else:
            self.cache.set_service(service)
        self._workload_changed(old, service)

    def on_replica_set(self, old: Object | None, replica_set: Object | None) -> None:
        if replica_set is None:
            self.cache.remove_replica_set(old or {})
        else:
            self.cache.set_replica_set(replica_set)
        self._workload_changed(old, replica_set)

    def _workload_changed(self, old: Object | None, new: Object | None) -> None:
        if old is None or new is None or (old.get("spec") or {}).get("selector") != (
                new.get("spec") or {}).get("selector"):
            self.queue.move_all(events.WORKLOAD_CHANGE)

    # -- the loop -------------------------------------------------------------------------------

    async def schedule_one(self) -> None:
        """Pop one pod and try to place it (never raises but for cancellation)."""
        queued = await self.queue.pop()
        pod = queued.pod
        current = self.pending.get(pod.key)
        if current is None or self.cache.is_assumed(pod.key):
            self.queue.done(pod.key)  # deleted, bound or being bound meanwhile
            return
        pod = queued.pod = PodInfo(current)
        profile = self.profiles.get(self.profile_name(pod))
        if profile is None:
            self.queue.done(pod.key)
            return
        try:
            result = profile.schedule(pod, self.cache.snapshot())
        except FitError as err:
            self.fail(queued, str(err), plugins=err.diagnosis.unschedulable_plugins)
            return
        except NoNodesAvailable as err:
            self.fail(queued, str(err), plugins=set())
            return
        except Exception as exc:  # noqa: BLE001 - one bad pod must not stop the scheduler
            log.exception("scheduling %s failed", pod.key)
            self.fail(queued, f"running scheduling plugins: {exc}", error=True)
            return
        log.debug("pod %s -> %s (%d/%d nodes feasible)", pod.key, result.node, result.feasible,
                  result.evaluated)
        self.cache.assume(pod, result.node)
        self._spawn(self._bind(queued, result.node))

    async def _bind(self, queued: QueuedPod, node: str) -> None:
        pod = queued.pod
        try:
            await self.api.bind(pod.namespace, pod.name, node)
        except errors.APIError as exc:
            self.cache.forget(pod.key)
            self.queue.move_all(events.POD_DELETE)  # the assumed requests are free again
            if isinstance(exc, errors.NotFound) or (
                    isinstance(exc, errors.Conflict) and "already assigned" in str(exc)):
                log.info("binding %s to %s skipped: %s", pod.key, node, exc)
                self.queue.done(pod.key)
                return
            log.warning("binding %s to %s failed: %s", pod.key, node, exc)
            self.fail(queued, f"Binding rejected: {exc}", error=True)
            return
        except Exception as exc:  # noqa: BLE001 - timeouts, lost connections: never stuck assumed
            self.cache.forget(pod.key)
            self.queue.move_all(events.POD_DELETE)
            log.warning("binding %s to %s failed: %r", pod.key, node, exc)
            self.fail(queued, f"binding to {node}: {exc!r}", error=True)
            return
        self.queue.done(pod.key)
        log.debug("bound %s to %s", pod.key, node)  # kube-scheduler logs it at V(2)
        self.record(pod, NORMAL, "Scheduled", f"Successfully assigned {pod.key} to {node}")

    def fail(self, queued: QueuedPod, message: str, *, plugins: set[str] | None = None,
             error: bool = False) -> None:
        """Requeue the pod, record FailedScheduling, set PodScheduled=False (if it changed)."""
        pod = queued.pod
        if error:
            where = self.queue.requeue_backoff(queued)
        else:
            where = self.queue.requeue_unschedulable(queued, plugins or set())
        if not where:
            return  # the pod is gone
        log.info("pod %s unschedulable (%s, attempt %d): %s", pod.key, where, queued.attempts,
                 message)
        current = self.pending.get(pod.key, pod.pod)
        self.record(pod, WARNING, "FailedScheduling", message)
        reason = "SchedulerError" if error else "Unschedulable"
        existing = scheduled_condition(current) or {}
        if (existing.get("status"), existing.get("reason"), existing.get("message")) == (
                "False", reason, message):
            return
        condition = {"type": "PodScheduled", "status": "False", "reason": reason,
                     "message": message, "lastProbeTime": None,
                     "lastTransitionTime": (existing.get("lastTransitionTime")
                                            if existing.get("status") == "False"
                                            else now_rfc3339())}
        self._spawn(self._patch_status(pod, {"status": {"conditions": [condition]}}))

    def record(self, pod: PodInfo, event_type: str, reason: str, message: str) -> None:
        """An event about `pod` from its profile (list items carry no kind: name it)."""
        recorder = self.recorders.get(self.profile_name(pod))
        if recorder is not None:
            obj = self.pending.get(pod.key, pod.pod)
            recorder.event(dict(obj, kind="Pod", apiVersion="v1"), event_type, reason, message)

    async def _patch_status(self, pod: PodInfo, patch: Object) -> None:
        try:
            await self.api.patch_pod_status(pod.namespace, pod.name, patch)
        except errors.APIError as exc:
            log.warning("updating the PodScheduled condition of %s failed: %s", pod.key, exc)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the bindings and patches in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def loop(self) -> None:
        """Schedule pods until cancelled."""
        while True:
            await self.schedule_one()
            await asyncio.sleep(0)  # let informers and bindings run between cycles
