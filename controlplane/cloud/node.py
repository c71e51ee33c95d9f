"""The cloud node controller: initialises nodes that wait for the cloud.

A node registered by an agent running with an external cloud provider carries the taint
`node.cloudprovider.kubernetes.io/uninitialized` (NoSchedule); nothing lands on it until this
controller has asked the provider's InstancesV2 for its metadata and written it: status.addresses
(through nodes/status; only the address the agent asked for in the
`alpha.kubernetes.io/provided-node-ip` annotation, plus host names, when it set one),
spec.providerID (if empty), the instance-type/zone/region labels and any the provider adds; the
taint goes last, in the same write as the labels. Then a Normal event Synced. A failure (no such
machine, a bad instance file) is a Warning event and a retry with backoff; the node stays
tainted. Nodes without the taint are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controlplane.api import errors
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.rest import NODES
from controlplane.cloud.provider import CloudProvider, InstanceMetadata, InstancesV2, instances_of
from controlplane.controllers.base import Controller, ControllerContext, SyncError, deep_copy

log = logging.getLogger(__name__)
Object = dict[str, Any]
UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
PROVIDED_NODE_IP = "alpha.kubernetes.io/provided-node-ip"
INSTANCE_TYPE = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
ZONE = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
REGION = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")


def is_uninitialized(node: Object) -> bool:
    return any(t.get("key") == UNINITIALIZED
               for t in (node.get("spec") or {}).get("taints") or [])


def node_addresses(node: Object, meta: InstanceMetadata) -> list[Object] | None:
    """status.addresses from the provider's (None: leave them); ValueError when the node's
    provided IP is not among them."""
    given = [a.wire() for a in meta.node_addresses]
    if not given:
        return None
    current = (node.get("status") or {}).get("addresses") or []
    if not any(a["type"] == "Hostname" for a in given):
        given += [a for a in current if a.get("type") == "Hostname"]
    provided = ((node["metadata"].get("annotations") or {}).get(PROVIDED_NODE_IP) or "")
    if not provided:
        return given
    wanted = [ip.strip() for ip in provided.split(",") if ip.strip()]
    matching = [a for ip in wanted for a in given if a["address"] == ip]
    if not matching:
        raise ValueError(f"failed to get node address from cloud provider that matches ip: "
                         f"{provided}")
    return matching + [a for a in given if a["type"] == "Hostname" and a not in matching]


def initialized(node: Object, meta: InstanceMetadata) -> Object:
    """A copy of `node` with the provider's ID and labels, and without the taint."""
    updated = deep_copy(node)
    spec = updated.setdefault("spec", {})
    if not spec.get("providerID") and meta.provider_id:
        spec["providerID"] = meta.provider_id
    labels = updated["metadata"].setdefault("labels", {})
    for keys, value in ((INSTANCE_TYPE, meta.instance_type), (ZONE, meta.zone),
                        (REGION, meta.region)):
        if value:
            labels.update(dict.fromkeys(keys, value))
    labels.update(meta.additional_labels)
    taints = [t for t in spec.get("taints") or [] if t.get("key") != UNINITIALIZED]
    if taints:
        spec["taints"] = taints
    else:
        spec.pop("taints", None)
    return updated


class CloudNodeController(Controller):
    name = "cloud-node"
    component = "cloud-node-controller"
    kind = "Node"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext, cloud: CloudProvider) -> None:
        super().__init__(ctx)
        self.instances: InstancesV2 = instances_of(cloud)
        self.nodes = ctx.informers.lister(NODES)
        self.nodes.informer.add_handlers(on_add=self._seen,
                                         on_update=lambda _old, cur: self._seen(cur))

    def _seen(self, node: Object) -> None:
        if is_uninitialized(node):
            self.enqueue(node)

    async def sync(self, key: str) -> None:
        node = self.nodes.get("", key)
        if node is None or not is_uninitialized(node):
            return
        try:
            meta = await self.instances.instance_metadata(node)
            addresses = node_addresses(node, meta)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on the node, retried
            self.event(node, WARNING, "InitializationFailed",
                       f"Failed to initialize node {key} from the cloud provider: {exc}")
            raise SyncError(f"node {key}: failed to initialize: {exc}") from None
        try:
            if addresses is not None and addresses != (node.get("status") or {}).get(
                    "addresses"):
                node = await self.client.patch(NODES, key, {"status": {"addresses": addresses}},
                                               subresource="status")
            await self.client.update(NODES, initialized(node, meta))
        except errors.NotFound:
            return
        log.info("node %s initialized: providerID %s, addresses %s", key,
                 node.get("spec", {}).get("providerID") or meta.provider_id,
                 ", ".join(a["address"] for a in addresses or []) or "unchanged")
        self.event(node, NORMAL, "Synced", "Node synced successfully")
