"""A DaemonSet's ControllerRevisions: one snapshot of its pod template per revision.

Each revision's `data` is the strategic merge patch that restores the template
(`{"spec": {"template": {..., "$patch": "replace"}}}`), which is what `kubectl rollout undo`
sends back to the DaemonSet. The revision whose data matches the current template is the
current one (created on demand as `<name>-<hash>`, labelled with the template's labels and
controller-revision-hash, numbered one above the highest old one; a rollback renumbers it).
A name taken by a different template is a hash collision: status.collisionCount goes up and
the next sync hashes again. `cleanup` keeps revisionHistoryLimit old revisions, never one a
pod still runs. The pure parts are functions; the writes take the controller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from controlplane.api import errors
from controlplane.client.rest import DAEMONSETS, Resource
from controlplane.controllers.base import controller_ref, deep_copy
from controlplane.controllers.daemonset import util
from controlplane.controllers.deployment.util import compute_hash

if TYPE_CHECKING:
    from controlplane.controllers.daemonset.controller import DaemonSetController

log = logging.getLogger(__name__)
Object = dict[str, Any]
CONTROLLERREVISIONS = Resource("apps", "v1", "controllerrevisions")


def patch_of(ds: Object) -> Object:
    """The revision data for the DaemonSet's current template."""
    template = deep_copy((ds.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def matches(ds: Object, revision: Object) -> bool:
    return bool(revision.get("data") == patch_of(ds))


def revision_number(revision: Object) -> int:
    try:
        return int(revision.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


def template_hash(ds: Object) -> str:
    collisions = (ds.get("status") or {}).get("collisionCount")
    return compute_hash((ds.get("spec") or {}).get("template") or {}, collisions)


def snapshot(ds: Object, number: int, api_version: str, kind: str) -> Object:
    """The ControllerRevision recording the DaemonSet's current template as `number`."""
    hash_ = template_hash(ds)
    m = ds["metadata"]
    labels = dict((((ds.get("spec") or {}).get("template") or {}).get("metadata") or {})
                  .get("labels") or {})
    labels[util.HASH_LABEL] = hash_
    meta: Object = {"name": f"{m['name']}-{hash_}", "namespace": m["namespace"],
                    "labels": labels, "ownerReferences": [controller_ref(ds, api_version, kind)]}
    if m.get("annotations"):
        meta["annotations"] = dict(m["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": meta,
            "data": patch_of(ds), "revision": number}


def split(ds: Object, revisions: list[Object]) -> tuple[list[Object], list[Object]]:
    """(revisions matching the current template, the others)."""
    current = [r for r in revisions if matches(ds, r)]
    return current, [r for r in revisions if not matches(ds, r)]


def to_clean(olds: list[Object], limit: int, live_hashes: set[str]) -> list[Object]:
    """The oldest revisions beyond `limit` that no live pod runs."""
    excess = len(olds) - limit
    out: list[Object] = []
    for revision in sorted(olds, key=revision_number):
        if excess <= 0:
            break
        if (revision["metadata"].get("labels") or {}).get(util.HASH_LABEL) in live_hashes:
            continue
        out.append(revision)
        excess -= 1
    return out


# -- writes -----------------------------------------------------------------------------------


async def construct(dc: DaemonSetController, ds: Object, revisions: list[Object]
                    ) -> tuple[Object, list[Object]]:
    """(the current revision, created or renumbered as needed, the old revisions)."""
    namespace = ds["metadata"]["namespace"]
    labelled = []
    for revision in revisions:
        if util.HASH_LABEL not in (revision["metadata"].get("labels") or {}):
            revision = deep_copy(revision)
            revision["metadata"].setdefault("labels", {})[util.HASH_LABEL] = (
                revision["metadata"]["name"])
            revision = await dc.client.update(CONTROLLERREVISIONS, revision, namespace)
        labelled.append(revision)
    current, olds = split(ds, labelled)
    number = max((revision_number(r) for r in olds), default=0) + 1
    if not current:
        return await _create(dc, ds, number), olds
    keep = max(current, key=revision_number)
    for duplicate in current:
        if duplicate is not keep:
            await _delete(dc, duplicate)
    if revision_number(keep) < number:
        keep = deep_copy(keep)
        keep["revision"] = number
        keep = await dc.client.update(CONTROLLERREVISIONS, keep, namespace)
    return keep, olds


async def _create(dc: DaemonSetController, ds: Object, number: int) -> Object:
    revision = snapshot(ds, number, dc.api_version, dc.kind)
    namespace, name = ds["metadata"]["namespace"], revision["metadata"]["name"]
    try:
        created: Object = await dc.client.create(CONTROLLERREVISIONS, revision, namespace)
        return created
    except errors.AlreadyExists:
        existing = await dc.client.get(CONTROLLERREVISIONS, name, namespace)
        if matches(ds, existing):
            return existing
    fresh = await dc.client.get(DAEMONSETS, ds["metadata"]["name"], namespace)
    seen = (ds.get("status") or {}).get("collisionCount")
    count = (fresh.get("status") or {}).get("collisionCount")
    if count != seen:
        raise errors.Conflict(f"found a stale collision count ({seen}, expected {count}) of "
                              f"DaemonSet {ds['metadata']['name']!r} while processing; will "
                              "retry until it is updated")
    log.info("daemonset %s/%s: hash collision on %s, bumping collisionCount", namespace,
             ds["metadata"]["name"], name)
    await dc.client.patch(DAEMONSETS, ds["metadata"]["name"],
                          {"status": {"collisionCount": int(count or 0) + 1}}, namespace,
                          subresource="status")
    raise errors.AlreadyExists(f'controllerrevisions.apps "{name}" already exists')


async def _delete(dc: DaemonSetController, revision: Object) -> None:
    m = revision["metadata"]
    try:
        await dc.client.delete(CONTROLLERREVISIONS, m["name"], m["namespace"])
    except errors.NotFound:
        pass


async def cleanup(dc: DaemonSetController, ds: Object, olds: list[Object],
                  pods: list[Object]) -> None:
    """Delete old revisions beyond revisionHistoryLimit (default 10) no pod runs."""
    limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
    limit = 10 if limit is None else int(limit)
    live = {str((p["metadata"].get("labels") or {}).get(util.HASH_LABEL)) for p in pods}
    for revision in to_clean(olds, limit, live):
        await _delete(dc, revision)
