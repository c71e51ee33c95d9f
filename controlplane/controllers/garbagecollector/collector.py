"""The garbage collector: cascading deletion through ownerReferences, as Kubernetes does it.

The informers of every monitored resource feed the `Graph`; its work items come back as keys
`delete/<uid>` (attemptToDelete) and `orphan/<uid>` (attemptToOrphan) in one queue.

attemptToDelete(node), after a GET of the object itself (absent, or another uid: the node goes,
and its dependents are looked at again; a virtual node is only ever removed this way):
- deleting its dependents (foregroundDeletion): remove the finalizer once no dependent with
  blockOwnerDeletion is left, else look at those dependents again;
- otherwise classify its ownerReferences with a GET of each owner (the informers may lag):
  *dangling* (absent, or there under another uid; remembered in a small cache), *waiting*
  (being deleted in the foreground), or *solid*. With a solid owner, references to dangling and
  waiting owners are removed. With owners waiting and dependents of its own, it is deleted in the
  foreground (unblocking its references first if a dependent is itself deleting dependents, a
  cycle). With no owner left, it is deleted with the propagation its own finalizers ask for
  (orphan, foregroundDeletion), else Background. Deletions carry a uid precondition.
attemptToOrphan(owner): remove the owner's reference from each dependent, then its `orphan`
finalizer. Finalizers are removed with `$deleteFromPrimitiveList`, references with `$patch:
delete` by uid (strategic merge patches carrying the object's uid, as Kubernetes sends them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from functools import partial
from typing import Any

from controlplane.api import errors
from controlplane.client.events import WARNING
from controlplane.controllers.base import Controller, ControllerContext, SyncError
from controlplane.controllers.garbagecollector.graph import (
    DELETE,
    FOREGROUND,
    ORPHAN,
    ORPHAN_FINALIZER,
    Graph,
    Identity,
    Node,
    Work,
    ref_identity,
    refers_as,
    waiting_for,
)
from controlplane.controllers.garbagecollector.resources import MONITORED, Kind, RESTMapper

log = logging.getLogger(__name__)
Object = dict[str, Any]
SMP = "application/strategic-merge-patch+json"
ABSENT_CACHE_SIZE = 500  # Kubernetes' absentOwnerCache size
AbsentKey = tuple[str, str, str, str, str]  # uid, group, kind, namespace, name


class NotObserved(SyncError):
    """A virtual node exists in the API but no informer has shown it yet: look again later."""


class InvalidReference(Exception):
    """A cluster-scoped object names a namespaced owner: retrying cannot help."""

    def __init__(self, item: Identity, ref: Object) -> None:
        self.item = item
        super().__init__(f"ownerRef [{ref.get('apiVersion')}/{ref.get('kind')}, namespace: "
                         f"{item.namespace}, name: {ref.get('name')}, uid: {ref.get('uid')}] "
                         f"does not exist in namespace \"\"")


class GarbageCollector(Controller):
    name = "garbagecollector"
    component = "garbage-collector-controller"

    def __init__(self, ctx: ControllerContext, monitored: tuple[Kind, ...] = MONITORED) -> None:
        super().__init__(ctx)
        self.graph = Graph()
        self.mapper = RESTMapper(ctx.client, monitored)
        self._absent: OrderedDict[AbsentKey, None] = OrderedDict()
        for kind in monitored:
            ctx.informers.informer(kind.resource).add_handlers(
                on_add=partial(self.observe, kind),
                on_update=partial(self._observe_update, kind),
                on_delete=partial(self.observe_delete, kind))

    # -- handlers (quick, no I/O) ----------------------------------------------------------------

    def observe(self, kind: Kind, obj: Object, old: Object | None = None) -> None:
        self._enqueue(self.graph.observe(identity_of(kind, obj), obj, old))

    def _observe_update(self, kind: Kind, old: Object, new: Object) -> None:
        self.observe(kind, new, old)

    def observe_delete(self, kind: Kind, obj: Object) -> None:
        identity = identity_of(kind, obj)
        node = self.graph.get(identity.uid)
        if node is not None and node.dependents:
            self._remember_absent(identity)
        self._enqueue(self.graph.remove(identity.uid))

    def _enqueue(self, work: list[Work]) -> None:
        for verb, uid in work:
            self.queue.add(f"{verb}/{uid}")

    # -- workers ---------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        verb, _, uid = key.partition("/")
        node = self.graph.get(uid)
        if node is None:
            return
        try:
            if verb == ORPHAN:
                await self.attempt_to_orphan(node)
            else:
                await self.attempt_to_delete(node)
        except InvalidReference as exc:  # an event says why; only a new version can fix it
            log.warning("garbage collector: %s: %s", exc.item, exc)
            i = exc.item
            self.recorder.event({"apiVersion": i.api_version, "kind": i.kind, "metadata": {
                "name": i.name, "namespace": i.namespace, "uid": i.uid}}, WARNING,
                "OwnerRefInvalidNamespace", str(exc))

    async def attempt_to_delete(self, node: Node) -> None:
        if node.being_deleted and not node.deleting_dependents:
            return  # it goes on its own; its dependents are looked at when it is gone
        was_virtual = node.virtual
        kind = await self.mapper.kind_for(node.identity.api_version, node.identity.kind)
        latest = await self._get(kind, node.identity)
        if latest is None or latest["metadata"].get("uid") != node.uid:
            self._verified_absent(node, was_virtual)
            return
        if latest["metadata"].get("deletionTimestamp") and not node.deleting_dependents:
            if node.virtual:
                raise NotObserved(f"{node.identity} is being deleted; no informer showed it")
            return  # being deleted already; the informer has yet to say so
        if node.deleting_dependents:
            await self._delete_dependents_first(node, kind, latest)
            return
        refs = list(latest["metadata"].get("ownerReferences") or [])
        if refs:
            await self._collect(node, kind, latest, refs)
        if node.virtual:
            raise NotObserved(f"{node.identity} exists but no informer has shown it yet")

    async def _collect(self, node: Node, kind: Kind, latest: Object, refs: list[Object]) -> None:
        solid, dangling, waiting = await self._classify(node, refs)
        ident = node.identity
        if solid:
            if dangling or waiting:
                log.info("garbage collector: removing references of %s to %s", ident,
                         ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in dangling + waiting))
                await self._patch(kind, latest, [{"$patch": "delete", "uid": r["uid"]}
                                                 for r in dangling + waiting])
            return
        if waiting and node.dependents:
            if any(d.deleting_dependents for d in node.dependents):
                unblocked = [dict(r, blockOwnerDeletion=False) for r in refs
                             if r.get("blockOwnerDeletion") is True]
                if unblocked:  # a cycle: do not let our owners wait for us
                    await self._patch(kind, latest, unblocked)
            await self._delete(kind, ident, "Foreground")
            return
        finalizers = latest["metadata"].get("finalizers") or []
        policy = ("Orphan" if ORPHAN_FINALIZER in finalizers
                  else "Foreground" if FOREGROUND in finalizers else "Background")
        await self._delete(kind, ident, policy)

    async def _classify(self, node: Node, refs: list[Object]
                        ) -> tuple[list[Object], list[Object], list[Object]]:
        solid: list[Object] = []
        dangling: list[Object] = []
        waiting: list[Object] = []
        for ref in refs:
            owner = await self._owner(ref, node.identity)
            if owner is None:
                dangling.append(ref)
            elif waiting_for(owner, FOREGROUND):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _owner(self, ref: Object, item: Identity) -> Object | None:
        """The owner `ref` names, read live; None when it is absent (dangling)."""
        wanted = ref_identity(ref, item.namespace)
        kind = await self.mapper.kind_for(wanted.api_version, wanted.kind)
        if kind.namespaced and not item.namespace:
            raise InvalidReference(item, ref)
        if self._is_absent(wanted) or self._is_absent(wanted, namespace=""):
            return None
        where = item.namespace if kind.namespaced else ""
        owner = await self._get(kind, wanted)
        if owner is None or owner["metadata"].get("uid") != wanted.uid:
            self._remember_absent(wanted, namespace=where)
            return None
        return owner

    async def _delete_dependents_first(self, node: Node, kind: Kind, latest: Object) -> None:
        blocking = node.blocking_dependents()
        if not blocking:
            log.info("garbage collector: dependents of %s are gone; removing %s", node.identity,
                     FOREGROUND)
            await self._remove_finalizer(kind, latest, FOREGROUND)
            return
        for dependent in blocking:
            if not dependent.deleting_dependents:
                self.queue.add(f"{DELETE}/{dependent.uid}")

    def _verified_absent(self, node: Node, was_virtual: bool) -> None:
        """A GET found nothing (or another uid) where `node` should be."""
        current = self.graph.get(node.uid)
        if current is not node or (was_virtual and not node.virtual):
            return  # observed meanwhile: the informer's events take over
        identity = node.identity
        self._remember_absent(identity)
        if node.virtual:
            others = [d for d in node.dependents
                      if not refers_as(d.owner_ref(node.uid) or {}, identity)]
            if others:  # dependents disagree on where the owner is: try their coordinates
                for dependent in node.dependents - set(others):
                    self.queue.add(f"{DELETE}/{dependent.uid}")
                other = others[0]
                self.graph.reidentify(node, ref_identity(other.owner_ref(node.uid) or {},
                                                         other.identity.namespace))
                self.queue.add_rate_limited(f"{DELETE}/{node.uid}")
                return
        log.debug("garbage collector: %s is absent", identity)
        self._enqueue(self.graph.remove(node.uid))

    async def attempt_to_orphan(self, owner: Node) -> None:
        dependents = list(owner.dependents)
        results = await asyncio.gather(*(self._orphan(d, owner.uid) for d in dependents),
                                       return_exceptions=True)
        failures = [f"orphaning {d.identity} failed: {r}" for d, r in zip(
            dependents, results, strict=True) if isinstance(r, BaseException)]
        if failures:
            raise SyncError("; ".join(failures))
        kind = await self.mapper.kind_for(owner.identity.api_version, owner.identity.kind)
        latest = await self._get(kind, owner.identity)
        if latest is not None and latest["metadata"].get("uid") == owner.uid:
            log.info("garbage collector: orphaned %d dependents of %s", len(dependents),
                     owner.identity)
            await self._remove_finalizer(kind, latest, ORPHAN_FINALIZER)

    async def _orphan(self, dependent: Node, owner_uid: str) -> None:
        kind = await self.mapper.kind_for(dependent.identity.api_version,
                                          dependent.identity.kind)
        await self._patch(kind, _stub(dependent.identity),
                          [{"$patch": "delete", "uid": owner_uid}])

    # -- API calls -------------------------------------------------------------------------------

    async def _get(self, kind: Kind, ident: Identity) -> Object | None:
        if kind.namespaced and not ident.namespace:
            return None  # named by a cluster-scoped dependent: nowhere to look
        try:
            return await self.client.get(kind.resource, ident.name,
                                         ident.namespace if kind.namespaced else "")
        except errors.NotFound:
            return None

    async def _delete(self, kind: Kind, ident: Identity, policy: str) -> None:
        log.info("garbage collector: deleting %s, propagationPolicy=%s", ident, policy)
        try:
            await self.client.delete(kind.resource, ident.name,
                                     ident.namespace if kind.namespaced else "",
                                     propagation=policy, preconditions={"uid": ident.uid})
        except (errors.NotFound, errors.Conflict):
            pass  # gone already, or a namesake with another uid: not ours to delete

    async def _patch(self, kind: Kind, obj: Object, refs: list[Object]) -> None:
        m = obj["metadata"]
        try:
            await self.client.patch(kind.resource, m["name"], {
                "metadata": {"ownerReferences": refs, "uid": m["uid"]}},
                m.get("namespace", "") if kind.namespaced else "", patch_type=SMP)
        except errors.NotFound:
            pass

    async def _remove_finalizer(self, kind: Kind, obj: Object, finalizer: str) -> None:
        m = obj["metadata"]
        if finalizer not in (m.get("finalizers") or []):
            return
        try:
            await self.client.patch(kind.resource, m["name"], {"metadata": {
                "$deleteFromPrimitiveList/finalizers": [finalizer], "uid": m["uid"]}},
                m.get("namespace", "") if kind.namespaced else "", patch_type=SMP)
        except errors.NotFound:
            pass

    # -- the absent owner cache ------------------------------------------------------------------

    def _remember_absent(self, ident: Identity, *, namespace: str | None = None) -> None:
        key = _absent_key(ident, namespace)
        self._absent[key] = None
        self._absent.move_to_end(key)
        while len(self._absent) > ABSENT_CACHE_SIZE:
            self._absent.popitem(last=False)

    def _is_absent(self, ident: Identity, *, namespace: str | None = None) -> bool:
        return _absent_key(ident, namespace) in self._absent


def _absent_key(ident: Identity, namespace: str | None) -> AbsentKey:
    group = ident.api_version.rpartition("/")[0]
    where = ident.namespace if namespace is None else namespace
    return (ident.uid, group, ident.kind, where, ident.name)


def _stub(ident: Identity) -> Object:
    return {"metadata": {"name": ident.name, "namespace": ident.namespace, "uid": ident.uid}}


def identity_of(kind: Kind, obj: Object) -> Identity:
    m = obj.get("metadata") or {}
    return Identity(kind.api_version, kind.kind, str(m.get("namespace") or ""),
                    str(m.get("name", "")), str(m.get("uid", "")))
