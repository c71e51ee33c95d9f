"""Fakes for controller unit tests: a recording REST client, seeded caches, object builders.

A test builds a controller over `harness(...)` with the objects its informers should hold,
calls `sync(key)`, and asserts on `client.actions()` (the API calls made, in order) and on the
events recorded: "given these caches, expect these calls". The fake client keeps what it is
sent, so a test can also read back the bodies; configure `fail[(verb, resource)]` to make a
call raise.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from controlplane.api import errors
from controlplane.client.events import FakeRecorders
from controlplane.client.informer import key_of
from controlplane.client.rest import Resource, RESTClient
from controlplane.controllers.base import Controller, ControllerContext, SharedInformers

Object = dict[str, Any]
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def stamp(seconds: int = 0) -> str:
    """NOW plus `seconds`, as the API writes times."""
    return datetime.fromtimestamp(NOW.timestamp() + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Call:
    verb: str
    resource: str  # "pods", "replicasets/status", ...
    namespace: str
    name: str
    body: Any = None
    patch_type: str = ""


@dataclass
class FakeClient:
    """Records every call; answers from `objects`, keyed (resource, namespace, name)."""

    calls: list[Call] = field(default_factory=list)
    objects: dict[tuple[str, str, str], Object] = field(default_factory=dict)
    fail: dict[tuple[str, str], Exception] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def actions(self, *, reads: bool = False) -> list[tuple[str, str, str]]:
        """(verb, resource[/subresource], name) of each call, reads left out unless asked."""
        return [(c.verb, c.resource, c.name) for c in self.calls if reads or c.verb != "get"]

    def bodies(self, verb: str, resource: str) -> list[Any]:
        return [c.body for c in self.calls if c.verb == verb and c.resource == resource]

    def seed(self, resource: Resource, obj: Object) -> None:
        m = obj["metadata"]
        self.objects[(resource.resource, m.get("namespace", ""), m["name"])] = obj

    def _record(self, verb: str, res: Resource, namespace: str, name: str, sub: str = "",
                body: Any = None, patch_type: str = "") -> None:
        resource = f"{res.resource}/{sub}" if sub else res.resource
        self.calls.append(Call(verb, resource, namespace, name, copy.deepcopy(body), patch_type))
        error = self.fail.get((verb, resource))
        if error is not None:
            raise error

    async def get(self, res: Resource, name: str, namespace: str = "", *,
                  subresource: str = "") -> Object:
        self._record("get", res, namespace, name, subresource)
        obj = self.objects.get((res.resource, namespace, name))
        if obj is None:
            raise errors.NotFound(f'{res.resource} "{name}" not found')
        return copy.deepcopy(obj)

    async def create(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "", name: str = "") -> Object:
        m = obj.get("metadata") or {}
        given = m.get("name") or f"{m.get('generateName', 'x-')}{next(self._ids):05d}"
        self._record("create", res, namespace, given, subresource, obj)
        if (res.resource, namespace, given) in self.objects:
            raise errors.AlreadyExists(f'{res.resource} "{given}" already exists')
        created = copy.deepcopy(obj)
        created["metadata"] = dict(m, name=given, namespace=namespace,
                                   uid=f"uid-{given}", resourceVersion="1", generation=1,
                                   creationTimestamp=stamp())
        self.objects[(res.resource, namespace, given)] = created
        return copy.deepcopy(created)

    async def update(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "") -> Object:
        name = obj["metadata"]["name"]
        self._record("update", res, namespace, name, subresource, obj)
        updated = copy.deepcopy(obj)
        rv = int(updated["metadata"].get("resourceVersion") or 0) + 1
        updated["metadata"]["resourceVersion"] = str(rv)
        self.objects[(res.resource, namespace, name)] = updated
        return copy.deepcopy(updated)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    subresource: str = "", patch_type: str = "application/merge-patch+json",
                    field_manager: str = "") -> Object:
        self._record("patch", res, namespace, name, subresource, patch, patch_type)
        return copy.deepcopy(self.objects.get((res.resource, namespace, name)) or {
            "metadata": {"name": name, "namespace": namespace}})

    async def delete(self, res: Resource, name: str, namespace: str = "", *,
                     grace_period: int | None = None, propagation: str = "",
                     preconditions: Object | None = None) -> Object:
        self._record("delete", res, namespace, name)
        if self.objects.pop((res.resource, namespace, name), None) is None and not any(
                c.verb == "create" and c.name == name for c in self.calls):
            raise errors.NotFound(f'{res.resource} "{name}" not found')
        return {"kind": "Status", "status": "Success"}


@dataclass
class Harness:
    client: FakeClient
    informers: SharedInformers
    recorders: FakeRecorders
    clock: list[datetime]  # clock[0] is "now"; tests move it

    def context(self) -> ControllerContext:
        return ControllerContext(client=self.client, informers=self.informers,
                                 recorders=self.recorders, clock=lambda: self.clock[0])

    def cache(self, resource: Resource, *objects: Object) -> None:
        """Put objects in the informer cache (and in the fake API, for re-reads)."""
        store = self.informers.informer(resource).store
        for obj in objects:
            store[key_of(obj)] = obj
            self.client.seed(resource, obj)

    def events(self) -> list[tuple[str, str]]:
        return [(e.reason, e.message) for e in self.recorders.events]


def harness() -> Harness:
    client = FakeClient()
    return Harness(client, SharedInformers(cast(RESTClient, client)), FakeRecorders(), [NOW])


def build(h: Harness, cls: type[Controller]) -> Any:
    """The controller `cls` over the harness (typed Any so tests reach its internals)."""
    return cls(h.context())


# -- builders -------------------------------------------------------------------------------------


def template(labels: dict[str, str], image: str = "busybox") -> Object:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "c", "image": image}], "restartPolicy": "Always"}}


def owner_ref(owner: Object) -> Object:
    kind = owner.get("kind", "")
    return {"apiVersion": owner.get("apiVersion", "apps/v1"), "kind": kind,
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def pod(name: str, labels: dict[str, str], *, owner: Object | None = None,
        phase: str = "Pending", ready: bool = False, node: str = "", created: int = 0,
        ready_since: int = 0, namespace: str = "default", deleting: bool = False) -> Object:
    meta: Object = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                    "labels": dict(labels), "resourceVersion": "1",
                    "creationTimestamp": stamp(created)}
    if owner is not None:
        meta["ownerReferences"] = [owner_ref(owner)]
    if deleting:
        meta["deletionTimestamp"] = stamp(60)
    status: Object = {"phase": phase}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True",
                                 "lastTransitionTime": stamp(ready_since)}]
    spec: Object = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def replicaset(name: str, labels: dict[str, str], replicas: int, *,
               owner: Object | None = None, image: str = "busybox", created: int = 0,
               revision: int | None = None, status: Object | None = None,
               namespace: str = "default", generation: int = 1,
               annotations: dict[str, str] | None = None) -> Object:
    meta: Object = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                    "labels": dict(labels), "resourceVersion": "1", "generation": generation,
                    "creationTimestamp": stamp(created), "annotations": dict(annotations or {})}
    if owner is not None:
        meta["ownerReferences"] = [owner_ref(owner)]
    if revision is not None:
        meta["annotations"]["deployment.kubernetes.io/revision"] = str(revision)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": template(labels, image)},
            "status": dict(status or {"replicas": 0})}


def deployment(name: str, labels: dict[str, str], replicas: int, *, image: str = "busybox",
               strategy: Object | None = None, generation: int = 1,
               status: Object | None = None, paused: bool = False,
               namespace: str = "default", revision_history_limit: int = 10,
               progress_deadline: int | None = 600, min_ready: int = 0) -> Object:
    spec: Object = {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                    "template": template(labels, image),
                    "strategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {
                        "maxSurge": "25%", "maxUnavailable": "25%"}},
                    "revisionHistoryLimit": revision_history_limit}
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    if paused:
        spec["paused"] = True
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                         "generation": generation, "resourceVersion": "1",
                         "creationTimestamp": stamp()},
            "spec": spec, "status": dict(status or {})}
