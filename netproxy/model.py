"""What the proxy knows about a Service port and an endpoint, parsed from the API's dicts.

Parsing is where bad input stops: a Service or EndpointSlice field that makes no sense (an
invalid IP, a port out of range, a protocol the kernel lacks) drops that port, address or
endpoint with a warning naming the object, and the rest of the object is still used. Everything
here is immutable, so the renderer can read it from another thread while the event loop records
the next changes. IPv4 only for now: IPv6 addresses are skipped (at debug level).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
Object = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_STICKY_SECONDS = 10800
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True)
class ServicePortName:
    """One port of one Service: the key of every per-port map (kube-proxy's ServicePortName)."""

    namespace: str
    name: str
    port: str  # the Service port's name ("" for a single unnamed port)
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" + (f":{self.port}" if self.port else "")

    @property
    def service(self) -> str:
        """The Service's `namespace/name`."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePort:
    """Everything the rules need about one Service port."""

    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str = "TCP"
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    sticky_seconds: int = 0  # sessionAffinity ClientIP timeout; 0: no affinity
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local (and externally accessible)

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        # External traffic under policy Local still needs the cluster endpoints, for the
        # short-circuit of pod -> external IP traffic.
        return not self.internal_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or (self.external_local and self.externally_accessible)


@dataclass(frozen=True)
class Endpoint:
    """One address:port behind a Service port, with its EndpointSlice conditions."""

    ip: str
    port: int
    node_name: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class SlicePort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class EndpointSlice:
    """A parsed EndpointSlice: its Service, its ports and its usable addresses."""

    namespace: str
    name: str
    service: str  # the Service's name (label kubernetes.io/service-name)
    ports: tuple[SlicePort, ...]
    endpoints: tuple[Endpoint, ...] = field(default=())  # port 0: filled per slice port


def _ipv4(value: object) -> str | None:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return str(address) if address.version == 4 else None


def _port(value: object, low: int = 1) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and \
        low <= value <= 65535 else None


def _cidr(value: object) -> str | None:
    try:
        net = ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None
    return str(net) if net.version == 4 else None


def parse_service(obj: Object, *, protocols: tuple[str, ...] = PROTOCOLS) -> list[ServicePort]:
    """The proxied ports of a Service; [] for headless and ExternalName services.

    `protocols` are those the kernel can filter; ports with another protocol are skipped.
    """
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    where = f"service {namespace}/{name}"
    cluster_ip = spec.get("clusterIP")
    if spec.get("type") == "ExternalName" or cluster_ip in (None, "", "None"):
        return []
    ip = _ipv4(cluster_ip)
    if ip is None:
        if ":" not in str(cluster_ip):  # an IPv6 ClusterIP is valid, only not proxied yet
            log.warning("%s: invalid clusterIP %r; skipping it", where, cluster_ip)
        return []
    external_ips = _valid(spec.get("externalIPs"), _ipv4, where, "externalIP")
    lb_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()
    if spec.get("type") == "LoadBalancer":
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb_ips = _valid([i.get("ip") for i in ingress
                         if isinstance(i, dict) and i.get("ip") and i.get("ipMode") != "Proxy"],
                        _ipv4, where, "loadBalancer ingress IP")
        source_ranges = _valid(spec.get("loadBalancerSourceRanges"), _cidr, where,
                               "loadBalancerSourceRange")
    sticky = 0
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
            "timeoutSeconds")
        valid = isinstance(timeout, int) and not isinstance(timeout, bool) and \
            0 < timeout <= 86400
        sticky = int(timeout) if valid else DEFAULT_STICKY_SECONDS  # type: ignore[arg-type]
    ports: list[ServicePort] = []
    for raw in spec.get("ports") or []:
        if not isinstance(raw, dict):
            continue
        port_name = str(raw.get("name") or "")
        protocol = str(raw.get("protocol") or "TCP")
        port, node_port = _port(raw.get("port")), raw.get("nodePort", 0) or 0
        if port is None or (node_port and _port(node_port) is None):
            log.warning("%s port %r: port %r/nodePort %r out of range; skipping the port",
                        where, port_name, raw.get("port"), raw.get("nodePort"))
            continue
        if protocol not in protocols:
            log.warning("%s port %r: protocol %s not supported here; skipping the port",
                        where, port_name, protocol)
            continue
        external = bool(node_port or external_ips or lb_ips)
        ports.append(ServicePort(
            ServicePortName(namespace, name, port_name, protocol), ip, port, protocol,
            node_port=node_port, external_ips=external_ips, load_balancer_ips=lb_ips,
            load_balancer_source_ranges=source_ranges, sticky_seconds=sticky,
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            external_local=external and spec.get("externalTrafficPolicy") == "Local"))
    return ports


def _valid(values: object, check: Any, where: str, what: str) -> tuple[str, ...]:
    good: list[str] = []
    for value in values if isinstance(values, list) else []:
        parsed = check(value)
        if parsed is None:
            level = logging.DEBUG if ":" in str(value) else logging.WARNING
            log.log(level, "%s: invalid or non-IPv4 %s %r; skipping it", where, what, value)
        elif parsed not in good:
            good.append(parsed)
    return tuple(good)


def parse_slice(obj: Object) -> EndpointSlice | None:
    """The slice's usable content, or None when it belongs to no Service or is not IPv4."""
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service or obj.get("addressType", "IPv4") != "IPv4":
        return None
    where = f"endpointslice {namespace}/{name}"
    ports: list[SlicePort] = []
    for raw in obj.get("ports") or []:
        if not isinstance(raw, dict):
            continue
        port = _port(raw.get("port"))
        protocol = str(raw.get("protocol") or "TCP")
        if port is None or protocol not in PROTOCOLS:
            log.warning("%s: port %r (%r/%s) is unusable; skipping it", where, raw.get("name"),
                        raw.get("port"), protocol)
            continue
        ports.append(SlicePort(str(raw.get("name") or ""), port, protocol))
    endpoints: list[Endpoint] = []
    for raw in obj.get("endpoints") or []:
        if not isinstance(raw, dict):
            continue
        addresses = raw.get("addresses") or []
        ip = _ipv4(addresses[0]) if addresses else None
        if ip is None:
            log.warning("%s: endpoint address %r is not IPv4; skipping it", where, addresses)
            continue
        cond = raw.get("conditions") or {}
        ready = cond.get("ready") is not False  # nil means ready
        endpoints.append(Endpoint(
            ip, 0, node_name=str(raw.get("nodeName") or ""), ready=ready,
            serving=ready if cond.get("serving") is None else bool(cond["serving"]),
            terminating=bool(cond.get("terminating"))))
    return EndpointSlice(namespace, name, str(service), tuple(ports), tuple(endpoints))
