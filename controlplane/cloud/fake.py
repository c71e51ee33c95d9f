"""A fake cloud for unit tests: in-memory load balancers and machines, every call recorded.

`FakeCloud(addresses=[...], machines={...})` hands out the given addresses in order; `machines`
maps a machine name to its metadata (None: the machine exists, nothing known), `shutdown` names
the machines that are off, and `fail[method]` makes that method raise. Parts can be switched off
(`load_balancers=False`, `instances=False`) to test what runs without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.cloud.provider import (
    CloudError,
    InstanceMetadata,
    InstancesV2,
    LoadBalancer,
    Routes,
    load_balancer_name,
)

Object = dict[str, Any]


@dataclass
class FakeCloud:
    addresses: list[str] = field(default_factory=list)  # free addresses, handed out in order
    machines: dict[str, InstanceMetadata | None] = field(default_factory=dict)
    shutdown: set[str] = field(default_factory=set)
    fail: dict[str, Exception] = field(default_factory=dict)  # method name -> raised
    load_balancers: bool = True
    instances: bool = True
    balancers: dict[str, str] = field(default_factory=dict)  # "ns/name" -> address
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, object name)

    def provider_name(self) -> str:
        return "fake"

    def load_balancer(self) -> LoadBalancer | None:
        return self if self.load_balancers else None

    def instances_v2(self) -> InstancesV2 | None:
        return self if self.instances else None

    def routes(self) -> Routes | None:
        return None

    def _call(self, method: str, obj: Object) -> str:
        m = obj["metadata"]
        name = f"{m['namespace']}/{m['name']}" if m.get("namespace") else str(m["name"])
        self.calls.append((method, name))
        if method in self.fail:
            raise self.fail[method]
        return name

    # -- LoadBalancer ---------------------------------------------------------------------------

    def get_load_balancer_name(self, cluster_name: str, service: Object) -> str:
        return load_balancer_name(service)

    async def get_load_balancer(self, cluster_name: str, service: Object
                                ) -> tuple[Object | None, bool]:
        key = self._call("get_load_balancer", service)
        if key not in self.balancers:
            return None, False
        return {"ingress": [{"ip": self.balancers[key]}]}, True

    async def ensure_load_balancer(self, cluster_name: str, service: Object,
                                   nodes: Sequence[Object]) -> Object:
        key = self._call("ensure_load_balancer", service)
        if key not in self.balancers:
            if not self.addresses:
                raise CloudError("no free address")
            self.balancers[key] = self.addresses.pop(0)
        return {"ingress": [{"ip": self.balancers[key]}]}

    async def update_load_balancer(self, cluster_name: str, service: Object,
                                   nodes: Sequence[Object]) -> None:
        self._call("update_load_balancer", service)

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Object) -> None:
        key = self._call("ensure_load_balancer_deleted", service)
        address = self.balancers.pop(key, None)
        if address is not None:
            self.addresses.insert(0, address)

    # -- InstancesV2 ----------------------------------------------------------------------------

    async def instance_exists(self, node: Object) -> bool:
        return self._call("instance_exists", node) in self.machines

    async def instance_shutdown(self, node: Object) -> bool:
        return self._call("instance_shutdown", node) in self.shutdown

    async def instance_metadata(self, node: Object) -> InstanceMetadata:
        name = self._call("instance_metadata", node)
        if name not in self.machines:
            raise CloudError(f"instance {name} not found")
        return self.machines[name] or InstanceMetadata(provider_id=f"fake://{name}")
