"""The ownership graph (Kubernetes' GraphBuilder): one node per uid, linked owner -> dependents.

The informers' events are applied here synchronously (no I/O); each application returns the
work it implies, as (DELETE or ORPHAN, uid) items for the collector's queue:
- a dependent naming an owner uid the graph has not seen creates a *virtual* owner node (its
  identity taken from the reference) and asks to verify it (DELETE: the collector GETs it); a
  dependent naming an owner that is deleting dependents, or naming an observed owner by the
  wrong coordinates, asks DELETE for itself;
- an object whose deletion starts with the `orphan` finalizer asks for ORPHAN; one whose deletion
  starts with `foregroundDeletion` becomes "deleting dependents" and asks DELETE for each of its
  dependents and for itself (to remove the finalizer once no blocking dependent is left);
- an ownerReference that stops blocking (removed, or blockOwnerDeletion turned false) asks DELETE
  for that owner, which may be waiting on it;
- a removed node asks DELETE for its dependents (their owner may be gone) and for any owner that
  is deleting dependents.
Nodes are owned by the collector's event loop; the graph is never touched from another thread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

Object = dict[str, Any]
Work = tuple[str, str]  # (DELETE | ORPHAN, uid)
DELETE, ORPHAN = "delete", "orphan"
FOREGROUND = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"


@dataclass(frozen=True)
class Identity:
    """Where an object lives: what a DELETE or GET needs, and its uid."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where} ({self.api_version}, uid {self.uid})"


def ref_identity(ref: Object, namespace: str) -> Identity:
    """The identity an ownerReference names, in its dependent's namespace."""
    return Identity(str(ref.get("apiVersion", "")), str(ref.get("kind", "")), namespace,
                    str(ref.get("name", "")), str(ref.get("uid", "")))


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def refers_as(ref: Object, identity: Identity) -> bool:
    """Whether `ref` names `identity` by the same group, kind, name and uid."""
    return (ref.get("uid") == identity.uid and ref.get("kind") == identity.kind
            and ref.get("name") == identity.name
            and _group(str(ref.get("apiVersion", ""))) == _group(identity.api_version))


def waiting_for(obj: Object | None, finalizer: str) -> bool:
    """Being deleted and held by `finalizer`."""
    m = (obj or {}).get("metadata") or {}
    return bool(m.get("deletionTimestamp")) and finalizer in (m.get("finalizers") or [])


class Node:
    """One object (or, while `virtual`, one only named by ownerReferences)."""

    def __init__(self, identity: Identity, owners: list[Object], *, virtual: bool = False,
                 being_deleted: bool = False, deleting_dependents: bool = False) -> None:
        self.identity = identity
        self.owners = owners  # the ownerReferences last observed
        self.dependents: set[Node] = set()
        self.virtual = virtual
        self.being_deleted = being_deleted
        self.deleting_dependents = deleting_dependents

    def __repr__(self) -> str:
        flags = "".join(f" {f}" for f in ("virtual", "being_deleted", "deleting_dependents")
                        if getattr(self, f))
        return f"<Node {self.identity}{flags} dependents={len(self.dependents)}>"

    @property
    def uid(self) -> str:
        return self.identity.uid

    def owner_ref(self, uid: str) -> Object | None:
        return next((r for r in self.owners if r.get("uid") == uid), None)

    def blocking_dependents(self) -> list[Node]:
        """Dependents whose reference to this node has blockOwnerDeletion=true."""
        return [d for d in self.dependents
                if (d.owner_ref(self.uid) or {}).get("blockOwnerDeletion") is True]


class Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def __repr__(self) -> str:
        virtual = sum(1 for n in self.nodes.values() if n.virtual)
        return f"<Graph nodes={len(self.nodes)} virtual={virtual}>"

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def observe(self, identity: Identity, obj: Object, old: Object | None = None) -> list[Work]:
        """An object was added or updated (`old`: the previous state the informer held)."""
        m = obj.get("metadata") or {}
        refs = [dict(r) for r in m.get("ownerReferences") or [] if r.get("uid")]
        being_deleted = bool(m.get("deletionTimestamp"))
        work: list[Work] = []
        node = self.nodes.get(identity.uid)
        if node is None:
            node = Node(identity, refs, being_deleted=being_deleted,
                        deleting_dependents=waiting_for(obj, FOREGROUND))
            self.nodes[identity.uid] = node
            work += self._link(node, refs)
            return work + self._transitions(old, node, obj)
        if node.virtual:
            node.virtual = False
            if node.identity != identity:  # dependents that named it wrongly: let them check
                work += [(DELETE, d.uid) for d in node.dependents
                         if not refers_as(d.owner_ref(identity.uid) or {}, identity)]
                node.identity = identity
        added, removed, changed = _diff(node.owners, refs)
        if added or removed or changed:
            work += self._unblocked(removed, changed)
            node.owners = refs
            self._unlink(node, removed)
            work += self._link(node, added)
        if being_deleted:
            node.being_deleted = True
        return work + self._transitions(old, node, obj)

    def remove(self, uid: str) -> list[Work]:
        """The object is gone (observed, or verified with a GET)."""
        node = self.nodes.pop(uid, None)
        if node is None:
            return []
        self._unlink(node, node.owners)
        work = [(DELETE, d.uid) for d in node.dependents]
        for ref in node.owners:
            owner = self.nodes.get(str(ref["uid"]))
            if owner is not None and owner.deleting_dependents:
                work.append((DELETE, owner.uid))
        return work

    def reidentify(self, node: Node, identity: Identity) -> None:
        """A virtual node turned out absent under one identity; try another."""
        node.identity = replace(identity, uid=node.uid)

    def _link(self, node: Node, refs: list[Object]) -> list[Work]:
        work: list[Work] = []
        for ref in refs:
            uid = str(ref["uid"])
            owner = self.nodes.get(uid)
            if owner is None:
                owner = Node(ref_identity(ref, node.identity.namespace), [], virtual=True)
                self.nodes[uid] = owner
                work.append((DELETE, uid))
            elif owner.deleting_dependents or not owner.virtual and not (
                    refers_as(ref, owner.identity)
                    and owner.identity.namespace in ("", node.identity.namespace)):
                work.append((DELETE, node.uid))  # its owner waits for it, or a bad reference
            owner.dependents.add(node)
        return work

    def _unlink(self, node: Node, refs: list[Object]) -> None:
        for ref in refs:
            owner = self.nodes.get(str(ref["uid"]))
            if owner is not None:
                owner.dependents.discard(node)

    def _unblocked(self, removed: list[Object], changed: list[tuple[Object, Object]]
                   ) -> list[Work]:
        uids = [str(r["uid"]) for r in removed if r.get("blockOwnerDeletion") is True]
        uids += [str(new["uid"]) for old, new in changed
                 if old.get("blockOwnerDeletion") is True and new.get("blockOwnerDeletion")
                 is not True]
        return [(DELETE, uid) for uid in uids if uid in self.nodes]

    def _transitions(self, old: Object | None, node: Node, obj: Object) -> list[Work]:
        if waiting_for(obj, ORPHAN_FINALIZER) and not waiting_for(old, ORPHAN_FINALIZER):
            return [(ORPHAN, node.uid)]
        if waiting_for(obj, FOREGROUND) and not waiting_for(old, FOREGROUND):
            node.deleting_dependents = True
            return [(DELETE, d.uid) for d in node.dependents] + [(DELETE, node.uid)]
        return []


def _diff(old: list[Object], new: list[Object]
          ) -> tuple[list[Object], list[Object], list[tuple[Object, Object]]]:
    """ownerReferences added, removed and changed (same uid, other fields), by uid."""
    before = {str(r["uid"]): r for r in old}
    after = {str(r["uid"]): r for r in new}
    added = [r for uid, r in after.items() if uid not in before]
    removed = [r for uid, r in before.items() if uid not in after]
    changed = [(before[uid], r) for uid, r in after.items()
               if uid in before and before[uid] != r]
    return added, removed, changed
