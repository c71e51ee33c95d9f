"""A pod as the scheduler sees it: parsed once, then read by every plugin in every cycle.

`PodInfo` holds the pod's resource requests (exact, and with the 100m / 200Mi "non-zero" defaults
that scoring uses), host ports, tolerations and inter-pod affinity terms, computed the way
Kubernetes' resourcehelper.PodRequests and framework.NewPodInfo do: containers summed, init
containers as a floor (restartable sidecars added), pod overhead added. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controlplane.api import quantity
from controlplane.api.errors import APIError
from controlplane.api.selectors import LabelSelector

Object = dict[str, Any]
CPU, MEMORY, EPHEMERAL_STORAGE, PODS = "cpu", "memory", "ephemeral-storage", "pods"
DEFAULT_MILLI_CPU = 100  # schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY = 200 * 1024 * 1024  # schedutil.DefaultMemoryRequest


def is_scalar_resource(name: str) -> bool:
    """Extended, hugepages and attachable-volume resources (counted as plain integers)."""
    if name.startswith(("hugepages-", "attachable-volumes-")):
        return True
    return "/" in name and not name.startswith("requests.")


_PARSED: dict[tuple[Any, bool], int] = {}  # quantity -> value: every replica says "250m"


def _parsed(raw: Any, *, milli: bool = False) -> int:
    """A quantity's value (millis for cpu), memoised; a bad one counts as 0."""
    key = (raw, milli)
    try:
        return _PARSED[key]
    except KeyError:
        pass
    except TypeError:  # unhashable: not a quantity anyway
        return 0
    try:
        value = quantity.milli_value(raw) if milli else quantity.value(raw)
    except quantity.QuantityError:
        value = 0
    if len(_PARSED) >= 4096:
        _PARSED.clear()
    _PARSED[key] = value
    return value


@dataclass
class Resources:
    """A resource vector: millicores, bytes, pod slots and extended resources."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    pods: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_list(cls, resources: Object | None) -> Resources:
        """Parse a ResourceList (`{"cpu": "2", "memory": "4Gi", ...}`); bad values count as 0."""
        result = cls()
        for name, raw in (resources or {}).items():
            if name == CPU:
                result.milli_cpu = _parsed(raw, milli=True)
            elif name == MEMORY:
                result.memory = _parsed(raw)
            elif name == EPHEMERAL_STORAGE:
                result.ephemeral_storage = _parsed(raw)
            elif name == PODS:
                result.pods = _parsed(raw)
            elif is_scalar_resource(name):
                result.scalar[name] = _parsed(raw)
        return result

    def add(self, other: Resources, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        self.pods += sign * other.pods
        for name, amount in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + sign * amount

    def floor(self, other: Resources) -> None:
        """Raise every amount to at least `other`'s (init containers run before the rest)."""
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        for name, amount in other.scalar.items():
            self.scalar[name] = max(self.scalar.get(name, 0), amount)

    def copy(self) -> Resources:
        return Resources(self.milli_cpu, self.memory, self.ephemeral_storage, self.pods,
                         dict(self.scalar))

    def is_empty(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage
                    or any(self.scalar.values()))


def _container_requests(container: Object, non_zero: bool) -> Resources:
    resources = container.get("resources") or {}
    # API defaulting copies limits into missing requests; do the same for pods written without.
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    result = Resources.from_list(merged)
    if non_zero:
        if CPU not in merged:
            result.milli_cpu = DEFAULT_MILLI_CPU
        if MEMORY not in merged:
            result.memory = DEFAULT_MEMORY
    return result


def pod_requests(spec: Object, *, non_zero: bool = False) -> Resources:
    """Sum a PodSpec's requests as resourcehelper.PodRequests does (`non_zero`: with defaults)."""
    total = Resources()
    for container in spec.get("containers") or []:
        total.add(_container_requests(container, non_zero))
    sidecars = Resources()
    init_floor = Resources()
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container, non_zero)
        if container.get("restartPolicy") == "Always":
            total.add(requests)
            sidecars.add(requests)
            init_floor.floor(sidecars)
        else:
            requests.add(sidecars)
            init_floor.floor(requests)
    total.floor(init_floor)
    total.add(Resources.from_list(spec.get("overhead")))
    return total


@dataclass(frozen=True)
class AffinityTerm:
    """A PodAffinityTerm, parsed: which pods (namespaces, selector) and the topology key."""

    namespaces: frozenset[str]
    selector: LabelSelector
    topology_key: str
    namespace_selector: LabelSelector
    weight: int = 0  # for preferred terms

    def matches(self, pod: PodInfo, namespace_labels: dict[str, str]) -> bool:
        """Whether `pod` is one of the pods this term is about."""
        in_scope = (pod.namespace in self.namespaces
                    or self.namespace_selector.matches(namespace_labels))
        return in_scope and self.selector.matches(pod.labels)


def _affinity_term(namespace: str, term: Object, weight: int = 0) -> AffinityTerm:
    namespaces = term.get("namespaces") or []
    raw_ns_selector = term.get("namespaceSelector")
    names = frozenset(namespaces) if namespaces or raw_ns_selector is not None else frozenset(
        [namespace])
    return AffinityTerm(names, LabelSelector.from_object(term.get("labelSelector")),
                        str(term.get("topologyKey") or ""),
                        LabelSelector.from_object(raw_ns_selector), weight)


def _terms(namespace: str, affinity: Object | None) -> tuple[list[AffinityTerm],
                                                              list[AffinityTerm]]:
    required = [_affinity_term(namespace, t) for t in
                (affinity or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []]
    preferred = []
    for weighted in (affinity or {}).get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        weight = int(weighted.get("weight") or 0)
        if weight:
            preferred.append(_affinity_term(namespace, weighted.get("podAffinityTerm") or {},
                                            weight))
    return required, preferred


def _host_ports(spec: Object) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) wanted by the containers; hostNetwork defaults hostPort."""
    found = []
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            host_port = int(port.get("hostPort") or 0)
            if not host_port and spec.get("hostNetwork"):
                host_port = int(port.get("containerPort") or 0)
            if host_port > 0:
                found.append((str(port.get("hostIP") or "0.0.0.0"),
                              str(port.get("protocol") or "TCP"), host_port))
    return found


class PodInfo:
    """A parsed pod. Treat `pod` as read-only: informers and caches share it."""

    def __init__(self, pod: Object) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.namespace = str(meta.get("namespace") or "")
        self.name = str(meta.get("name") or "")
        self.key = f"{self.namespace}/{self.name}"
        self.uid = str(meta.get("uid") or "")
        self.labels: dict[str, str] = dict(meta.get("labels") or {})
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.node_name = str(spec.get("nodeName") or "")
        self.priority = int(spec.get("priority") or 0)
        self.requests = pod_requests(spec)
        self.non_zero_requests = pod_requests(spec, non_zero=True)
        self.tolerations: list[Object] = list(spec.get("tolerations") or [])
        self.host_ports = _host_ports(spec)
        affinity = spec.get("affinity") or {}
        self.parse_error = ""
        try:
            self.required_affinity, self.preferred_affinity = _terms(
                self.namespace, affinity.get("podAffinity"))
            self.required_anti_affinity, self.preferred_anti_affinity = _terms(
                self.namespace, affinity.get("podAntiAffinity"))
        except APIError as exc:
            self.parse_error = str(exc)
            self.required_affinity, self.preferred_affinity = [], []
            self.required_anti_affinity, self.preferred_anti_affinity = [], []

    def __repr__(self) -> str:
        return f"<PodInfo {self.key} node={self.node_name or '-'}>"

    @property
    def spec(self) -> Object:
        spec: Object = self.pod.get("spec") or {}
        return spec

    @property
    def has_affinity(self) -> bool:
        return bool(self.required_affinity or self.preferred_affinity
                    or self.required_anti_affinity or self.preferred_anti_affinity)

    @property
    def has_required_anti_affinity(self) -> bool:
        return bool(self.required_anti_affinity)
