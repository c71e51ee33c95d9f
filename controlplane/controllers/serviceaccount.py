"""The ServiceAccount controller: every active namespace has a `default` ServiceAccount.

Keys are namespace names. A namespace that appears or changes is synced; a ServiceAccount of
ours that is deleted syncs its namespace again, so it is recreated. `sync` creates the
missing accounts unless the namespace is gone or terminating (the namespace controller is
emptying it then, and the apiserver would refuse the create anyway). Already existing is
success: another writer, or our own cache lagging, got there first.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.api import errors
from controlplane.client.rest import NAMESPACES, Resource
from controlplane.controllers.base import Controller, ControllerContext

log = logging.getLogger(__name__)
Object = dict[str, Any]
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts")
MANAGED = ("default",)  # kube-controller-manager's ServiceAccountsControllerOptions


def missing(namespace: Object | None, present: set[str],
            managed: tuple[str, ...] = MANAGED) -> list[str]:
    """The managed account names to create in `namespace` (none if it is not Active)."""
    if namespace is None or namespace["metadata"].get("deletionTimestamp"):
        return []
    if ((namespace.get("status") or {}).get("phase") or "Active") != "Active":
        return []
    return [name for name in managed if name not in present]


class ServiceAccountController(Controller):
    name = "serviceaccount"
    component = "service-account-controller"
    kind = "Namespace"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informers.lister(NAMESPACES)
        self.accounts = ctx.informers.lister(SERVICEACCOUNTS)
        self.namespaces.informer.add_handlers(on_add=self._namespace,
                                              on_update=lambda _, cur: self._namespace(cur))
        self.accounts.informer.add_handlers(on_delete=self._account_deleted)

    def _namespace(self, ns: Object) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _account_deleted(self, sa: Object) -> None:
        if sa["metadata"].get("name") in MANAGED:
            self.queue.add(str(sa["metadata"].get("namespace", "")))

    async def sync(self, key: str) -> None:
        present = {sa["metadata"]["name"] for sa in self.accounts.list(key)}
        for name in missing(self.namespaces.get("", key), present):
            try:
                await self.client.create(SERVICEACCOUNTS, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": key}}, key)
                log.info("created serviceaccount %s/%s", key, name)
            except errors.AlreadyExists:
                continue
            except errors.Forbidden as exc:
                if "because it is being terminated" in str(exc):
                    return
                raise
            except errors.NotFound:
                return  # the namespace went away meanwhile
