"""The namespace controller: a Terminating namespace loses its content, then its finalizer.

Handlers enqueue a namespace's name once it has a deletionTimestamp, a moment later
(`deletion_delay`: Kubernetes waits 5 s so that every apiserver of an HA control plane has seen
the deletion and refuses new content; one apiserver needs less). `sync(name)` runs the deleter.
When content remains (pods terminating, objects held by finalizers) the name comes back after
a growing delay (0.25 s doubling, never beyond Kubernetes' estimate/2 + 1 s); a failure is
retried with the queue's rate-limited back-off.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from controlplane.client.rest import NAMESPACES
from controlplane.controllers.base import Controller, ControllerContext
from controlplane.controllers.namespace.deleter import (
    NamespaceClient,
    NamespacedResourcesDeleter,
    ResourcesRemaining,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
REMAINING_BASE_DELAY = 0.25  # seconds before the first look again at remaining content


class NamespaceController(Controller):
    name = "namespace"
    component = "namespace-controller"
    kind = "Namespace"
    api_version = "v1"
    deletion_delay = 1.0  # seconds between seeing a deletion and acting on it

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informers.lister(NAMESPACES)
        self.deleter = NamespacedResourcesDeleter(cast(NamespaceClient, ctx.client), self.clock)
        self._waits: dict[str, int] = {}  # name -> passes that found content remaining
        self.namespaces.informer.add_handlers(on_add=self._changed,
                                              on_update=lambda _, new: self._changed(new))

    def _changed(self, ns: Object) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.queue.add_after(ns["metadata"]["name"], self.deletion_delay)

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get("", key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            self._waits.pop(key, None)
            return
        try:
            await self.deleter.delete(key)
        except ResourcesRemaining as remaining:
            waits = self._waits.get(key, 0)
            self._waits[key] = waits + 1
            delay = min(REMAINING_BASE_DELAY * 2 ** waits, remaining.estimate / 2 + 1)
            log.info("namespace %s: content remaining, looking again in %.2fs", key, delay)
            self.queue.add_after(key, delay)
            return
        self._waits.pop(key, None)
