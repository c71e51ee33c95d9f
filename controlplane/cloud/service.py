"""The service controller: a load balancer for each Service of type LoadBalancer.

`sync(service)`, level-triggered over the caches, as Kubernetes' service controller does it:
- wanted (type LoadBalancer, no loadBalancerClass, not being deleted): events
  EnsuringLoadBalancer, then the `service.kubernetes.io/load-balancer-cleanup` finalizer, then
  the provider's EnsureLoadBalancer with the eligible nodes, event EnsuredLoadBalancer and its
  status written to status.loadBalancer; a failure (e.g. an exhausted pool) is a Warning event
  SyncLoadBalancerFailed, the Service stays as it is, and the key is retried with backoff;
- no longer wanted (deleted, or its type changed) while ours: DeletingLoadBalancer,
  EnsureLoadBalancerDeleted, DeletedLoadBalancer, status cleared, finalizer removed. A release
  retries the Services still waiting for an address at once;
- a Service with a loadBalancerClass and without our finalizer belongs to someone else.
Before any sync the provider is asked about every existing load balancer (`warm_up`), so one
that rebuilds its state from the Services (the local pool) knows every address in use. When the
set of eligible nodes changes, every load balancer is updated (UpdateLoadBalancer).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from controlplane.api import errors
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.informer import key_of
from controlplane.client.rest import NODES, SERVICES
from controlplane.cloud import servicehelper as helper
from controlplane.cloud.provider import CloudProvider, LoadBalancer
from controlplane.controllers.base import (
    Controller,
    ControllerContext,
    SyncError,
    deep_copy,
    split_key,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
DEFAULT_CLUSTER_NAME = "kubernetes"
HOST_SYNC_DELAY = 1.0  # seconds gathering node changes before updating load balancers


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster-name", default=DEFAULT_CLUSTER_NAME,
                        help="the cluster's name, as load balancers are named for the cloud")


class ServiceController(Controller):
    name = "service"
    component = "service-controller"
    kind = "Service"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext, cloud: CloudProvider) -> None:
        super().__init__(ctx)
        balancer = cloud.load_balancer()
        if balancer is None:
            raise ValueError(f"cloud provider {cloud.provider_name()} has no load balancers")
        self.balancer: LoadBalancer = balancer
        self.cluster_name = str(ctx.options.get("cluster_name") or DEFAULT_CLUSTER_NAME)
        self.services = ctx.informers.lister(SERVICES)
        self.nodes = ctx.informers.lister(NODES)
        # All owned by the controller's loop (handlers, workers, the host loop):
        self.deleted: dict[str, Object] = {}  # key -> last state of a Service gone from the cache
        self.written: dict[str, Object] = {}  # key -> the LoadBalancerStatus we last wrote
        self.written_rv: dict[str, int] = {}  # key -> the resourceVersion that write made
        self.hosts: list[str] | None = None  # node names load balancers point at
        self.hosts_changed = asyncio.Event()
        self.services.informer.add_handlers(on_add=self._added, on_update=self._updated,
                                            on_delete=self._deleted)
        self.nodes.informer.add_handlers(on_add=self._node_changed,
                                         on_update=lambda _o, cur: self._node_changed(cur),
                                         on_delete=self._node_changed)

    def __repr__(self) -> str:
        return f"<ServiceController {self.balancer!r} {self.queue!r}>"

    # -- handlers (quick, no I/O) ----------------------------------------------------------------

    def _added(self, svc: Object) -> None:
        if helper.concerns_us(svc):
            self.enqueue(svc)

    def _updated(self, old: Object, cur: Object) -> None:
        if not (helper.concerns_us(cur) or helper.concerns_us(old)):
            return
        written = self.written.get(key_of(cur))
        if helper.needs_update(old, cur) or (
                written is not None and not helper.status_equal(helper.lb_status(cur), written)):
            self.enqueue(cur)

    def _deleted(self, svc: Object) -> None:
        if helper.concerns_us(svc):
            self.deleted[key_of(svc)] = svc
            self.enqueue(svc)

    def _node_changed(self, _node: Object) -> None:
        if self.hosts is not None and helper.node_names(
                helper.eligible_nodes(self.nodes.list())) != self.hosts:
            self.hosts_changed.set()

    # -- running ----------------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        await self.warm_up()
        self.hosts = helper.node_names(helper.eligible_nodes(self.nodes.list()))
        async with asyncio.TaskGroup() as group:
            group.create_task(super().run(workers), name="service-workers")
            group.create_task(self._host_loop(), name="service-hosts")

    async def warm_up(self) -> None:
        """Ask the provider about every existing load balancer, oldest Service first."""
        ours = [s for s in self.services.list() if helper.concerns_us(s)]
        ours.sort(key=lambda s: (str(s["metadata"].get("creationTimestamp") or ""),
                                 key_of(s)))
        for svc in ours:
            try:
                await self.balancer.get_load_balancer(self.cluster_name, svc)
            except Exception as exc:  # noqa: BLE001 - its sync will retry and report
                log.warning("service %s: load balancer lookup failed: %s", key_of(svc), exc)
        log.info("service controller: %d load balancer service(s) at start", len(ours))

    async def _host_loop(self) -> None:
        while True:
            await self.hosts_changed.wait()
            await asyncio.sleep(HOST_SYNC_DELAY)
            self.hosts_changed.clear()
            if not await self.update_load_balancer_hosts():
                await asyncio.sleep(HOST_SYNC_DELAY * 5)
                self.hosts_changed.set()

    async def update_load_balancer_hosts(self) -> bool:
        """Point every load balancer at the eligible nodes; False if one failed (retried)."""
        nodes = helper.eligible_nodes(self.nodes.list())
        names = helper.node_names(nodes)
        if names == self.hosts:
            return True
        ok = True
        for svc in self.services.list():
            if not (helper.wants_load_balancer(svc) and helper.has_finalizer(svc)
                    and helper.lb_status(svc).get("ingress")
                    and not svc["metadata"].get("deletionTimestamp")):
                continue
            try:
                await self.balancer.update_load_balancer(self.cluster_name, svc, nodes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the others go on; retried later
                ok = False
                self.event(svc, WARNING, "UpdateLoadBalancerFailed",
                           f"Error updating load balancer with new hosts {names}: {exc}")
                continue
            self.event(svc, NORMAL, "UpdatedLoadBalancer", "Updated load balancer with new hosts")
        if ok:
            log.info("load balancers now point at %s", ", ".join(names) or "no nodes")
            self.hosts = names
        return ok

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self.services.get(namespace, name)
        if svc is None:
            self.written.pop(key, None)
            self.written_rv.pop(key, None)
            gone = self.deleted.pop(key, None)
            if gone is not None:
                await self._delete_load_balancer(dict(gone, status={}))  # claims nothing now
            return
        self.deleted.pop(key, None)
        if helper.has_class(svc) and not helper.has_finalizer(svc):
            return  # another implementation's (loadBalancerClass)
        if helper.wants_load_balancer(svc) and not helper.needs_cleanup(svc):
            await self._ensure(svc, key)
        else:
            await self._cleanup(svc, key)

    async def _ensure(self, svc: Object, key: str) -> None:
        self.event(svc, NORMAL, "EnsuringLoadBalancer", "Ensuring load balancer")
        svc = await self._set_finalizer(svc, True)
        nodes = helper.eligible_nodes(self.nodes.list())
        try:
            status = await self.balancer.ensure_load_balancer(self.cluster_name, svc, nodes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on the Service, retried
            self.event(svc, WARNING, "SyncLoadBalancerFailed",
                       f"Error syncing load balancer: failed to ensure load balancer: {exc}")
            raise SyncError(f"service {key}: failed to ensure load balancer: {exc}") from None
        self.event(svc, NORMAL, "EnsuredLoadBalancer", "Ensured load balancer")
        await self._write_status(svc, key, status)

    async def _cleanup(self, svc: Object, key: str) -> None:
        # A Service that no longer wants a load balancer claims nothing from its status (the
        # cache may still show one we released); the warm-up adopted what it held at start.
        if await self._delete_load_balancer(dict(svc, status={})):
            self._retry_waiting(key)
        deleting = bool(svc["metadata"].get("deletionTimestamp"))
        svc = await self._set_finalizer(svc, False)
        if not deleting and not helper.has_class(svc) and helper.lb_status(svc).get("ingress"):
            await self._write_status(svc, key, {})

    async def _delete_load_balancer(self, svc: Object) -> bool:
        """Delete the Service's load balancer if the provider has one; whether it had."""
        _, exists = await self.balancer.get_load_balancer(self.cluster_name, svc)
        if not exists:
            return False
        self.event(svc, NORMAL, "DeletingLoadBalancer", "Deleting load balancer")
        try:
            await self.balancer.ensure_load_balancer_deleted(self.cluster_name, svc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on the Service, retried
            self.event(svc, WARNING, "SyncLoadBalancerFailed",
                       f"Error syncing load balancer: failed to delete load balancer: {exc}")
            raise SyncError(f"service {key_of(svc)}: failed to delete load balancer: "
                            f"{exc}") from None
        self.event(svc, NORMAL, "DeletedLoadBalancer", "Deleted load balancer")
        return True

    def _retry_waiting(self, released_by: str) -> None:
        """Requeue the Services still waiting for a load balancer (one may fit now)."""
        for svc in self.services.list():
            key = key_of(svc)
            if (key != released_by and helper.wants_load_balancer(svc)
                    and not helper.lb_status(svc).get("ingress")
                    and not svc["metadata"].get("deletionTimestamp")):
                self.queue.add(key)

    async def _set_finalizer(self, svc: Object, present: bool) -> Object:
        finalizers = helper.with_finalizer(svc, present)
        if finalizers is None:
            return svc
        updated = deep_copy(svc)
        updated["metadata"]["finalizers"] = finalizers
        try:
            written = await self.client.update(SERVICES, updated,
                                               svc["metadata"].get("namespace", ""))
        except errors.NotFound:
            return updated
        log.info("service %s: finalizer %s %s", key_of(svc), helper.FINALIZER,
                 "added" if present else "removed")
        return written

    async def _write_status(self, svc: Object, key: str, status: Object) -> None:
        if helper.status_equal(helper.lb_status(svc), status):
            self.written[key] = status
            return
        if (key in self.written and helper.status_equal(self.written[key], status)
                and _revision(svc) < self.written_rv.get(key, 0)):
            return  # written; the cache has yet to show it
        patch = {"status": {"loadBalancer": {"ingress": status.get("ingress") or None}}}
        self.written[key] = status
        try:
            written = await self.client.patch(SERVICES, svc["metadata"]["name"], patch,
                                              svc["metadata"].get("namespace", ""),
                                              subresource="status")
        except errors.NotFound:
            return
        self.written_rv[key] = _revision(written)
        ips = [str(i.get("ip") or i.get("hostname")) for i in status.get("ingress") or []]
        log.info("service %s: load balancer ingress %s", key, ", ".join(ips) or "cleared")


def _revision(obj: Object) -> int:
    """An object's resourceVersion as a number (our apiserver's are etcd revisions); 0 if not."""
    try:
        return int(str(obj["metadata"].get("resourceVersion") or 0))
    except ValueError:
        return 0
