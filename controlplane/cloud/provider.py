"""The cloud provider interface: what the cloud controllers ask of a cloud.

As Kubernetes' cloud-provider package: a `CloudProvider` names itself and offers up to three
parts, each optional (None: this cloud has none, and the controllers needing it do not run):
`LoadBalancer` (Services of type LoadBalancer), `InstancesV2` (does a node's machine exist, is it
shut down, its addresses, zone and type) and `Routes` (pod CIDR routes between nodes). Every
method is async (a real cloud is an API away) and raises on failure, best a `CloudError` whose
message says why: the controllers put it in an event and retry with backoff. Objects passed in
are the controllers' cached API objects (wire-shaped dicts): never change them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Object = dict[str, Any]


class CloudError(Exception):
    """A failure the provider explains; its message goes into the object's events."""


@dataclass(frozen=True)
class NodeAddress:
    """One entry of a node's status.addresses (type: InternalIP, ExternalIP, Hostname, ...)."""

    type: str
    address: str

    def wire(self) -> Object:
        return {"type": self.type, "address": self.address}


@dataclass(frozen=True)
class InstanceMetadata:
    """What the cloud knows of a node's machine (Kubernetes' cloudprovider.InstanceMetadata)."""

    provider_id: str  # "<provider>://<id>", for spec.providerID
    instance_type: str = ""
    node_addresses: tuple[NodeAddress, ...] = ()
    zone: str = ""
    region: str = ""
    additional_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """A route sending `destination_cidr` (a node's pod CIDR) to `target_node`."""

    name: str
    target_node: str
    destination_cidr: str
    blackhole: bool = False  # the target node is gone; the route should be removed


class LoadBalancer(Protocol):
    """Load balancers for Services of type LoadBalancer (without a loadBalancerClass)."""

    def get_load_balancer_name(self, cluster_name: str, service: Object) -> str:
        """The cloud's name for the service's load balancer."""
        ...

    async def get_load_balancer(self, cluster_name: str, service: Object
                                ) -> tuple[Object | None, bool]:
        """The load balancer's status ({"ingress": [...]}) and whether it exists."""
        ...

    async def ensure_load_balancer(self, cluster_name: str, service: Object,
                                   nodes: Sequence[Object]) -> Object:
        """Create or update the load balancer; return its status ({"ingress": [...]})."""
        ...

    async def update_load_balancer(self, cluster_name: str, service: Object,
                                   nodes: Sequence[Object]) -> None:
        """Point the existing load balancer at these nodes."""
        ...

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Object) -> None:
        """Delete the load balancer if it exists (a missing one is a success)."""
        ...


class InstancesV2(Protocol):
    """The machines behind nodes, looked up by the Node object (its providerID or name)."""

    async def instance_exists(self, node: Object) -> bool:
        """Whether the node's machine still exists (False deletes a NotReady node)."""
        ...

    async def instance_shutdown(self, node: Object) -> bool:
        """Whether the node's machine is shut down (but exists)."""
        ...

    async def instance_metadata(self, node: Object) -> InstanceMetadata:
        """The node's provider ID, addresses, type, zone and region."""
        ...


class Routes(Protocol):
    """Routes for pod CIDRs in the cloud's network."""

    async def list_routes(self, cluster_name: str) -> list[Route]: ...

    async def create_route(self, cluster_name: str, name_hint: str, route: Route) -> None: ...

    async def delete_route(self, cluster_name: str, route: Route) -> None: ...


class CloudProvider(Protocol):
    """A cloud: its name and the parts it implements (None: not this cloud's business)."""

    def provider_name(self) -> str: ...

    def load_balancer(self) -> LoadBalancer | None: ...

    def instances_v2(self) -> InstancesV2 | None: ...

    def routes(self) -> Routes | None: ...


def instances_of(cloud: CloudProvider) -> InstancesV2:
    """The cloud's InstancesV2, for the controllers that need it (ValueError: it has none)."""
    instances = cloud.instances_v2()
    if instances is None:
        raise ValueError(f"cloud provider {cloud.provider_name()} has no instances")
    return instances


def load_balancer_name(service: Object) -> str:
    """Kubernetes' DefaultLoadBalancerName: "a" + the service's uid without dashes, at most 32."""
    uid = str((service.get("metadata") or {}).get("uid") or "").replace("-", "")
    return ("a" + uid)[:32]
