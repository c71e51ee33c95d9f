"""Deleting everything in a Terminating namespace (Kubernetes' namespacedResourcesDeleter).

`delete(name)` reads the namespace live; unless it is being deleted and still carries our
`kubernetes` finalizer in spec.finalizers it does nothing. Otherwise one pass over every
namespaced resource the server serves (found by discovery, never from a list of our own): an
estimate of graceful termination (pods), a DELETE of the whole collection (or of each item when
the resource has no deletecollection), propagationPolicy Background, then a list of what is left.
The pass records the deletion conditions on the namespace. What is left with finalizers, or pods
still within their grace period, is normal: `ResourcesRemaining` carries an estimate of the
seconds to wait. Anything else left, or any failure, is an error. Once nothing is left the
finalizer is removed through PUT .../finalize, and the apiserver deletes the namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from controlplane.api import errors
from controlplane.api.meta import parse_time
from controlplane.client.rest import NAMESPACES, PODS, Resource
from controlplane.controllers.base import Client, SyncError
from controlplane.controllers.namespace.conditions import ConditionUpdater
from controlplane.controllers.namespace.discovery import (
    APIResource,
    DiscoveryClient,
    preferred_resources,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
FINALIZER = "kubernetes"  # the token this controller removes (spec.finalizers)
FINALIZER_ESTIMATE_SECONDS = 5  # a guess for content held by finalizers (Kubernetes' value)
BACKGROUND = {"propagationPolicy": "Background"}


class NamespaceClient(Client, DiscoveryClient, Protocol):
    """What the deleter needs of `RESTClient`: the controller client plus list and request."""

    async def list(self, res: Resource, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", resource_version: str = "",
                   limit: int = 0) -> Object: ...


class ResourcesRemaining(SyncError):
    """Content is still being removed; look again in about `estimate` seconds."""

    def __init__(self, estimate: int) -> None:
        super().__init__(f"some content remains in the namespace, estimate {estimate}s")
        self.estimate = estimate


class ContentError(SyncError):
    """Some content could not be deleted (or discovered); the message lists why."""


def finalized(ns: Object) -> bool:
    return FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or [])


class NamespacedResourcesDeleter:
    def __init__(self, client: NamespaceClient, clock: Callable[[], datetime]) -> None:
        self.client = client
        self.clock = clock

    async def delete(self, name: str) -> None:
        """Remove the namespace's content, then our finalizer; raise to be tried again."""
        try:
            ns = await self.client.get(NAMESPACES, name)
        except errors.NotFound:
            return
        if not ns["metadata"].get("deletionTimestamp") or finalized(ns):
            return
        if (ns.get("status") or {}).get("phase") != "Terminating":
            ns = await self._retry_on_conflict(ns, self._mark_terminating)
        estimate = await self.delete_all_content(ns)
        if estimate > 0:
            raise ResourcesRemaining(estimate)
        try:
            await self._retry_on_conflict(ns, self._finalize)
        except errors.NotFound:
            return  # another controller finished the deletion meanwhile
        log.info("namespace %s: content removed, finalized", name)

    async def _retry_on_conflict(self, ns: Object,
                                 fn: Callable[[Object], Any]) -> Object:
        """Run `fn(ns)`, re-reading the namespace after each conflict (five tries)."""
        for attempt in range(5):
            try:
                result: Object = await fn(ns)
                return result
            except errors.Conflict:
                if attempt == 4:
                    raise
                ns = await self.client.get(NAMESPACES, ns["metadata"]["name"])
        raise AssertionError("unreachable")

    async def _mark_terminating(self, ns: Object) -> Object:
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return ns
        new = dict(ns, status=dict(ns.get("status") or {}, phase="Terminating"))
        return await self.client.update(NAMESPACES, new, subresource="status")

    async def _finalize(self, ns: Object) -> Object:
        spec = dict(ns.get("spec") or {})
        spec["finalizers"] = sorted({f for f in spec.get("finalizers") or [] if f != FINALIZER})
        return await self.client.update(NAMESPACES, dict(ns, spec=spec),
                                        subresource="finalize")

    async def delete_all_content(self, ns: Object) -> int:
        """One pass of deletion over every namespaced resource; the seconds to wait."""
        name = ns["metadata"]["name"]
        deleted_at = parse_time(ns["metadata"]["deletionTimestamp"])
        conditions = ConditionUpdater(self.clock())
        problems: list[str] = []
        resources, discovery_error = await preferred_resources(self.client)
        if discovery_error is not None:
            problems.append(str(discovery_error))
            conditions.discovery_failed(str(discovery_error), len(discovery_error.groups))
        deletable = [r for r in resources if r.namespaced and r.supports("delete")]
        results = await asyncio.gather(*(self._delete_resource(r, name, deleted_at)
                                         for r in deletable), return_exceptions=True)
        estimate = 0
        remaining: dict[str, int] = {}
        finalizers: Counter[str] = Counter()
        for res, result in zip(deletable, results, strict=True):
            if isinstance(result, errors.APIError | ContentError):
                problems.append(str(result))
                conditions.delete_failed(str(result))
                continue
            if isinstance(result, BaseException):
                raise result
            res_estimate, left, held = result
            estimate = max(estimate, res_estimate)
            if left:
                remaining[res.group_resource] = left
                finalizers.update(held)
        conditions.content_totals(remaining, dict(finalizers))
        await self._write_conditions(ns, conditions)
        if problems:
            raise ContentError("; ".join(problems))
        return estimate

    async def _write_conditions(self, ns: Object, conditions: ConditionUpdater) -> None:
        status = ns.get("status") or {}
        new, changed = conditions.update(list(status.get("conditions") or []))
        if not changed:
            return
        try:
            updated = await self.client.update(
                NAMESPACES, dict(ns, status=dict(status, conditions=new)), subresource="status")
            ns["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")
        except errors.APIError as exc:  # conditions are informative; the deletion goes on
            log.warning("namespace %s: could not update conditions: %s",
                        ns["metadata"]["name"], exc)

    async def _delete_resource(self, res: APIResource, namespace: str, deleted_at: datetime
                               ) -> tuple[int, int, Counter[str]]:
        """Delete one resource's objects: (estimate, objects left, their finalizers)."""
        r = res.resource
        estimate = await self._estimate(res, namespace, deleted_at)
        if res.supports("deletecollection"):
            await self.client.request("DELETE", r.path(namespace), body=BACKGROUND)
        elif res.supports("list"):
            for item in (await self.client.list(r, namespace)).get("items") or []:
                try:
                    await self.client.delete(r, item["metadata"]["name"], namespace,
                                             propagation="Background")
                except errors.NotFound:
                    pass
        if not res.supports("list"):
            return estimate, 0, Counter()
        items = (await self.client.list(r, namespace)).get("items") or []
        if not items:
            return 0, 0, Counter()  # (Kubernetes waits out the estimate even then; no need)
        held: Counter[str] = Counter(f for item in items
                                     for f in item["metadata"].get("finalizers") or [])
        if estimate == 0:
            if not held:
                raise ContentError(f"unexpected items still remain in namespace: {namespace} "
                                   f"for gvr: {r.group}/{r.version}, Resource={r.resource}")
            estimate = FINALIZER_ESTIMATE_SECONDS
        return estimate, len(items), held

    async def _estimate(self, res: APIResource, namespace: str, deleted_at: datetime) -> int:
        """Pods get up to their grace period, counted from the namespace's deletion."""
        if (res.resource.group, res.resource.resource) != ("", PODS.resource):
            return 0
        estimate = 0
        for pod in (await self.client.list(PODS, namespace)).get("items") or []:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            estimate = max(estimate, int(grace or 0))
        if (self.clock() - deleted_at).total_seconds() >= estimate:
            return 0
        return estimate
