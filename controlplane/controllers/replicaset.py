"""The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet's template alive.

`sync(key)` claims the active pods in the namespace (adopting matching orphans, releasing owned
pods the selector no longer matches), then, once the expectations of earlier writes are met,
creates the missing pods in slow-start batches (1, 2, 4, ...; at most 500 per sync) or deletes
the surplus in Kubernetes' order (`pods.deletion_order`), and finally writes status (replicas,
fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration, ReplicaFailure).
Informer handlers only enqueue RS keys and lower expectations; they never call the API.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.api.meta import controller_of
from controlplane.api.selectors import LabelSelector
from controlplane.client.events import WARNING
from controlplane.client.rest import PODS, REPLICASETS
from controlplane.controllers import pods as podutil
from controlplane.controllers.base import (
    Controller,
    ControllerContext,
    controller_ref,
    deep_copy,
    resolve_controller_ref,
    split_key,
)
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.podcontrol import PodControl
from controlplane.controllers.refmanager import claim, recheck_owner
from controlplane.controllers.status import condition_of, conditions_set, status_patch

log = logging.getLogger(__name__)
Object = dict[str, Any]
BURST_REPLICAS = 500  # creates or deletes per sync (Kubernetes' burstReplicas)
SLOW_START_INITIAL_BATCH = 1
REPLICA_FAILURE = "ReplicaFailure"


class ReplicaSetController(Controller):
    name = "replicaset"
    component = "replicaset-controller"
    kind = "ReplicaSet"
    api_version = "apps/v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.rses = ctx.informers.lister(REPLICASETS)
        self.pods = ctx.informers.lister(PODS)
        self.expectations = Expectations()  # touched by handlers and workers, one loop
        self.pod_control = PodControl(self, self.expectations)
        self.burst_replicas = BURST_REPLICAS
        self.rses.informer.add_handlers(on_add=self.enqueue, on_update=self._update_rs,
                                        on_delete=self._delete_rs)
        self.pods.informer.add_handlers(on_add=self._add_pod, on_update=self._update_pod,
                                        on_delete=self._delete_pod)

    # -- handlers ---------------------------------------------------------------------------------

    def _update_rs(self, old: Object, cur: Object) -> None:
        if old["metadata"].get("uid") != cur["metadata"].get("uid"):
            self._delete_rs(old)
        self.enqueue(cur)

    def _delete_rs(self, rs: Object) -> None:
        key = f"{rs['metadata'].get('namespace')}/{rs['metadata']['name']}"
        self.expectations.delete(key)
        self.queue.add(key)

    def _owner(self, pod: Object, ref: Object | None) -> Object | None:
        return resolve_controller_ref(self.rses, pod["metadata"].get("namespace", ""), ref,
                                      self.kind)

    def _rses_for_pod(self, pod: Object) -> list[Object]:
        labels = pod["metadata"].get("labels") or {}
        found = []
        for rs in self.rses.list(pod["metadata"].get("namespace", "")):
            try:
                selector = LabelSelector.from_object((rs.get("spec") or {}).get("selector"))
            except errors.APIError:
                continue
            if not selector.is_empty() and selector.matches(labels):
                found.append(rs)
        return found

    def _add_pod(self, pod: Object) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._delete_pod(pod)  # a restarted controller sees pods pending deletion as adds
            return
        ref = controller_of(pod)
        if ref is not None:
            rs = self._owner(pod, ref)
            if rs is not None:
                self.expectations.creation_observed(_key(rs))
                self.enqueue(rs)
            return
        for rs in self._rses_for_pod(pod):
            self.enqueue(rs)

    def _update_pod(self, old: Object, cur: Object) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        labels_changed = old["metadata"].get("labels") != cur["metadata"].get("labels")
        if cur["metadata"].get("deletionTimestamp"):
            self._delete_pod(cur)
            if labels_changed:
                self._delete_pod(old)
            return
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            owner = self._owner(old, old_ref)
            if owner is not None:
                self.enqueue(owner)
        if cur_ref is not None:
            rs = self._owner(cur, cur_ref)
            if rs is None:
                return
            self.enqueue(rs)
            min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not podutil.is_ready(old) and podutil.is_ready(cur):
                self.enqueue_after(rs, min_ready + 1)
            return
        if labels_changed or ref_changed:
            for rs in self._rses_for_pod(cur):
                self.enqueue(rs)

    def _delete_pod(self, pod: Object) -> None:
        rs = self._owner(pod, controller_of(pod))
        if rs is None:
            return
        self.expectations.deletion_observed(_key(rs), podutil.pod_key(pod))
        self.enqueue(rs)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        rs = self.rses.get(namespace, name)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = LabelSelector.from_object(rs["spec"].get("selector"))
        except errors.APIError as exc:
            self.event(rs, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return
        active = [p for p in self.pods.list(namespace) if podutil.is_active(p)]
        owner_ref = controller_ref(rs, self.api_version, self.kind)
        pods = await claim(self.client, PODS, owner=rs, owner_ref=owner_ref, selector=selector,
                           children=active, can_adopt=recheck_owner(self.client, REPLICASETS, rs))
        manage_error: Exception | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self.manage_replicas(pods, rs, key)
            except errors.APIError as exc:
                manage_error = exc
        status = calculate_status(rs, pods, manage_error, self.clock())
        await self.update_status(rs, status)
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        if (manage_error is None and min_ready > 0
                and status.get("readyReplicas", 0) == int(rs["spec"].get("replicas", 1))
                and status.get("availableReplicas", 0) != status.get("readyReplicas", 0)):
            self.enqueue_after(rs, min_ready)
        if manage_error is not None:
            raise manage_error

    async def manage_replicas(self, pods: list[Object], rs: Object, key: str) -> None:
        """Create or delete pods so that len(pods) approaches spec.replicas."""
        diff = len(pods) - int(rs["spec"].get("replicas", 1))
        if diff < 0:
            await self._create(rs, key, min(-diff, self.burst_replicas))
        elif diff > 0:
            await self._delete(rs, key, pods, min(diff, self.burst_replicas))

    async def _create(self, rs: Object, key: str, count: int) -> None:
        owner_ref = controller_ref(rs, self.api_version, self.kind)
        template = rs["spec"].get("template") or {}

        def make() -> Object:
            pod = podutil.pod_from_template(template, rs["metadata"]["name"], owner_ref)
            if not pod["metadata"]["labels"]:
                raise errors.Invalid("unable to create pods, no labels")
            return pod

        await self.pod_control.create(rs, key, count, make, initial=SLOW_START_INITIAL_BATCH)

    async def _delete(self, rs: Object, key: str, pods: list[Object], count: int) -> None:
        related = self._related_pods(rs)
        await self.pod_control.delete(rs, key, podutil.deletion_order(pods, related)[:count])

    def _related_pods(self, rs: Object) -> list[Object]:
        """Pods of the ReplicaSets that share this one's owner (they share nodes too)."""
        ref = controller_of(rs)
        if ref is None:
            return []
        namespace = rs["metadata"]["namespace"]
        siblings = {r["metadata"].get("uid") for r in self.rses.list(namespace)
                    if (controller_of(r) or {}).get("uid") == ref.get("uid")}
        return [p for p in self.pods.list(namespace)
                if (controller_of(p) or {}).get("uid") in siblings]

    async def update_status(self, rs: Object, status: Object) -> None:
        """Write `status` through /status unless it is what the cache already shows."""
        if _comparable(rs.get("status") or {}) == _comparable(status):
            return
        m = rs["metadata"]
        await self.client.patch(REPLICASETS, m["name"], status_patch(status, _ALWAYS),
                                m["namespace"], subresource="status")


_ALWAYS = ("replicas",)  # RS status fields written even when zero


def _comparable(status: Object) -> Object:
    return {k: v for k, v in status.items() if v not in (None, 0, [], {}) or k in _ALWAYS}


def _key(rs: Object) -> str:
    return f"{rs['metadata'].get('namespace')}/{rs['metadata']['name']}"


def calculate_status(rs: Object, pods: list[Object], manage_error: Exception | None,
                     now: datetime) -> Object:
    """The status the RS should show for its claimed active `pods`."""
    spec = rs.get("spec") or {}
    status = deep_copy(rs.get("status") or {})
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    labeled = ready = available = 0
    for pod in pods:
        if podutil.labels_match(pod["metadata"].get("labels") or {}, template_labels):
            labeled += 1
        if podutil.is_ready(pod):
            ready += 1
            if podutil.is_available(pod, min_ready, now):
                available += 1
    conditions = list(status.get("conditions") or [])
    failure = condition_of(conditions, REPLICA_FAILURE)
    if manage_error is not None and failure is None:
        diff = len(pods) - int(spec.get("replicas", 1))
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conditions = conditions_set(conditions, {
            "type": REPLICA_FAILURE, "status": "True", "reason": reason,
            "message": str(manage_error), "lastTransitionTime": _rfc3339(now)})
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    status.update(replicas=len(pods), fullyLabeledReplicas=labeled, readyReplicas=ready,
                  availableReplicas=available,
                  observedGeneration=int(rs["metadata"].get("generation") or 0),
                  conditions=conditions)
    return status


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
