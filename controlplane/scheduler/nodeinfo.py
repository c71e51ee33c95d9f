"""A node as the scheduler sees it (`NodeInfo`), and the whole cluster for one cycle (`Snapshot`).

A NodeInfo aggregates the node object with every pod bound to it, including pods that are bound
but not running yet and pods the scheduler has only assumed there: summed requests (exact, and
"non-zero" for scoring), used host ports, and how many of its pods carry (anti-)affinity. The
scheduler cache owns and mutates NodeInfos between cycles; a cycle only reads them. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controlplane.scheduler.podindex import PodIndex
from controlplane.scheduler.podinfo import PodInfo, Resources

Object = dict[str, Any]
ANY_IP = "0.0.0.0"


class HostPorts:
    """Host ports in use on a node: hostIP -> (protocol, port) -> how many pods use it."""

    def __init__(self) -> None:
        self._used: dict[str, dict[tuple[str, int], int]] = {}

    def add(self, ip: str, protocol: str, port: int, count: int = 1) -> None:
        by_port = self._used.setdefault(ip or ANY_IP, {})
        key = (protocol or "TCP", port)
        by_port[key] = by_port.get(key, 0) + count
        if by_port[key] <= 0:
            del by_port[key]

    def conflicts(self, ip: str, protocol: str, port: int) -> bool:
        """Whether (ip, protocol, port) clashes with a used one (0.0.0.0 clashes with all IPs)."""
        if port <= 0:
            return False
        ip, key = ip or ANY_IP, (protocol or "TCP", port)
        if ip == ANY_IP:
            return any(key in by_port for by_port in self._used.values())
        return key in self._used.get(ANY_IP, {}) or key in self._used.get(ip, {})

    def copy(self) -> HostPorts:
        clone = HostPorts()
        clone._used = {ip: dict(ports) for ip, ports in self._used.items()}
        return clone


def ready_status(node: Object) -> str:
    """The node's Ready condition status ("True", "False", "Unknown"), "" when it has none."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status") or "")
    return ""


def normalized_image_name(name: str) -> str:
    """`name:latest` for an untagged image, as ImageLocality compares them."""
    return name + ":latest" if name.rfind(":") <= name.rfind("/") else name


class NodeInfo:
    """One node and the pods bound (or assumed) to it. `node` is None until the node is known."""

    def __init__(self, name: str, node: Object | None = None) -> None:
        self.name = name
        self.node: Object | None = None
        self.labels: dict[str, str] = {}
        self.taints: list[Object] = []
        self.unschedulable = False
        self.ready = ""
        self.allocatable = Resources()
        self.images: dict[str, int] = {}  # normalized image name -> size in bytes
        self.pods: dict[str, PodInfo] = {}  # pod key -> pod, in binding order
        self.requested = Resources()
        self.non_zero_requested = Resources()
        self.used_ports = HostPorts()
        self.pods_with_affinity = 0
        self.pods_with_required_anti_affinity = 0
        self.generation = 0
        if node is not None:
            self.set_node(node)

    def __repr__(self) -> str:
        return (f"<NodeInfo {self.name} pods={len(self.pods)} "
                f"cpu={self.requested.milli_cpu}m/{self.allocatable.milli_cpu}m "
                f"memory={self.requested.memory}/{self.allocatable.memory}>")

    def set_node(self, node: Object) -> None:
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get(
            "status") or {}
        self.node = node
        self.labels = dict(meta.get("labels") or {})
        self.taints = list(spec.get("taints") or [])
        self.unschedulable = bool(spec.get("unschedulable"))
        self.ready = ready_status(node)
        self.allocatable = Resources.from_list(status.get("allocatable"))
        self.images = {}
        for image in status.get("images") or []:
            for name in image.get("names") or []:
                self.images[str(name)] = int(image.get("sizeBytes") or 0)
        self.generation += 1

    def add_pod(self, pod: PodInfo) -> None:
        if pod.key in self.pods:
            self.remove_pod(pod.key)
        self.pods[pod.key] = pod
        self._account(pod, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            self._account(pod, -1)
        return pod

    def _account(self, pod: PodInfo, sign: int) -> None:
        self.requested.add(pod.requests, sign)
        self.non_zero_requested.milli_cpu += sign * pod.non_zero_requests.milli_cpu
        self.non_zero_requested.memory += sign * pod.non_zero_requests.memory
        for ip, protocol, port in pod.host_ports:
            self.used_ports.add(ip, protocol, port, sign)
        if pod.has_affinity:
            self.pods_with_affinity += sign
        if pod.has_required_anti_affinity:
            self.pods_with_required_anti_affinity += sign
        self.generation += 1

    def clone(self) -> NodeInfo:
        """A copy whose pod set can change without touching this one (preemption dry runs)."""
        clone = NodeInfo(self.name)
        clone.node, clone.labels, clone.taints = self.node, self.labels, self.taints
        clone.unschedulable, clone.ready = self.unschedulable, self.ready
        clone.allocatable, clone.images = self.allocatable, self.images
        clone.pods = dict(self.pods)
        clone.requested = self.requested.copy()
        clone.non_zero_requested = self.non_zero_requested.copy()
        clone.used_ports = self.used_ports.copy()
        clone.pods_with_affinity = self.pods_with_affinity
        clone.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity
        return clone


@dataclass
class Snapshot:
    """Everything one scheduling cycle may read: nodes with their pods, and a few listers."""

    nodes: list[NodeInfo]
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    services: dict[str, list[Object]] = field(default_factory=dict)  # namespace -> services
    replica_sets: dict[str, Object] = field(default_factory=dict)  # "ns/name" -> ReplicaSet
    pods: PodIndex | None = None  # the cache's live index; None: built from the nodes' pods
    by_name: dict[str, NodeInfo] = field(init=False)
    image_nodes: dict[str, int] = field(init=False)  # image name -> nodes that have it
    prefer_no_schedule: bool = field(init=False)  # whether any node has such a taint

    def __post_init__(self) -> None:
        self.by_name = {n.name: n for n in self.nodes}
        if self.pods is None:
            self.pods = PodIndex((pod, node.name) for node in self.nodes
                                 for pod in node.pods.values())
        self.prefer_no_schedule = any(t.get("effect") == "PreferNoSchedule"
                                      for n in self.nodes for t in n.taints)
        self.image_nodes = {}
        for node in self.nodes:
            for image in node.images:
                self.image_nodes[image] = self.image_nodes.get(image, 0) + 1

    @property
    def index(self) -> PodIndex:
        assert self.pods is not None  # set by __post_init__
        return self.pods

    def labels_of_namespace(self, namespace: str) -> dict[str, str]:
        return self.namespace_labels.get(namespace) or {}

    def with_node(self, replacement: NodeInfo) -> Snapshot:
        """This snapshot with one node swapped for `replacement` (same name)."""
        nodes = [replacement if n.name == replacement.name else n for n in self.nodes]
        return Snapshot(nodes, self.namespace_labels, self.services, self.replica_sets)
