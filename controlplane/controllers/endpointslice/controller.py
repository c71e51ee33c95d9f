"""The EndpointSlice controller: discovery.k8s.io/v1 slices for every Service with a selector.

`sync(service key)` lists the service's slices (labelled kubernetes.io/service-name and
managed-by endpointslice-controller.k8s.io), computes the desired endpoints of the selected pods
and applies the reconciler's plan (creates, updates with the cached resourceVersion, deletes),
each written slice carrying the last-change-trigger-time. A slice we wrote is expected in the
cache at least at the resourceVersion the API returned (a deleted one, gone): until the informer
shows that, a sync fails and is retried, so a slow watch never makes us create twice. A gone
service loses its slices; pods whose node is unknown are left out and the service retried.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.client.rest import ENDPOINTSLICES, NODES, PODS, SERVICES
from controlplane.controllers.base import Controller, ControllerContext, SyncError, split_key
from controlplane.controllers.endpoints.util import (
    TRIGGER_TIME,
    TriggerTimeTracker,
    format_time,
    selected_pods,
    selector_of,
    services_for_pod,
    services_to_update,
)
from controlplane.controllers.endpointslice.reconciler import (
    CONTROLLER_NAME,
    MANAGED_BY,
    MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME,
    Desired,
    PortKey,
    address_types,
    desired_endpoints,
    reconcile,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-endpoints-per-slice", type=int, default=MAX_ENDPOINTS_PER_SLICE,
                        metavar="N", help="endpoints in one EndpointSlice at most")


def service_key_of(slice_: Object) -> str | None:
    """`namespace/service` of a slice this controller manages (None for others' slices)."""
    labels = slice_["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY) != CONTROLLER_NAME or not labels.get(SERVICE_NAME):
        return None
    return f"{slice_['metadata'].get('namespace', '')}/{labels[SERVICE_NAME]}"


class EndpointSliceController(Controller):
    name = "endpointslice"
    component = "endpoint-slice-controller"
    kind = "Service"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.max_per_slice = int(ctx.options.get("max_endpoints_per_slice",
                                                 MAX_ENDPOINTS_PER_SLICE))
        self.services = ctx.informers.lister(SERVICES)
        self.pods = ctx.informers.lister(PODS)
        self.slices = ctx.informers.lister(ENDPOINTSLICES)
        self.nodes = ctx.informers.lister(NODES)
        self.triggers = TriggerTimeTracker()
        # service key -> slice name -> the resourceVersion we wrote (None: we deleted it);
        # owned by the controller's loop (workers and handlers)
        self.expected: dict[str, dict[str, int | None]] = {}
        self.services.informer.add_handlers(on_add=self.enqueue,
                                            on_update=lambda _old, cur: self.enqueue(cur),
                                            on_delete=self.enqueue)
        self.pods.informer.add_handlers(on_add=self._pod_added, on_update=self._pod_updated,
                                        on_delete=self._pod_added)
        self.slices.informer.add_handlers(on_add=self._slice_changed,
                                          on_update=self._slice_updated,
                                          on_delete=self._slice_deleted)

    def _pod_added(self, pod: Object) -> None:
        for key in services_for_pod(self.services, pod):
            self.queue.add(key)

    def _pod_updated(self, old: Object, cur: Object) -> None:
        for key in services_to_update(self.services, old, cur):
            self.queue.add(key)

    def _slice_changed(self, slice_: Object) -> None:
        key = service_key_of(slice_)
        if key is not None:
            self.queue.add(key)

    def _slice_updated(self, old: Object, cur: Object) -> None:
        self._slice_changed(cur)
        if service_key_of(old) != service_key_of(cur):
            self._slice_changed(old)

    def _slice_deleted(self, slice_: Object) -> None:
        key = service_key_of(slice_)
        if key is not None:
            self.expected.get(key, {}).pop(slice_["metadata"]["name"], None)
            self.queue.add(key)

    async def run(self, workers: int) -> None:
        # slices of services deleted while we were away
        for key in {k for s in self.slices.list() if (k := service_key_of(s))}:
            self.queue.add(key)
        await super().run(workers)

    def _slices_of(self, namespace: str, name: str) -> Iterator[Object]:
        for slice_ in self.slices.list(namespace):
            if service_key_of(slice_) == f"{namespace}/{name}":
                yield slice_

    def _is_stale(self, key: str, slices: list[Object]) -> bool:
        """Whether the cache has not yet caught up with our own writes."""
        expected = self.expected.get(key)
        if not expected:
            return False
        cached = {s["metadata"]["name"]: int(s["metadata"].get("resourceVersion") or 0)
                  for s in slices}
        stale = False
        for name, rv in list(expected.items()):
            if rv is None and name not in cached:
                del expected[name]
            elif rv is not None and cached.get(name, -1) >= rv:
                del expected[name]
            else:
                stale = True
        return stale

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        slices = list(self._slices_of(namespace, name))
        if self._is_stale(key, slices):
            raise SyncError(f"EndpointSlice informer cache is out of date for service {key}")
        if service is None:
            self.triggers.delete(key)
            for slice_ in slices:
                await self._delete(key, slice_)
            self.expected.pop(key, None)
            return
        if selector_of(service) is None:
            return
        pods = selected_pods(self.pods, service, selector_of(service) or {})
        trigger, state = self.triggers.compute(key, service, pods)
        names = {str((p.get("spec") or {}).get("nodeName") or "") for p in pods}
        nodes = {n: self.nodes.get("", n) if n else None for n in names}
        desired: dict[str, dict[PortKey, Desired]] = {}
        skipped: set[str] = set()
        for address_type in address_types(service):
            desired[address_type], left_out = desired_endpoints(service, pods, nodes,
                                                                address_type)
            skipped.update(left_out)
        live = [s for s in slices if not s["metadata"].get("deletionTimestamp")]
        plan = reconcile(service, desired, live, self.max_per_slice)
        await self._apply(key, service, plan.create, plan.update, plan.delete, trigger)
        self.triggers.save(key, state)
        if skipped:
            raise SyncError(f"service {key}: skipped pods on unknown nodes: "
                            f"{', '.join(sorted(skipped))}")

    async def _apply(self, key: str, service: Object, create: list[Object],
                     update: list[Object], delete: list[Object],
                     trigger: datetime | None) -> None:
        namespace = service["metadata"]["namespace"]
        expected = self.expected.setdefault(key, {})
        if not service["metadata"].get("deletionTimestamp"):
            for slice_ in create:
                _stamp(slice_, trigger)
                try:
                    created = await self.client.create(ENDPOINTSLICES, slice_, namespace)
                except errors.Forbidden as exc:
                    if "terminat" in str(exc):
                        return  # the namespace is going away
                    raise
                expected[created["metadata"]["name"]] = _rv(created)
        for slice_ in update:
            _stamp(slice_, trigger)
            updated = await self.client.update(ENDPOINTSLICES, slice_, namespace)
            expected[updated["metadata"]["name"]] = _rv(updated)
        for slice_ in delete:
            await self._delete(key, slice_)
        if create or update or delete:
            log.info("service %s: endpointslices created=%d updated=%d deleted=%d", key,
                     len(create), len(update), len(delete))

    async def _delete(self, key: str, slice_: Object) -> None:
        m = slice_["metadata"]
        try:
            await self.client.delete(ENDPOINTSLICES, m["name"], m.get("namespace", ""))
        except errors.NotFound:
            return
        self.expected.setdefault(key, {})[m["name"]] = None


def _stamp(slice_: Object, trigger: datetime | None) -> None:
    annotations = dict(slice_["metadata"].get("annotations") or {})
    if trigger is not None:
        annotations[TRIGGER_TIME] = format_time(trigger)
    else:
        annotations.pop(TRIGGER_TIME, None)
    slice_["metadata"]["annotations"] = annotations


def _rv(obj: Object) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0
