"""Deployment sync steps shared by both strategies (Kubernetes' deployment/sync.go).

- `new_and_old_rses` finds the RS whose template is the Deployment's (the new one, created on
  demand as `<name>-<hash>` owned by the Deployment) and keeps revisions straight: the new RS
  always carries the highest revision, and the Deployment mirrors it.
- `scale` handles a replicas change (or a paused Deployment): the only active RS takes the
  whole size; during a rollout the change is spread over the active RSes in proportion to
  their size, the largest first, leftovers to the largest.
- `cleanup` deletes the oldest empty RSes beyond revisionHistoryLimit.
Every RS write is a PUT of the cached object (a stale cache is a 409, retried by the queue).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from controlplane.api import errors
from controlplane.api.meta import controller_of
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.rest import REPLICASETS
from controlplane.controllers.base import controller_ref, deep_copy
from controlplane.controllers.deployment import progress, util

if TYPE_CHECKING:
    from controlplane.controllers.deployment.controller import DeploymentController

log = logging.getLogger(__name__)
Object = dict[str, Any]


async def new_and_old_rses(dc: DeploymentController, d: Object, rses: list[Object],
                           create: bool) -> tuple[Object | None, list[Object]]:
    """(the new RS or None, all the old RSes), syncing the new RS's revision."""
    new_rs = util.find_new_rs(d, rses)
    olds = [rs for rs in rses if new_rs is None or rs["metadata"]["uid"] !=
            new_rs["metadata"]["uid"]]
    return await _new_rs(dc, d, rses, olds, new_rs, create), olds


async def _new_rs(dc: DeploymentController, d: Object, rses: list[Object], olds: list[Object],
                  existing: Object | None, create: bool) -> Object | None:
    new_revision = util.max_revision(olds) + 1
    if existing is not None:
        rs = deep_copy(existing)
        changed = util.set_new_rs_annotations(d, rs, new_revision, exists=True)
        min_ready = int(d["spec"].get("minReadySeconds") or 0)
        if changed or int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            return await dc.update_rs(rs)
        await dc.set_revision(d, str(util.revision(rs)))
        if progress.has_progress_deadline(d) and progress.get_condition(
                d.get("status") or {}, progress.PROGRESSING) is None:
            status = deep_copy(d.get("status") or {})
            progress.set_condition(status, progress.new_condition(
                progress.PROGRESSING, "True", progress.FOUND_NEW_RS,
                f'Found new replica set "{rs["metadata"]["name"]}"', dc.clock()))
            await dc.write_status(d, status)
        return rs
    if not create:
        return None
    return await _create_new_rs(dc, d, rses, olds, new_revision)


async def _create_new_rs(dc: DeploymentController, d: Object, rses: list[Object],
                         olds: list[Object], new_revision: int) -> Object | None:
    template = deep_copy(d["spec"].get("template") or {})
    collisions = (d.get("status") or {}).get("collisionCount")
    pod_hash = util.compute_hash(template, collisions)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[util.HASH_LABEL] = pod_hash
    template.setdefault("metadata", {})["labels"] = labels
    selector = deep_copy(d["spec"].get("selector") or {})
    selector.setdefault("matchLabels", {})[util.HASH_LABEL] = pod_hash
    name = f"{d['metadata']['name']}-{pod_hash}"
    namespace = d["metadata"]["namespace"]
    rs: Object = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                     "ownerReferences": [controller_ref(d, dc.api_version, dc.kind)]},
        "spec": {"replicas": 0, "minReadySeconds": int(d["spec"].get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }
    count = util.new_rs_new_replicas(d, [*olds, rs], rs)
    rs["spec"]["replicas"] = count
    util.set_new_rs_annotations(d, rs, new_revision, exists=False)
    already_exists = False
    try:
        created = await dc.client.create(REPLICASETS, rs, namespace)
    except errors.AlreadyExists:
        already_exists = True
        cached = dc.rses.get(namespace, name)
        if cached is None:
            raise
        ref = controller_of(cached) or {}
        if ref.get("uid") == d["metadata"]["uid"] and util.equal_ignore_hash(
                cached["spec"].get("template") or {}, d["spec"].get("template") or {}):
            created = cached
        else:
            status = deep_copy(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            log.info("deployment %s/%s: hash collision on %s; collisionCount=%d", namespace,
                     d["metadata"]["name"], name, status["collisionCount"])
            await dc.write_status(d, status)
            raise
    except errors.APIError as exc:
        message = f'Failed to create new replica set "{name}": {exc}'
        if progress.has_progress_deadline(d):
            status = deep_copy(d.get("status") or {})
            progress.set_condition(status, progress.new_condition(
                progress.PROGRESSING, "False", progress.FAILED_RS_CREATE, message, dc.clock()))
            await dc.write_status(d, status)
        dc.event(d, WARNING, progress.FAILED_RS_CREATE, message)
        raise
    if not already_exists and count > 0:
        dc.event(d, NORMAL, "ScalingReplicaSet",
                 f"Scaled up replica set {name} from 0 to {count}")
    await dc.set_revision(d, str(new_revision))
    if not already_exists and progress.has_progress_deadline(d):
        status = deep_copy(d.get("status") or {})
        progress.set_condition(status, progress.new_condition(
            progress.PROGRESSING, "True", progress.NEW_RS_CREATED,
            f'Created new replica set "{name}"', dc.clock()))
        await dc.write_status(d, status)
    return created


async def scale_rs(dc: DeploymentController, rs: Object, size: int, d: Object,
                   operation: str) -> tuple[bool, Object]:
    """Set the RS's size and replicas annotations; (whether the size changed, the RS)."""
    desired, surge = util.replicas(d), util.max_surge(d)
    size_changed = util.replicas(rs) != size
    if not size_changed and not util.replicas_annotations_need_update(rs, desired,
                                                                     desired + surge):
        return False, rs
    old_size = util.replicas(rs)
    copy = deep_copy(rs)
    copy["spec"]["replicas"] = size
    util.set_replicas_annotations(copy, desired, desired + surge)
    updated = await dc.update_rs(copy)
    if size_changed:
        dc.event(d, NORMAL, "ScalingReplicaSet",
                 f"Scaled {operation} replica set {rs['metadata']['name']} from {old_size} "
                 f"to {size}")
    return size_changed, updated


async def scale_rs_and_record(dc: DeploymentController, rs: Object, size: int,
                              d: Object) -> tuple[bool, Object]:
    if util.replicas(rs) == size:
        return False, rs
    return await scale_rs(dc, rs, size, d, "up" if util.replicas(rs) < size else "down")


async def scale(dc: DeploymentController, d: Object, new_rs: Object | None,
                olds: list[Object]) -> None:
    """Follow a change of spec.replicas across the new and old ReplicaSets."""
    only = util.find_active_or_latest(new_rs, olds)
    if only is not None:
        if util.replicas(only) != util.replicas(d):
            await scale_rs_and_record(dc, only, util.replicas(d), d)
        return
    if util.is_saturated(d, new_rs):
        for old in util.active(olds):
            await scale_rs_and_record(dc, old, 0, d)
        return
    if not util.is_rolling(d):
        return
    running = util.active([*olds, new_rs])
    allowed = util.replicas(d) + util.max_surge(d) if util.replicas(d) > 0 else 0
    to_add = allowed - util.spec_count(running)
    operation = ""
    if to_add > 0:
        running = _by_size(running, newer_first=True)
        operation = "up"
    elif to_add < 0:
        running = _by_size(running, newer_first=False)
        operation = "down"
    added = 0
    sizes: dict[str, int] = {}
    for rs in running:
        if to_add != 0:
            share = _proportion(rs, d, to_add, added)
            sizes[rs["metadata"]["name"]] = util.replicas(rs) + share
            added += share
        else:
            sizes[rs["metadata"]["name"]] = util.replicas(rs)
    for i, rs in enumerate(running):
        name = rs["metadata"]["name"]
        if i == 0 and to_add != 0:
            sizes[name] = max(sizes[name] + to_add - added, 0)
        await scale_rs(dc, rs, sizes[name], d, operation)


def _by_size(rses: list[Object], *, newer_first: bool) -> list[Object]:
    """Largest first; among equals the newer (scaling up) or the older (down) first."""
    ordered = util.by_creation(rses, newest_first=newer_first)
    return sorted(ordered, key=lambda rs: -util.replicas(rs))


def _proportion(rs: Object, d: Object, to_add: int, added: int) -> int:
    if util.replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _fraction(rs: Object, d: Object) -> int:
    if util.replicas(d) == 0:
        return -util.replicas(rs)
    max_now = util.replicas(d) + util.max_surge(d)
    max_before = util.annotation_int(rs, util.MAX_REPLICAS)
    if not max_before:
        max_before = int((d.get("status") or {}).get("replicas") or 0)
        if max_before == 0:
            return 0
    size = util.replicas(rs) * max_now / max_before
    return _round_half_away(size) - util.replicas(rs)


def _round_half_away(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


async def cleanup(dc: DeploymentController, olds: list[Object], d: Object) -> None:
    """Delete the oldest empty, settled old RSes beyond revisionHistoryLimit."""
    limit = d["spec"].get("revisionHistoryLimit")
    if limit is None:
        return
    alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
    diff = len(alive) - int(limit)
    if diff <= 0:
        return
    for rs in sorted(alive, key=lambda r: (util.revision(r),
                                           r["metadata"].get("creationTimestamp") or ""))[:diff]:
        status = rs.get("status") or {}
        if (int(status.get("replicas") or 0) != 0 or util.replicas(rs) != 0
                or int(rs["metadata"].get("generation") or 0) > int(
                    status.get("observedGeneration") or 0)):
            continue
        log.info("deployment %s/%s: deleting old replica set %s", d["metadata"]["namespace"],
                 d["metadata"]["name"], rs["metadata"]["name"])
        try:
            await dc.client.delete(REPLICASETS, rs["metadata"]["name"],
                                   rs["metadata"]["namespace"])
        except errors.NotFound:
            pass


async def is_scaling_event(dc: DeploymentController, d: Object, rses: list[Object]) -> bool:
    """Whether spec.replicas differs from what an active RS was last sized for."""
    new_rs, olds = await new_and_old_rses(dc, d, rses, create=False)
    if new_rs is None:
        return False
    for rs in util.active([*olds, new_rs]):
        desired = util.annotation_int(rs, util.DESIRED_REPLICAS)
        if desired is not None and desired != util.replicas(d):
            return True
    return False
