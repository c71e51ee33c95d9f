"""The admission chain: mutating then validating plug-ins run on every write, in order.

Built in: NamespaceLifecycle (no new objects in a missing or terminating namespace; the
default namespaces cannot be deleted), ServiceAccount (pods default to the `default` service
account), DefaultTolerationSeconds (pods tolerate not-ready/unreachable nodes for 300 s).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from controlplane.api import errors
from controlplane.apiserver.registry.resources import ResourceInfo
from controlplane.apiserver.storage.cacher import WatchCache

Object = dict[str, Any]
Plugin = Callable[[str, ResourceInfo, Object | None, Object | None], Awaitable[None]]
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
NOT_READY_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
)


class Admission:
    """Runs the mutating plug-ins, then the validating ones; any may raise an APIError."""

    def __init__(self, namespaces: WatchCache) -> None:
        self.namespaces = namespaces
        self.mutating: list[Plugin] = [self.service_account, self.default_toleration_seconds]
        self.validating: list[Plugin] = [self.namespace_lifecycle]

    async def __call__(self, op: str, info: ResourceInfo, new: Object | None,
                       old: Object | None) -> None:
        for plugin in (*self.mutating, *self.validating):
            await plugin(op, info, new, old)

    async def namespace_lifecycle(self, op: str, info: ResourceInfo, new: Object | None,
                                  old: Object | None) -> None:
        if info.resource == "namespaces" and info.group == "":
            name = (old or {}).get("metadata", {}).get("name")
            if op == "DELETE" and name in PROTECTED_NAMESPACES:
                raise errors.Forbidden(f'namespaces "{name}" is forbidden: this namespace may '
                                       "not be deleted", name=name, kind="namespaces")
            return
        if op != "CREATE" or not info.namespaced or new is None:
            return
        namespace = new["metadata"].get("namespace", "")
        await self.namespaces.ready.wait()
        ns = self.namespaces.get(f"/registry/namespaces/{namespace}")
        if ns is None:
            raise errors.NotFound.of("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp") or (
                (ns.get("status") or {}).get("phase") == "Terminating"):
            raise errors.Forbidden(
                f'{info.resource} "{new["metadata"].get("name", "")}" is forbidden: unable to '
                f"create new content in namespace {namespace} because it is being terminated",
                name=new["metadata"].get("name", ""), group=info.group, kind=info.resource)

    async def service_account(self, op: str, info: ResourceInfo, new: Object | None,
                              old: Object | None) -> None:
        if op == "CREATE" and info.resource == "pods" and info.group == "" and new:
            spec = new.setdefault("spec", {})
            spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
            spec.setdefault("serviceAccount", spec["serviceAccountName"])

    async def default_toleration_seconds(self, op: str, info: ResourceInfo, new: Object | None,
                                         old: Object | None) -> None:
        if op != "CREATE" or info.resource != "pods" or info.group != "" or not new:
            return
        tolerations = new.setdefault("spec", {}).setdefault("tolerations", [])
        for key, effect in NOT_READY_TOLERATIONS:
            if any(t.get("key") == key and t.get("effect") in (effect, None, "")
                   for t in tolerations) or any(
                    t.get("operator") == "Exists" and not t.get("key") for t in tolerations):
                continue
            tolerations.append({"key": key, "operator": "Exists", "effect": effect,
                                "tolerationSeconds": 300})
