"""The cloud node lifecycle controller: nodes whose machines are gone are deleted.

Every node is looked at when it appears, when its Ready status changes, and again every
--node-monitor-period (the cloud is not watched), as Kubernetes' cloud node lifecycle
controller does: a Ready node loses the `node.cloudprovider.kubernetes.io/shutdown` taint if it
has it; a node not Ready (False, Unknown or no condition) whose machine the provider says is
shut down gets that taint (NoSchedule) and is kept; one whose machine no longer exists is
deleted (Normal event DeletingNode first; the delete is conditional on its uid, so a node
re-registered meanwhile stays). A provider error leaves the node as it is and retries.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from controlplane.api import errors
from controlplane.api.flags import duration
from controlplane.client.events import NORMAL
from controlplane.client.rest import NODES
from controlplane.cloud.provider import CloudProvider, InstancesV2, instances_of
from controlplane.controllers.base import Controller, ControllerContext, deep_copy

log = logging.getLogger(__name__)
Object = dict[str, Any]
SHUTDOWN = "node.cloudprovider.kubernetes.io/shutdown"
DEFAULT_MONITOR_PERIOD = 5.0


def add_flags(parser: argparse.ArgumentParser) -> None:

    parser.add_argument("--node-monitor-period", type=duration, default=DEFAULT_MONITOR_PERIOD,
                        help="how often every node is checked against the cloud provider")


def ready_status(node: Object) -> str:
    """The Ready condition's status; "Unknown" without one."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status") or "Unknown")
    return "Unknown"


def with_shutdown_taint(node: Object, present: bool) -> list[Object] | None:
    """The node's taints with the shutdown taint added or removed (None: no change)."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    has = any(t.get("key") == SHUTDOWN for t in taints)
    if has == present:
        return None
    if present:
        return [*taints, {"key": SHUTDOWN, "effect": "NoSchedule"}]
    return [t for t in taints if t.get("key") != SHUTDOWN]


class CloudNodeLifecycleController(Controller):
    name = "cloud-node-lifecycle"
    component = "cloud-node-lifecycle-controller"
    kind = "Node"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext, cloud: CloudProvider) -> None:
        super().__init__(ctx)
        self.instances: InstancesV2 = instances_of(cloud)
        self.period = float(ctx.options.get("node_monitor_period") or DEFAULT_MONITOR_PERIOD)
        self.nodes = ctx.informers.lister(NODES)
        self.nodes.informer.add_handlers(on_add=self.enqueue, on_update=self._updated)

    def _updated(self, old: Object, cur: Object) -> None:
        if ready_status(old) != ready_status(cur):
            self.enqueue(cur)

    async def sync(self, key: str) -> None:
        node = self.nodes.get("", key)
        if node is None:
            return
        self.queue.add_after(key, self.period)
        if ready_status(node) == "True":
            await self._set_shutdown_taint(node, False)
            return
        if await self.instances.instance_shutdown(node):
            await self._set_shutdown_taint(node, True)
            return
        if await self.instances.instance_exists(node):
            return
        self.event(node, NORMAL, "DeletingNode",
                   f"Deleting node {key} because it does not exist in the cloud provider")
        try:
            await self.client.delete(NODES, key,
                                     preconditions={"uid": node["metadata"].get("uid")})
        except (errors.NotFound, errors.Conflict):
            return
        log.info("node %s deleted: its machine no longer exists", key)

    async def _set_shutdown_taint(self, node: Object, present: bool) -> None:
        taints = with_shutdown_taint(node, present)
        if taints is None:
            return
        updated = deep_copy(node)
        updated.setdefault("spec", {})["taints"] = taints
        if not taints:
            del updated["spec"]["taints"]
        try:
            await self.client.update(NODES, updated)
        except errors.NotFound:
            return
        log.info("node %s: %s taint %s", node["metadata"]["name"], SHUTDOWN,
                 "added" if present else "removed")
