"""Pod garbage collection (Kubernetes' PodGCController): pods nothing else will ever remove.

Every check period (20 s) one pass over the caches:
- terminated pods (Succeeded/Failed) beyond --terminated-pod-gc-threshold (12500; 0 turns this
  off) are deleted, evicted ones first, then oldest first;
- pods bound to a node that does not exist are deleted once the node has been missing for the
  quarantine (40 s) and a GET confirms it is gone (the node cache may simply lag);
- pods being deleted that were never scheduled are deleted at once (no kubelet will finish
  them).
A pod not yet finished is first marked Failed (orphans also get the DisruptionTarget
condition, reason DeletionByPodGC), then deleted with grace period 0 and its uid as
precondition. The pass is the one key of this controller's queue; it requeues itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from controlplane.api import errors
from controlplane.api.flags import duration
from controlplane.client.rest import NODES, PODS
from controlplane.controllers.base import Controller, ControllerContext
from controlplane.controllers.pods import created_at

log = logging.getLogger(__name__)
Object = dict[str, Any]
GC_KEY = "podgc"
DEFAULTS = {"terminated_pod_gc_threshold": 12500, "pod_gc_check_period": 20.0,
            "pod_gc_quarantine": 40.0}
ORPHAN_CONDITION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                    "message": "PodGC: node no longer exists"}


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--terminated-pod-gc-threshold", type=int, default=12500, metavar="N",
                        help="terminated pods kept before the oldest are deleted (0: no limit)")
    parser.add_argument("--pod-gc-check-period", type=duration, default=20.0,
                        help="pinnace: how often pod GC looks (Kubernetes fixes 20s)")
    parser.add_argument("--pod-gc-quarantine", type=duration, default=40.0,
                        help="pinnace: how long a node must be missing before its pods are "
                             "deleted (Kubernetes fixes 40s)")


# -- what to collect (pure) -------------------------------------------------------------------


def is_terminated(pod: Object) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Pending", "Running", "Unknown")


def terminated_to_delete(pods: Iterable[Object], threshold: int) -> list[Object]:
    """The terminated pods beyond `threshold`: evicted first, then oldest, then by name."""
    terminated = [p for p in pods if is_terminated(p)]
    excess = len(terminated) - threshold
    if threshold <= 0 or excess <= 0:
        return []

    def evicted(pod: Object) -> bool:
        status = pod.get("status") or {}
        return status.get("phase") == "Failed" and status.get("reason") == "Evicted"

    terminated.sort(key=lambda p: (0 if evicted(p) else 1, created_at(p), p["metadata"]["name"]))
    return terminated[:excess]


def missing_nodes(pods: Iterable[Object], nodes: set[str]) -> set[str]:
    """Node names pods are bound to that the node cache lacks."""
    return {str(p["spec"]["nodeName"]) for p in pods
            if (p.get("spec") or {}).get("nodeName") and p["spec"]["nodeName"] not in nodes}


def unscheduled_terminating(pods: Iterable[Object]) -> list[Object]:
    return [p for p in pods if p["metadata"].get("deletionTimestamp")
            and not (p.get("spec") or {}).get("nodeName")]


class Quarantine:
    """Since when each node has been missing (monotonic seconds); `due` names the ones missing
    for the whole period. A node seen again is forgotten."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self.clock = clock
        self._since: dict[str, float] = {}  # owned by the controller's single worker

    def __repr__(self) -> str:
        return f"<Quarantine {sorted(self._since)}>"

    def due(self, missing: set[str]) -> list[str]:
        now = self.clock()
        self._since = {n: self._since.get(n, now) for n in missing}
        return sorted(n for n, since in self._since.items() if now - since >= self.period)


def with_condition(status: Object, condition: Object, now: str) -> list[Object]:
    """The pod's conditions with `condition` set (its transition time kept if unchanged)."""
    out = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == condition["type"]:
            if cond.get("status") == condition["status"]:
                now = cond.get("lastTransitionTime") or now
            continue
        out.append(cond)
    out.append(dict(condition, lastTransitionTime=now))
    return out


# -- the controller ---------------------------------------------------------------------------


class PodGCController(Controller):
    name = "podgc"
    component = "pod-garbage-collector"
    kind = "Pod"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        option = ctx.option_values(DEFAULTS)
        self.threshold = int(option["terminated_pod_gc_threshold"])
        self.period = float(option["pod_gc_check_period"])
        self.quarantine = Quarantine(float(option["pod_gc_quarantine"]))
        self.pods = ctx.informers.lister(PODS)
        self.nodes = ctx.informers.lister(NODES)
        self.queue.add(GC_KEY)

    async def sync(self, key: str) -> None:
        try:
            await self.gc()
        finally:
            self.queue.add_after(GC_KEY, self.period)

    async def gc(self) -> None:
        """One pass; every deletion is tried, the first failure is raised after."""
        pods = list(self.pods.list())
        failures: list[BaseException] = []
        if self.threshold > 0:
            doomed = terminated_to_delete(pods, self.threshold)
            if doomed:
                log.info("garbage collecting %d terminated pods", len(doomed))
            failures += await self._delete_all(doomed, None)
        gone = await self._deleted_nodes(pods)
        orphans = [p for p in pods if (p.get("spec") or {}).get("nodeName") in gone]
        for pod in orphans:
            log.info("found orphaned pod %s/%s assigned to the node %s, deleting",
                     pod["metadata"].get("namespace"), pod["metadata"]["name"],
                     pod["spec"]["nodeName"])
        failures += await self._delete_all(orphans, ORPHAN_CONDITION)
        failures += await self._delete_all(unscheduled_terminating(pods), None)
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure
        if failures:
            raise failures[0]

    async def _deleted_nodes(self, pods: list[Object]) -> set[str]:
        """Nodes missing for the whole quarantine that the API confirms do not exist."""
        known = {n["metadata"]["name"] for n in self.nodes.list()}
        gone = set()
        for name in self.quarantine.due(missing_nodes(pods, known)):
            try:
                await self.client.get(NODES, name)
            except errors.NotFound:
                gone.add(name)
            except errors.APIError as exc:
                log.warning("pod GC: could not get node %s: %s", name, exc)
        return gone

    async def _delete_all(self, pods: list[Object], condition: Object | None
                          ) -> list[BaseException]:
        results = await asyncio.gather(*(self.mark_failed_and_delete(p, condition)
                                         for p in pods), return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException)]

    async def mark_failed_and_delete(self, pod: Object, condition: Object | None) -> None:
        """Move an unfinished pod to Failed (with `condition`), then force-delete it."""
        m = pod["metadata"]
        namespace = m.get("namespace", "")
        log.info("pod GC force deleting pod %s/%s", namespace, m["name"])
        try:
            status = pod.get("status") or {}
            if status.get("phase") not in ("Succeeded", "Failed"):
                patch: Object = {"phase": "Failed"}
                if condition is not None:
                    patch["conditions"] = with_condition(
                        status, condition, self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"))
                await self.client.patch(PODS, m["name"], {"status": patch}, namespace,
                                        subresource="status")
            await self.client.delete(PODS, m["name"], namespace, grace_period=0,
                                     preconditions={"uid": m.get("uid")})
        except errors.NotFound:
            return
