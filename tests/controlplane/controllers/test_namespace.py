"""Namespace controller: given a Terminating namespace and what the API holds, expect these calls.

`APIClient` extends the fake client with what the deleter needs beyond it: discovery documents
(`request GET /api/v1`, `/apis`, `/apis/<gv>`), DELETE of a collection (recorded as the verb
"deletecollection"; objects with finalizers, and pods on a node, are only marked deleted) and
list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import pytest

from controlplane.api import errors
from controlplane.client.rest import NAMESPACES, Resource
from controlplane.controllers.namespace import NamespaceController
from controlplane.controllers.namespace.conditions import CONDITION_TYPES, ConditionUpdater
from controlplane.controllers.namespace.deleter import ContentError, ResourcesRemaining
from controlplane.controllers.namespace.discovery import preferred_resources
from controlplane.controllers.testing import NOW, FakeClient, Harness, build, harness, stamp

Object = dict[str, Any]
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVED: dict[str, list[tuple[str, str, bool, list[str]]]] = {
    "v1": [("namespaces", "Namespace", False, ALL), ("namespaces/status", "Namespace", False,
                                                     ["get", "patch", "update"]),
           ("pods", "Pod", True, ALL), ("configmaps", "ConfigMap", True, ALL),
           ("nodes", "Node", False, ALL),
           ("bindings", "Binding", True, ["create"])],
    "apps/v1": [("deployments", "Deployment", True, ALL)],
    "coordination.k8s.io/v1": [("leases", "Lease", True,
                                ["create", "delete", "get", "list", "update"])],
}


@dataclass
class APIClient(FakeClient):
    broken_groups: set[str] = field(default_factory=set)
    fail_once: dict[tuple[str, str], Exception] = field(default_factory=dict)

    def _record(self, verb: str, res: Resource, namespace: str, name: str, sub: str = "",
                body: Any = None, patch_type: str = "") -> None:
        resource = f"{res.resource}/{sub}" if sub else res.resource
        error = self.fail_once.pop((verb, resource), None)
        super()._record(verb, res, namespace, name, sub, body, patch_type)
        if error is not None:
            raise error

    async def list(self, res: Resource, namespace: str = "", **_: Any) -> Object:
        self._record("list", res, namespace, "")
        return {"items": [o for (r, ns, _n), o in sorted(self.objects.items())
                          if r == res.resource and ns == namespace]}

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Object:
        if method == "GET":
            return self._discovery(path)
        assert method == "DELETE" and body == {"propagationPolicy": "Background"}, (method, body)
        namespace, resource = path.rsplit("/", 2)[1:]
        group = "" if path.startswith("/api/") else path.split("/")[2]
        self._record("deletecollection", Resource(group, "v1", resource), namespace, "")
        for key, obj in list(self.objects.items()):
            if key[:2] != (resource, namespace):
                continue
            m = obj["metadata"]
            if m.get("finalizers") or (obj.get("spec") or {}).get("nodeName"):
                m.setdefault("deletionTimestamp", stamp())
            else:
                del self.objects[key]
        return {"items": []}

    def _discovery(self, path: str) -> Object:
        if path == "/apis":
            return {"groups": [{"name": gv.split("/")[0], "preferredVersion": {
                "groupVersion": gv}} for gv in SERVED if "/" in gv]}
        gv = path.removeprefix("/apis/").removeprefix("/api/")
        if gv in self.broken_groups:
            raise errors.ServiceUnavailable("the server is currently unable to handle the request")
        return {"groupVersion": gv, "resources": [
            {"name": n, "kind": k, "namespaced": ns, "verbs": v} for n, k, ns, v in SERVED[gv]]}


def setup(*objects: tuple[Resource, Object], finalizers: tuple[str, ...] = ("kubernetes",),
          deleting: bool = True) -> tuple[Harness, APIClient, NamespaceController]:
    h = harness()
    client = APIClient()
    h.client = client
    meta: Object = {"name": "doomed", "uid": "uid-doomed", "resourceVersion": "7"}
    if deleting:
        meta["deletionTimestamp"] = stamp()
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
          "spec": {"finalizers": list(finalizers)},
          "status": {"phase": "Terminating" if deleting else "Active"}}
    h.cache(NAMESPACES, ns)
    for res, obj in objects:
        client.seed(res, obj)
    return h, client, build(h, NamespaceController)


def obj(kind: str, name: str, *, finalizers: tuple[str, ...] = (), node: str = "",
        grace: int | None = None) -> Object:
    meta: Object = {"name": name, "namespace": "doomed", "uid": f"uid-{name}"}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    spec: Object = {"nodeName": node} if node else {}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"kind": kind, "metadata": meta, "spec": spec}


PODS = Resource("", "v1", "pods")
CMS = Resource("", "v1", "configmaps")
DEPLOYS = Resource("apps", "v1", "deployments")
LEASES = Resource("coordination.k8s.io", "v1", "leases")


def conditions(client: APIClient) -> dict[str, Object]:
    body = client.bodies("update", "namespaces/status")[-1]
    return {c["type"]: c for c in body["status"]["conditions"]}


async def test_discovery_lists_top_level_resources_of_preferred_versions() -> None:
    resources, failed = await preferred_resources(APIClient())
    assert failed is None
    names = {(r.resource.group, r.resource.resource, r.namespaced) for r in resources}
    assert ("", "pods", True) in names and ("apps", "deployments", True) in names
    assert ("", "nodes", False) in names and ("", "namespaces/status", False) not in names
    assert next(r for r in resources if r.kind == "Lease").group_resource == \
        "leases.coordination.k8s.io"


async def test_deletes_every_namespaced_resource_then_finalizes() -> None:
    h, client, c = setup((PODS, obj("Pod", "p")), (CMS, obj("ConfigMap", "cm")),
                         (DEPLOYS, obj("Deployment", "web")), (LEASES, obj("Lease", "l")))
    await c.sync("doomed")
    calls = client.actions()
    deleted = {(verb, r) for verb, r, _ in calls if verb in ("delete", "deletecollection")}
    assert deleted == {("deletecollection", "pods"), ("deletecollection", "configmaps"),
                       ("deletecollection", "deployments"), ("delete", "leases")}
    assert ("deletecollection", "nodes") not in deleted and ("delete", "bindings") not in deleted
    assert calls[-2:] == [("update", "namespaces/status", "doomed"),
                          ("update", "namespaces/finalize", "doomed")]
    assert client.bodies("update", "namespaces/finalize")[0]["spec"]["finalizers"] == []
    conds = conditions(client)
    assert list(conds) == list(CONDITION_TYPES)
    assert {t: (c["status"], c["reason"]) for t, c in conds.items()} == {
        "NamespaceDeletionDiscoveryFailure": ("False", "ResourcesDiscovered"),
        "NamespaceDeletionGroupVersionParsingFailure": ("False", "ParsedGroupVersions"),
        "NamespaceDeletionContentFailure": ("False", "ContentDeleted"),
        "NamespaceContentRemaining": ("False", "ContentRemoved"),
        "NamespaceFinalizersRemaining": ("False", "ContentHasNoFinalizers")}
    assert conds["NamespaceDeletionContentFailure"]["message"] == \
        "All content successfully deleted, may be waiting on finalization"
    assert not [k for k in client.objects if k[0] != "namespaces"]


async def test_content_held_by_finalizers_waits_and_says_so() -> None:
    h, client, c = setup((CMS, obj("ConfigMap", "held", finalizers=("foregroundDeletion",))),
                         (PODS, obj("Pod", "gone")))
    with pytest.raises(ResourcesRemaining) as remaining:
        await c.deleter.delete("doomed")
    assert remaining.value.estimate == 5
    assert not client.bodies("update", "namespaces/finalize")
    conds = conditions(client)
    assert conds["NamespaceContentRemaining"]["status"] == "True"
    assert conds["NamespaceContentRemaining"]["message"] == \
        "Some resources are remaining: configmaps. has 1 resource instances"
    assert conds["NamespaceFinalizersRemaining"]["message"] == \
        "Some content in the namespace has finalizers remaining: foregroundDeletion in 1 " \
        "resource instances"
    assert conds["NamespaceDeletionContentFailure"]["status"] == "False"


async def test_remaining_content_is_looked_at_again_with_growing_delays() -> None:
    h, client, c = setup((CMS, obj("ConfigMap", "held", finalizers=("x.io/keep",))))
    for _ in range(5):
        await c.sync("doomed")
    assert c._waits["doomed"] == 5
    assert "doomed" in c.queue._timers  # requeued after min(0.25 * 2**n, 5 / 2 + 1) seconds
    updates = client.bodies("update", "namespaces/status")
    assert len(updates) == 1  # the same conditions again are not rewritten
    client.objects.pop(("configmaps", "doomed", "held"))
    await c.sync("doomed")
    assert client.actions()[-2:] == [("update", "namespaces/status", "doomed"),
                                      ("update", "namespaces/finalize", "doomed")]
    assert "doomed" not in c._waits
    conds = conditions(client)
    assert conds["NamespaceContentRemaining"]["status"] == "False"
    assert conds["NamespaceContentRemaining"]["reason"] == "ContentRemoved"


async def test_pods_get_their_grace_period_then_leftovers_are_an_error() -> None:
    h, client, c = setup((PODS, obj("Pod", "running", node="n1", grace=30)))
    with pytest.raises(ResourcesRemaining) as remaining:
        await c.deleter.delete("doomed")
    assert remaining.value.estimate == 30
    h.clock[0] = NOW + timedelta(seconds=31)  # past the grace period, the pod is still there
    with pytest.raises(ContentError, match="unexpected items still remain in namespace: doomed"):
        await c.deleter.delete("doomed")
    conds = conditions(client)
    assert conds["NamespaceDeletionContentFailure"]["status"] == "True"
    assert conds["NamespaceDeletionContentFailure"]["reason"] == "ContentDeletionFailed"
    assert conds["NamespaceDeletionContentFailure"]["message"].startswith(
        "Failed to delete all resource types, 1 remaining: unexpected items still remain")
    assert not client.bodies("update", "namespaces/finalize")


async def test_a_group_that_fails_discovery_is_reported_and_the_rest_deleted() -> None:
    h, client, c = setup((CMS, obj("ConfigMap", "cm")), (LEASES, obj("Lease", "l")))
    client.broken_groups.add("coordination.k8s.io/v1")
    with pytest.raises(ContentError, match="unable to retrieve the complete list of server"):
        await c.deleter.delete("doomed")
    assert ("configmaps", "doomed", "cm") not in client.objects
    assert ("leases", "doomed", "l") in client.objects
    cond = conditions(client)["NamespaceDeletionDiscoveryFailure"]
    assert (cond["status"], cond["reason"]) == ("True", "DiscoveryFailed")
    assert cond["message"].startswith("Discovery failed for some groups, 1 failing: unable to "
                                      "retrieve the complete list of server APIs: "
                                      "coordination.k8s.io/v1: the server is currently")


async def test_a_failed_deletion_is_a_content_failure() -> None:
    h, client, c = setup((CMS, obj("ConfigMap", "cm")))
    client.fail[("deletecollection", "configmaps")] = errors.Forbidden("no, not configmaps")
    with pytest.raises(ContentError, match="no, not configmaps"):
        await c.deleter.delete("doomed")
    cond = conditions(client)["NamespaceDeletionContentFailure"]
    assert cond["message"] == "Failed to delete all resource types, 1 remaining: no, not " \
        "configmaps"


async def test_other_finalizers_stay_and_a_conflict_on_finalize_rereads() -> None:
    h, client, c = setup(finalizers=("kubernetes", "example.com/audit"))
    client.fail_once[("update", "namespaces/finalize")] = errors.Conflict("modified")
    await c.sync("doomed")
    finals = client.bodies("update", "namespaces/finalize")
    assert [b["spec"]["finalizers"] for b in finals] == [["example.com/audit"]] * 2
    assert client.actions(reads=True).count(("get", "namespaces", "doomed")) == 2


async def test_nothing_to_do_unless_terminating_and_ours_to_finalize() -> None:
    for kwargs in ({"deleting": False}, {"finalizers": ()}):
        h, client, c = setup((CMS, obj("ConfigMap", "cm")), **cast(Any, kwargs))
        await c.sync("doomed")
        assert client.actions() == []
    h, client, c = setup()
    client.objects.clear()  # gone from the API already; the cache lags
    await c.sync("doomed")
    assert client.actions() == []


async def test_handlers_enqueue_only_namespaces_being_deleted() -> None:
    h, client, c = setup()
    c.deletion_delay = 0
    c._changed({"metadata": {"name": "alive"}})
    c._changed({"metadata": {"name": "doomed", "deletionTimestamp": stamp()}})
    assert len(c.queue) == 1 and await c.queue.get() == "doomed"


def test_conditions_keep_their_transition_time_while_status_holds() -> None:
    first = ConditionUpdater(NOW)
    first.content_totals({"pods.": 2}, {})
    conds, changed = first.update([])
    assert changed
    later = ConditionUpdater(NOW + timedelta(seconds=9))
    later.content_totals({"pods.": 1}, {})
    again, changed = later.update(conds)
    remaining = next(c for c in again if c["type"] == "NamespaceContentRemaining")
    assert changed and remaining["message"] == \
        "Some resources are remaining: pods. has 1 resource instances"
    assert remaining["lastTransitionTime"] == stamp()
    same = ConditionUpdater(NOW + timedelta(seconds=20))
    same.content_totals({"pods.": 1}, {})
    assert same.update(again) == (again, False)
