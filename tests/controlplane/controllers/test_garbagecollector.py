"""Garbage collector: given these caches (the graph the informers built), expect these API calls.

`objects` in the fake API are what a GET sees; the informer caches are what the graph was built
from (`observe`). They differ on purpose where the informers lag. `drain` runs the queue until it
is empty, as the workers would (retries with back-off land on timers and are not run).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from controlplane.client.rest import CONFIGMAPS, DEPLOYMENTS, NODES, PODS, REPLICASETS, Resource
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.garbagecollector.graph import Graph, Identity
from controlplane.controllers.garbagecollector.resources import MONITORED
from controlplane.controllers.testing import FakeClient, Harness, build, harness, stamp

Object = dict[str, Any]
KINDS = {k.resource: k for k in MONITORED}
SMP = "application/strategic-merge-patch+json"


@dataclass
class GCClient(FakeClient):
    """Records each DELETE's propagationPolicy and preconditions; as the apiserver, marks the
    object (deletionTimestamp, finalizer) for Foreground and Orphan instead of removing it."""

    deletes: list[tuple[str, str, str, Any]] = field(default_factory=list)

    async def delete(self, res: Resource, name: str, namespace: str = "", *,
                     grace_period: int | None = None, propagation: str = "",
                     preconditions: Object | None = None) -> Object:
        self.deletes.append((res.resource, name, propagation, preconditions))
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation)
        current = self.objects.get((res.resource, namespace, name))
        if finalizer is None or current is None:
            return await super().delete(res, name, namespace)
        self._record("delete", res, namespace, name)
        current = self.objects[(res.resource, namespace, name)] = copy.deepcopy(current)
        m = current["metadata"]
        m.setdefault("deletionTimestamp", stamp())
        if finalizer not in m.setdefault("finalizers", []):
            m["finalizers"].append(finalizer)
        return current


def obj(res: Resource, name: str, *owners: Object, namespace: str = "default",
        block: bool = True, finalizers: tuple[str, ...] = (), deleting: bool = False,
        uid: str = "") -> Object:
    kind = KINDS[res]
    meta: Object = {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": "1"}
    if kind.namespaced:
        meta["namespace"] = namespace
    if owners:
        meta["ownerReferences"] = [ref(o, block=block) for o in owners]
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = stamp()
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta}


def ref(owner: Object, *, block: bool = True) -> Object:
    r: Object = {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                 "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
    if block:
        r["blockOwnerDeletion"] = True
    return r


def setup(*cached: tuple[Resource, Object], api: tuple[tuple[Resource, Object], ...] = ()
          ) -> tuple[Harness, GCClient, GarbageCollector]:
    """Cached objects are in the informers (and the API); `api` objects only in the API."""
    h = harness()
    client = GCClient()
    h.client = client
    gc: GarbageCollector = build(h, GarbageCollector)
    for res, o in cached:
        h.cache(res, o)
        gc.observe(KINDS[res], o)
    for res, o in api:
        client.seed(res, o)
    return h, client, gc


async def drain(gc: GarbageCollector) -> None:
    while len(gc.queue):
        key = await gc.queue.get()
        await gc.process(key)


def gone(h: Harness, gc: GarbageCollector, res: Resource, o: Object) -> None:
    """The object is deleted: from the API, and the informer says so."""
    m = o["metadata"]
    h.client.objects.pop((res.resource, m.get("namespace", ""), m["name"]), None)
    gc.observe_delete(KINDS[res], o)


def update(h: Harness, gc: GarbageCollector, res: Resource, old: Object, new: Object) -> None:
    h.client.seed(res, new)
    gc.observe(KINDS[res], new, old)


DEPLOY = obj(DEPLOYMENTS, "web")
RS = obj(REPLICASETS, "web-1", DEPLOY)
POD = obj(PODS, "web-1-a", RS)


async def test_dependents_of_an_absent_owner_are_deleted_in_the_background() -> None:
    h, client, gc = setup((REPLICASETS, RS), (PODS, POD))  # the deployment never existed
    await drain(gc)
    assert client.deletes == [("replicasets", "web-1", "Background", {"uid": "uid-web-1"})]
    gone(h, gc, REPLICASETS, RS)
    await drain(gc)
    assert client.deletes[1:] == [("pods", "web-1-a", "Background", {"uid": "uid-web-1-a"})]
    assert gc.graph.get("uid-web") is None and gc.graph.get("uid-web-1") is None


async def test_an_owner_there_under_another_uid_does_not_count() -> None:
    namesake = obj(DEPLOYMENTS, "web", uid="uid-web-again")
    h, client, gc = setup((REPLICASETS, RS), api=((DEPLOYMENTS, namesake),))
    await drain(gc)
    assert client.deletes == [("replicasets", "web-1", "Background", {"uid": "uid-web-1"})]


async def test_owned_objects_with_their_owners_present_are_left_alone() -> None:
    h, client, gc = setup((DEPLOYMENTS, DEPLOY), (REPLICASETS, RS), (PODS, POD))
    await drain(gc)
    assert client.actions() == []


async def test_deleting_an_owner_deletes_its_dependents() -> None:
    h, client, gc = setup((DEPLOYMENTS, DEPLOY), (REPLICASETS, RS), (PODS, POD))
    gone(h, gc, DEPLOYMENTS, DEPLOY)
    await drain(gc)
    assert [d[:3] for d in client.deletes] == [("replicasets", "web-1", "Background")]
    # the owner is remembered absent: a second dependent needs no GET of it
    other = obj(REPLICASETS, "web-2", DEPLOY)
    h.cache(REPLICASETS, other)
    gc.observe(KINDS[REPLICASETS], other)
    gc.queue.add("delete/uid-web-2")
    client.calls.clear()
    await drain(gc)
    # the new virtual owner is verified once (as Kubernetes does); the RS needs no second GET
    assert client.actions(reads=True) == [("get", "deployments", "web"),
                                          ("get", "replicasets", "web-2"),
                                          ("delete", "replicasets", "web-2")]


async def test_a_virtual_owner_that_exists_is_not_collected() -> None:
    # the informer of deployments lags: only a GET shows the owner
    h, client, gc = setup((REPLICASETS, RS), api=((DEPLOYMENTS, DEPLOY),))
    node = gc.graph.get("uid-web")
    assert node is not None and node.virtual
    await drain(gc)
    assert client.actions() == []
    assert gc.queue.failures("delete/uid-web") == 1  # looked at again until observed
    gc.observe(KINDS[DEPLOYMENTS], DEPLOY)
    assert not node.virtual and node.dependents == {gc.graph.get("uid-web-1")}


async def test_only_dangling_references_are_removed_while_another_owner_is_solid() -> None:
    other = obj(CONFIGMAPS, "keeper")
    both = obj(REPLICASETS, "web-1", DEPLOY, other)
    h, client, gc = setup((CONFIGMAPS, other), (REPLICASETS, both))
    await drain(gc)
    assert client.deletes == []
    assert client.actions() == [("patch", "replicasets", "web-1")]
    assert client.calls[-1].patch_type == SMP
    assert client.bodies("patch", "replicasets") == [{"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": "uid-web"}], "uid": "uid-web-1"}}]


async def test_foreground_deletes_blocking_dependents_first_then_the_owner() -> None:
    h, client, gc = setup((DEPLOYMENTS, DEPLOY), (REPLICASETS, RS), (PODS, POD))
    # kubectl delete --cascade=foreground: the apiserver marks the deployment
    deploy = obj(DEPLOYMENTS, "web", finalizers=("foregroundDeletion",), deleting=True)
    update(h, gc, DEPLOYMENTS, DEPLOY, deploy)
    await drain(gc)
    # the RS has dependents of its own: it is deleted in the foreground too
    assert client.deletes == [("replicasets", "web-1", "Foreground", {"uid": "uid-web-1"})]
    rs = obj(REPLICASETS, "web-1", DEPLOY, finalizers=("foregroundDeletion",), deleting=True)
    update(h, gc, REPLICASETS, RS, rs)
    await drain(gc)
    assert client.deletes[1:] == [("pods", "web-1-a", "Background", {"uid": "uid-web-1-a"})]
    assert not client.bodies("patch", "deployments")  # still waiting for the RS
    gone(h, gc, PODS, POD)
    await drain(gc)
    assert client.bodies("patch", "replicasets") == [{"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["foregroundDeletion"], "uid": "uid-web-1"}}]
    assert not client.bodies("patch", "deployments")
    gone(h, gc, REPLICASETS, rs)
    await drain(gc)
    assert client.bodies("patch", "deployments") == [{"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["foregroundDeletion"], "uid": "uid-web"}}]


async def test_foreground_owner_with_only_non_blocking_dependents_goes_at_once() -> None:
    loose = obj(REPLICASETS, "web-1", DEPLOY, block=False)
    deploy = obj(DEPLOYMENTS, "web", finalizers=("foregroundDeletion",), deleting=True)
    h, client, gc = setup((DEPLOYMENTS, deploy), (REPLICASETS, loose))
    await drain(gc)
    assert client.bodies("patch", "deployments") == [{"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["foregroundDeletion"], "uid": "uid-web"}}]
    assert [d[:3] for d in client.deletes] == [("replicasets", "web-1", "Background")]
    new = obj(REPLICASETS, "web-2", deploy)  # made meanwhile: its owner is waiting for it
    h.cache(REPLICASETS, new)
    gc.observe(KINDS[REPLICASETS], new)
    await drain(gc)
    assert [d[:3] for d in client.deletes][1:] == [("replicasets", "web-2", "Background")]


async def test_a_dependents_own_finalizers_choose_its_propagation() -> None:
    rs = obj(REPLICASETS, "web-1", DEPLOY, finalizers=("orphan",))
    h, client, gc = setup((REPLICASETS, rs))
    await drain(gc)
    assert [d[:3] for d in client.deletes] == [("replicasets", "web-1", "Orphan")]


async def test_a_cycle_is_unblocked_before_deleting_in_the_foreground() -> None:
    deploy = obj(DEPLOYMENTS, "web", finalizers=("foregroundDeletion",), deleting=True)
    rs = obj(REPLICASETS, "web-1", deploy)
    pod = obj(PODS, "web-1-a", rs, finalizers=("foregroundDeletion",), deleting=True)
    h, client, gc = setup((DEPLOYMENTS, deploy), (REPLICASETS, rs), (PODS, pod))
    gc.queue.add("delete/uid-web-1")
    await drain(gc)
    assert client.bodies("patch", "replicasets")[0] == {"metadata": {
        "ownerReferences": [dict(ref(deploy), blockOwnerDeletion=False)], "uid": "uid-web-1"}}
    assert ("replicasets", "web-1", "Foreground", {"uid": "uid-web-1"}) in client.deletes


async def test_orphan_removes_the_reference_from_dependents_then_the_finalizer() -> None:
    h, client, gc = setup((DEPLOYMENTS, DEPLOY), (REPLICASETS, RS), (PODS, POD))
    deploy = obj(DEPLOYMENTS, "web", finalizers=("orphan",), deleting=True)
    update(h, gc, DEPLOYMENTS, DEPLOY, deploy)
    assert list(gc.queue._queue) == ["orphan/uid-web"]
    await drain(gc)
    assert client.deletes == []
    assert client.actions() == [("patch", "replicasets", "web-1"),
                                ("patch", "deployments", "web")]
    assert client.bodies("patch", "replicasets") == [{"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": "uid-web"}], "uid": "uid-web-1"}}]
    assert client.bodies("patch", "deployments") == [{"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["orphan"], "uid": "uid-web"}}]


async def test_a_cluster_scoped_object_naming_a_namespaced_owner_is_reported_once() -> None:
    node = obj(NODES, "n1", DEPLOY)
    h, client, gc = setup((NODES, node))
    await drain(gc)
    assert client.actions() == [] and gc.queue.failures("delete/uid-n1") == 0
    assert h.events() == [("OwnerRefInvalidNamespace",
                           "ownerRef [apps/v1/Deployment, namespace: , name: web, uid: uid-web] "
                           'does not exist in namespace ""')]


async def test_an_unknown_owner_kind_is_retried_not_collected() -> None:
    cm = obj(CONFIGMAPS, "cm")
    cm["metadata"]["ownerReferences"] = [{"apiVersion": "example.com/v1", "kind": "Widget",
                                          "name": "w", "uid": "uid-w"}]
    h, client, gc = setup((CONFIGMAPS, cm))
    await drain(gc)
    assert client.actions() == []
    assert gc.queue.failures("delete/uid-w") == 1


def test_graph_links_owners_and_queues_owners_a_dependent_stops_blocking() -> None:
    graph = Graph()
    rs_id = Identity("apps/v1", "ReplicaSet", "default", "web-1", "uid-web-1")
    deploy_id = Identity("apps/v1", "Deployment", "default", "web", "uid-web")
    assert graph.observe(rs_id, RS) == [("delete", "uid-web")]  # a virtual owner to verify
    deploy = obj(DEPLOYMENTS, "web", finalizers=("foregroundDeletion",), deleting=True)
    assert graph.observe(deploy_id, deploy) == [("delete", "uid-web-1"), ("delete", "uid-web")]
    owner = graph.get("uid-web")
    assert owner is not None and owner.deleting_dependents and not owner.virtual
    assert [n.uid for n in owner.blocking_dependents()] == ["uid-web-1"]
    loosened = obj(REPLICASETS, "web-1", DEPLOY, block=False)
    assert graph.observe(rs_id, loosened, RS) == [("delete", "uid-web")]
    assert owner.blocking_dependents() == []
    released = obj(REPLICASETS, "web-1")
    assert graph.observe(rs_id, released, loosened) == []
    assert owner.dependents == set()
    assert graph.remove("uid-web") == [] and graph.remove("uid-web") == []
