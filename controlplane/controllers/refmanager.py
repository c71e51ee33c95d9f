"""Claiming children through ownerReferences (Kubernetes' ControllerRefManager).

A controller owns what carries its controller ownerReference (matched by uid). While claiming:
an owned child its selector no longer matches is released (the reference is removed), an orphan
it matches is adopted (the reference is added), and children of other controllers are left
alone. Both writes are strategic merge patches of `metadata.ownerReferences` (merged by uid)
carrying the child's uid, so they never touch a recreated namesake. Before the first adoption the
owner is re-read from the API: an owner being deleted must not adopt (its cache may be stale).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from controlplane.api import errors
from controlplane.api.meta import controller_of
from controlplane.api.selectors import LabelSelector
from controlplane.client.rest import Resource
from controlplane.controllers.base import Client, SyncError

log = logging.getLogger(__name__)
Object = dict[str, Any]
SMP = "application/strategic-merge-patch+json"


class ClaimError(SyncError):
    """Some children could not be adopted or released; the message lists them."""


async def claim(client: Client, resource: Resource, *, owner: Object, owner_ref: Object,
                selector: LabelSelector, children: Iterable[Object],
                can_adopt: Callable[[], Awaitable[None]]) -> list[Object]:
    """Return the children `owner` controls after adopting and releasing; raise ClaimError
    after trying every child when some writes failed (the caller retries the sync)."""
    uid = owner["metadata"]["uid"]
    owner_deleting = bool(owner["metadata"].get("deletionTimestamp"))
    claimed: list[Object] = []
    failures: list[str] = []
    adoption_checked = False
    cannot_adopt = ""  # why the owner may not adopt, once checked
    for child in children:
        m = child["metadata"]
        ref = controller_of(child)
        matches = selector.matches(m.get("labels") or {})
        try:
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(child)
                elif not owner_deleting:
                    await release(client, resource, child, uid)
                continue
            if owner_deleting or not matches or m.get("deletionTimestamp"):
                continue
            if m.get("namespace") != owner["metadata"].get("namespace"):
                continue
            if not adoption_checked:
                adoption_checked = True
                try:
                    await can_adopt()
                except errors.APIError as exc:
                    cannot_adopt = str(exc)
            if cannot_adopt:
                failures.append(f"cannot adopt {m.get('name')}: {cannot_adopt}")
                continue
            await adopt(client, resource, child, owner_ref)
            claimed.append(child)
        except errors.NotFound:
            continue
        except errors.APIError as exc:
            failures.append(f"{m.get('namespace')}/{m.get('name')}: {exc}")
    if failures:
        raise ClaimError("; ".join(failures))
    return claimed


async def adopt(client: Client, resource: Resource, child: Object, owner_ref: Object) -> None:
    m = child["metadata"]
    log.info("adopting %s %s/%s into %s %s", resource.resource, m.get("namespace"),
             m["name"], owner_ref.get("kind"), owner_ref.get("name"))
    await client.patch(resource, m["name"], {
        "metadata": {"ownerReferences": [owner_ref], "uid": m["uid"]}},
        m.get("namespace", ""), patch_type=SMP)


async def release(client: Client, resource: Resource, child: Object, owner_uid: str) -> None:
    m = child["metadata"]
    log.info("releasing %s %s/%s from owner %s", resource.resource, m.get("namespace"),
             m["name"], owner_uid)
    try:
        await client.patch(resource, m["name"], {
            "metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
                         "uid": m["uid"]}}, m.get("namespace", ""), patch_type=SMP)
    except errors.Invalid:
        pass  # the child is gone or was recreated under the same name


def recheck_owner(client: Client, resource: Resource, owner: Object) -> Callable[
        [], Awaitable[None]]:
    """A can_adopt check: the live owner has the same uid and is not being deleted."""
    m = owner["metadata"]

    async def check() -> None:
        fresh = await client.get(resource, m["name"], m.get("namespace", ""))
        fm = fresh["metadata"]
        if fm.get("uid") != m["uid"]:
            raise errors.Conflict(f"original {resource.resource} {m.get('namespace')}/"
                                  f"{m['name']} is gone: got uid {fm.get('uid')}, wanted "
                                  f"{m['uid']}")
        if fm.get("deletionTimestamp"):
            raise errors.Conflict(f"{m.get('namespace')}/{m['name']} has just been deleted at "
                                  f"{fm['deletionTimestamp']}")
    return check
