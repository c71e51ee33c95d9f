"""The two rollout strategies (Kubernetes' deployment/rolling.go and recreate.go).

RollingUpdate, one step per sync: scale the new RS up within maxSurge (total pods never above
replicas + maxSurge); if nothing grew, scale old RSes down within maxUnavailable (available
pods never below replicas - maxUnavailable), unhealthy old replicas first since removing them
costs no availability. Each step waits for the RS and pod events it causes, so the rollout
advances as pods become available and stalls (safely) when they do not.
Recreate: scale every old RS to zero, wait until none of their pods is left running, then
create or scale up the new RS to the full size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.api.meta import controller_of
from controlplane.controllers.deployment import progress, sync, util

if TYPE_CHECKING:
    from controlplane.controllers.deployment.controller import DeploymentController

Object = dict[str, Any]


async def rolling(dc: DeploymentController, d: Object, rses: list[Object]) -> None:
    new_rs, olds = await sync.new_and_old_rses(dc, d, rses, create=True)
    all_rses: list[Object | None] = [*olds, new_rs]
    if new_rs is not None and await _reconcile_new(dc, all_rses, new_rs, d):
        await progress.sync_rollout_status(dc, all_rses, new_rs, d)
        return
    if new_rs is not None and await _reconcile_old(dc, all_rses, util.active(olds), new_rs, d):
        await progress.sync_rollout_status(dc, all_rses, new_rs, d)
        return
    if progress.deployment_complete(d, d.get("status") or {}):
        await sync.cleanup(dc, olds, d)
    await progress.sync_rollout_status(dc, all_rses, new_rs, d)


async def _reconcile_new(dc: DeploymentController, all_rses: list[Object | None],
                         new_rs: Object, d: Object) -> bool:
    if util.replicas(new_rs) == util.replicas(d):
        return False
    if util.replicas(new_rs) > util.replicas(d):
        scaled, _ = await sync.scale_rs_and_record(dc, new_rs, util.replicas(d), d)
        return scaled
    count = util.new_rs_new_replicas(d, all_rses, new_rs)
    scaled, _ = await sync.scale_rs_and_record(dc, new_rs, count, d)
    return scaled


async def _reconcile_old(dc: DeploymentController, all_rses: list[Object | None],
                         olds: list[Object], new_rs: Object, d: Object) -> bool:
    if util.spec_count(olds) == 0:
        return False
    all_pods = util.spec_count(all_rses)
    min_available = util.replicas(d) - util.max_unavailable(d)
    new_unavailable = util.replicas(new_rs) - int(
        (new_rs.get("status") or {}).get("availableReplicas") or 0)
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    olds, cleaned = await _cleanup_unhealthy(dc, olds, d, max_scaled_down)
    scaled = await _scale_down_old(dc, [*olds, new_rs], olds, d)
    return cleaned + scaled > 0


async def _cleanup_unhealthy(dc: DeploymentController, olds: list[Object], d: Object,
                             max_cleanup: int) -> tuple[list[Object], int]:
    """Scale old RSes down by their unavailable replicas (oldest RS first)."""
    olds = util.by_creation(olds)
    total = 0
    for i, rs in enumerate(olds):
        if total >= max_cleanup:
            break
        size = util.replicas(rs)
        available = int((rs.get("status") or {}).get("availableReplicas") or 0)
        if size == 0 or size == available:
            continue
        down = min(max_cleanup - total, size - available)
        _, olds[i] = await sync.scale_rs_and_record(dc, rs, size - down, d)
        total += down
    return olds, total


async def _scale_down_old(dc: DeploymentController, all_rses: list[Object],
                          olds: list[Object], d: Object) -> int:
    """Scale old RSes down as far as maxUnavailable allows (oldest RS first)."""
    min_available = util.replicas(d) - util.max_unavailable(d)
    available = util.available_count(all_rses)
    if available <= min_available:
        return 0
    budget = available - min_available
    total = 0
    for rs in util.by_creation(olds):
        if total >= budget:
            break
        if util.replicas(rs) == 0:
            continue
        down = min(util.replicas(rs), budget - total)
        await sync.scale_rs_and_record(dc, rs, util.replicas(rs) - down, d)
        total += down
    return total


async def recreate(dc: DeploymentController, d: Object, rses: list[Object],
                   pod_map: dict[str, list[Object]]) -> None:
    new_rs, olds = await sync.new_and_old_rses(dc, d, rses, create=False)
    all_rses: list[Object | None] = [*olds, new_rs]
    scaled_down = False
    for rs in util.active(olds):
        scaled, _ = await sync.scale_rs_and_record(dc, rs, 0, d)
        scaled_down = scaled_down or scaled
    if scaled_down or old_pods_running(new_rs, olds, pod_map):
        await progress.sync_rollout_status(dc, all_rses, new_rs, d)
        return
    if new_rs is None:
        new_rs, olds = await sync.new_and_old_rses(dc, d, rses, create=True)
        all_rses = [*olds, new_rs]
    if new_rs is not None:
        await sync.scale_rs_and_record(dc, new_rs, util.replicas(d), d)
    if progress.deployment_complete(d, d.get("status") or {}):
        await sync.cleanup(dc, olds, d)
    await progress.sync_rollout_status(dc, all_rses, new_rs, d)


def old_pods_running(new_rs: Object | None, olds: list[Object],
                     pod_map: dict[str, list[Object]]) -> bool:
    """Whether any pod of an old RS may still run (only finished pods do not count)."""
    if util.actual_count(olds) > 0:
        return True
    new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    for uid, pods in pod_map.items():
        if uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
    return False


def pods_by_rs(pods: list[Object], rses: list[Object]) -> dict[str, list[Object]]:
    """The Deployment's pods grouped by the uid of the RS that controls them."""
    grouped: dict[str, list[Object]] = {rs["metadata"]["uid"]: [] for rs in rses}
    for pod in pods:
        ref = controller_of(pod)
        if ref is not None and ref.get("uid") in grouped:
            grouped[str(ref["uid"])].append(pod)
    return grouped
