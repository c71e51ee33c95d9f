"""The `local` cloud provider: load balancer addresses from a pool, machines from a directory.

For VMs and one-machine clusters, where nothing but the operator knows the machines. Its
--cloud-config is YAML (or JSON); each part is optional and an unknown key is an error:

    loadBalancer:
      addresses: ["10.254.1.0/24", "192.168.1.240-192.168.1.250"]  # CIDRs, ranges, addresses
    instances:
      directory: /var/lib/pinnace/cloud/instances

Load balancers: a Service gets one address of the pool (its spec.loadBalancerIP if set, else the
lowest free one) in status.loadBalancer.ingress; every node's netproxy answers on it (netproxy's
rules for load balancer IPs), so the operator routes the pool to any node (`pinnace up` routes
it to node1). The pool lives in memory and is rebuilt from the Services themselves: an address a
Service's status already shows is adopted (the service controller asks about every load balancer
before ensuring any), so a restart or a new leader never hands an address out twice.

Instances: the directory holds one file per machine, named after its node (files starting with
"." are ignored, so write `.<name>.tmp` and rename). A node whose file is missing does not exist
(the cloud node lifecycle controller deletes it once NotReady); a missing directory is an error,
never "no machines". A file is empty or a YAML mapping, every key optional:

    addresses: [{type: InternalIP, address: 10.254.0.11}, {type: Hostname, address: node1}]
    instanceType: vm
    zone: zone-a
    region: local
    shutdown: false          # true: the machine is off (the node is tainted, not deleted)
    labels: {example.com/rack: r1}

The operator, `pinnace up` or the Vagrant provisioning maintains it. Routes: none (netproxy
already installs host-gw routes between nodes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controlplane.cloud.pool import AddressPool
from controlplane.cloud.provider import (
    CloudError,
    InstanceMetadata,
    InstancesV2,
    LoadBalancer,
    NodeAddress,
    Routes,
    load_balancer_name,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
NAME = "local"
PROVIDER_PREFIX = f"{NAME}://"
_KEYS = {"": {"loadBalancer", "instances"}, "loadBalancer": {"addresses"},
         "instances": {"directory"}}
_INSTANCE_KEYS = {"addresses", "instanceType", "zone", "region", "shutdown", "labels"}


@dataclass(frozen=True)
class LocalConfig:
    """The parsed --cloud-config."""

    addresses: tuple[str, ...] = ()  # the load balancer pool's ranges; () for none
    instances_dir: Path | None = None


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: want a mapping, got {type(value).__name__}")
    return value


def parse_config(text: str) -> LocalConfig:
    """The local provider's config; raise ValueError with a one-line reason."""
    try:
        raw = _mapping(yaml.safe_load(text) if text.strip() else {}, "cloud config")
    except yaml.YAMLError as exc:
        raise ValueError(f"cloud config is not YAML: {' '.join(str(exc).split())}") from None
    sections = {"": raw, **{k: _mapping(raw.get(k), k) for k in ("loadBalancer", "instances")}}
    for section, known in _KEYS.items():
        unknown = sorted(set(map(str, sections[section])) - known)
        if unknown:
            where = f"cloud config {section}" if section else "cloud config"
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: "
                             f"{', '.join(sorted(known))})")
    addresses = sections["loadBalancer"].get("addresses") or []
    if isinstance(addresses, str):
        addresses = [addresses]
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise ValueError("cloud config loadBalancer.addresses: want a list of ranges")
    if "loadBalancer" in raw:
        AddressPool.parse(addresses)  # validates: empty, bad or overlapping ranges
    directory = sections["instances"].get("directory")
    if "instances" in raw and not (isinstance(directory, str) and directory):
        raise ValueError("cloud config instances.directory: want the path of a directory")
    return LocalConfig(tuple(addresses), Path(directory) if directory else None)


class LocalLoadBalancer:
    """Load balancers as addresses of one pool, owned by "namespace/name" of each Service."""

    def __init__(self, pool: AddressPool) -> None:
        self.pool = pool
        self.hosts: dict[str, list[str]] = {}  # owner -> node names, as last told

    def __repr__(self) -> str:
        return f"<LocalLoadBalancer {self.pool!r}>"

    def get_load_balancer_name(self, cluster_name: str, service: Object) -> str:
        return load_balancer_name(service)

    async def get_load_balancer(self, cluster_name: str, service: Object
                                ) -> tuple[Object | None, bool]:
        owner = _owner(service)
        self._adopt(owner, service)
        held = self.pool.held_by(owner)
        return (_status(held), True) if held else (None, False)

    async def ensure_load_balancer(self, cluster_name: str, service: Object,
                                   nodes: Sequence[Object]) -> Object:
        owner = _owner(service)
        self._adopt(owner, service)
        wanted = str((service.get("spec") or {}).get("loadBalancerIP") or "")
        held = self.pool.held_by(owner)
        if wanted:
            address = self.pool.allocate(owner, wanted)
        elif held:
            address = held[0]
        else:
            address = self.pool.allocate(owner)
        for freed in self.pool.release(owner, keep=[address]):
            log.info("service %s: address %s released (now %s)", owner, freed, address)
        self.hosts[owner] = _names(nodes)
        return _status([address])

    async def update_load_balancer(self, cluster_name: str, service: Object,
                                   nodes: Sequence[Object]) -> None:
        self.hosts[_owner(service)] = _names(nodes)  # every node's netproxy answers anyway

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Object) -> None:
        owner = _owner(service)
        self.hosts.pop(owner, None)
        for freed in self.pool.release(owner):
            log.info("service %s: address %s released", owner, freed)

    def _adopt(self, owner: str, service: Object) -> None:
        for ip in ingress_ips(service):
            if self.pool.holder(ip) is None and self.pool.adopt(owner, ip):
                log.info("service %s: address %s adopted from its status", owner, ip)


class LocalInstances:
    """Machines as files of a directory, named after their nodes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"<LocalInstances {self.directory}>"

    async def instance_exists(self, node: Object) -> bool:
        names = await asyncio.to_thread(self._names)
        return machine_name(node) in names

    async def instance_shutdown(self, node: Object) -> bool:
        info = await asyncio.to_thread(self._read, machine_name(node), False)
        return info is not None and info.get("shutdown") is True

    async def instance_metadata(self, node: Object) -> InstanceMetadata:
        name = machine_name(node)
        info = await asyncio.to_thread(self._read, name, True)
        assert info is not None
        return metadata_of(name, info, self.directory)

    def _names(self) -> set[str]:
        try:
            return {p.name for p in self.directory.iterdir() if not p.name.startswith(".")}
        except OSError as exc:
            raise CloudError(f"instances directory {self.directory}: "
                             f"{exc.strerror or exc}") from None

    def _read(self, name: str, required: bool) -> Object | None:
        path = self.directory / name
        if name.startswith(".") or "/" in name or name not in self._names():
            if required:
                raise CloudError(f"instance {name} not found in {self.directory}")
            return None
        try:
            text = path.read_text()
            return _mapping(yaml.safe_load(text) if text.strip() else {}, str(path))
        except (OSError, yaml.YAMLError, ValueError) as exc:
            raise CloudError(f"instance file {path}: {' '.join(str(exc).split())}") from None


def machine_name(node: Object) -> str:
    """The machine a node runs on: its providerID's name (local://NAME), else the node name."""
    provider_id = str((node.get("spec") or {}).get("providerID") or "")
    if provider_id.startswith(PROVIDER_PREFIX):
        return provider_id[len(PROVIDER_PREFIX):]
    return str(node["metadata"]["name"])


def metadata_of(name: str, info: Object, where: Path) -> InstanceMetadata:
    """An instance file's content as InstanceMetadata; raise CloudError on a bad file."""
    unknown = sorted(set(map(str, info)) - _INSTANCE_KEYS)
    if unknown:
        raise CloudError(f"instance file {where / name}: unknown key {unknown[0]!r}")
    addresses = []
    for entry in info.get("addresses") or []:
        if not (isinstance(entry, dict) and entry.get("type") and entry.get("address")):
            raise CloudError(f"instance file {where / name}: each address wants a type and an "
                             "address")
        addresses.append(NodeAddress(str(entry["type"]), str(entry["address"])))
    labels = info.get("labels") or {}
    if not isinstance(labels, dict):
        raise CloudError(f"instance file {where / name}: labels: want a mapping")
    return InstanceMetadata(provider_id=PROVIDER_PREFIX + name,
                            instance_type=str(info.get("instanceType") or ""),
                            node_addresses=tuple(addresses), zone=str(info.get("zone") or ""),
                            region=str(info.get("region") or ""),
                            additional_labels={str(k): str(v) for k, v in labels.items()})


class LocalProvider:
    """The local cloud: the parts its config names."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self._balancer = (LocalLoadBalancer(AddressPool.parse(config.addresses))
                          if config.addresses else None)
        self._instances = (LocalInstances(config.instances_dir)
                           if config.instances_dir else None)

    def __repr__(self) -> str:
        return f"<LocalProvider {self._balancer!r} {self._instances!r}>"

    def provider_name(self) -> str:
        return NAME

    def load_balancer(self) -> LoadBalancer | None:
        return self._balancer

    def instances_v2(self) -> InstancesV2 | None:
        return self._instances

    def routes(self) -> Routes | None:
        return None


def from_config(text: str) -> LocalProvider:
    """The registry's factory: a provider from the --cloud-config text."""
    return LocalProvider(parse_config(text))


def ingress_ips(service: Object) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if isinstance(i, dict) and i.get("ip")]


def _owner(service: Object) -> str:
    m = service["metadata"]
    return f"{m.get('namespace', '')}/{m['name']}"


def _status(addresses: list[str]) -> Object:
    return {"ingress": [{"ip": a, "ipMode": "VIP"} for a in addresses]}


def _names(nodes: Sequence[Object]) -> list[str]:
    return sorted(str(n["metadata"]["name"]) for n in nodes)
