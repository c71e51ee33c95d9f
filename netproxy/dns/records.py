"""The cluster's DNS records, named as the Kubernetes DNS-based service discovery spec says.

`ClusterRecords.build` indexes the Service and EndpointSlice caches (JSON dicts) once; `resolve`
is then a pure lookup of one question: `<svc>.<ns>.svc.<domain>` (ClusterIP, the ready endpoints
of a headless service, or a CNAME for ExternalName), `<ep>.<svc>.<ns>.svc.<domain>`, SRV at
`_<port>._<proto>.<svc>.<ns>.svc.<domain>`, `<a-b-c-d>.<ns>.pod.<domain>` (CoreDNS's `pods
insecure`), PTR for service and headless endpoint IPs, and `dns-version.<domain>`. Names are
case-insensitive; answers keep the asker's spelling. `None` means "not ours": a name outside the
domain or an unknown reverse name, which the server forwards (CoreDNS's `fallthrough in-addr.arpa
ip6.arpa`). Negative answers carry the SOA, whose TTL and minimum are the record TTL.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
Object = dict[str, Any]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Kubernetes' shipped Corefile says `ttl 30` (the kubernetes plugin's own default is 5 s).
DEFAULT_TTL = 30
SCHEMA_VERSION = "1.1.0"  # the specification version answered at dns-version.<domain> (TXT)
MAX_CNAME_CHAIN = 8


@dataclass(frozen=True)
class Record:
    """One resource record; `data` is in presentation format ("10.96.0.1", "0 100 80 a.b.")."""

    name: str  # absolute owner name, trailing dot
    rtype: str
    ttl: int
    data: str


@dataclass
class Answer:
    """The sections of a response: NOERROR with an empty answer is NODATA."""

    rcode: str = "NOERROR"  # or "NXDOMAIN"
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str  # lower case: tcp, udp, sctp
    port: int


@dataclass(frozen=True)
class Endpoint:
    """One address of a headless service; `label` is its hostname or the dashed address."""

    label: str
    ip: IP
    ports: tuple[Port, ...]


@dataclass
class Service:
    namespace: str
    name: str
    kind: str  # "ClusterIP" (any service with cluster IPs), "Headless" or "ExternalName"
    ips: tuple[IP, ...] = ()
    external_name: str = ""
    ports: tuple[Port, ...] = ()
    publish_all: bool = False  # publishNotReadyAddresses: not-ready endpoints get names too
    endpoints: list[Endpoint] = field(default_factory=list)  # ready ones, headless only


class ClusterRecords:
    """An immutable index of one cluster domain; rebuild it when the caches change."""

    def __init__(self, *, domain: str = "cluster.local", ttl: int = DEFAULT_TTL,
                 serial: int = 1, nameservers: Iterable[str] = ()) -> None:
        self.domain = domain.strip(".").lower()
        self.ttl = ttl
        self.serial = serial  # the SOA serial: CoreDNS uses the time of the last cache change
        self.nameservers = tuple(ipaddress.ip_address(a) for a in nameservers)  # ns.dns.<domain>
        self.services: dict[tuple[str, str], Service] = {}
        self.namespaces: set[str] = set()  # namespaces with a service: <ns>.svc.<domain> exists
        self.ptr: dict[IP, str] = {}

    def __repr__(self) -> str:
        return (f"<ClusterRecords {self.domain} services={len(self.services)} "
                f"ptr={len(self.ptr)} serial={self.serial}>")

    @classmethod
    def build(cls, services: Iterable[Object], slices: Iterable[Object], *,
              domain: str = "cluster.local", ttl: int = DEFAULT_TTL, serial: int = 1,
              nameservers: Iterable[str] = ()) -> ClusterRecords:
        """Index Services and discovery.k8s.io/v1 EndpointSlices; skip (and log) bad ones."""
        zone = cls(domain=domain, ttl=ttl, serial=serial, nameservers=nameservers)
        for obj in services:
            try:
                svc = _service(obj)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("dns: skipping service %s: %s", _ref(obj), exc)
                continue
            zone.services[(svc.namespace, svc.name)] = svc
            zone.namespaces.add(svc.namespace)
        for obj in slices:
            try:
                zone._add_slice(obj)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("dns: skipping endpointslice %s: %s", _ref(obj), exc)
        for svc in zone.services.values():
            for ip in svc.ips:
                zone.ptr.setdefault(ip, f"{svc.name}.{svc.namespace}.svc.{zone.domain}.")
        for svc in zone.services.values():
            svc.endpoints.sort(key=lambda e: (e.label, str(e.ip)))
            for ep in svc.endpoints:
                zone.ptr.setdefault(
                    ep.ip, f"{ep.label}.{svc.name}.{svc.namespace}.svc.{zone.domain}.")
        return zone

    def _add_slice(self, obj: Object) -> None:
        meta = obj.get("metadata") or {}
        svc = self.services.get((meta.get("namespace", ""),
                                 (meta.get("labels") or {}).get(SERVICE_NAME_LABEL, "")))
        if svc is None or svc.kind != "Headless" or obj.get("addressType") == "FQDN":
            return
        ports = tuple(Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower(),
                           int(p["port"]))
                      for p in obj.get("ports") or [] if p.get("port") is not None)
        seen = {(e.label, e.ip) for e in svc.endpoints}
        for ep in obj.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False and not svc.publish_all:
                continue
            for address in ep.get("addresses") or []:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    log.warning("dns: endpointslice %s: skipping address %r", _ref(obj), address)
                    continue
                label = str(ep.get("hostname") or "").lower() or _dashed(ip)
                if (label, ip) not in seen:
                    seen.add((label, ip))
                    svc.endpoints.append(Endpoint(label, ip, ports))

    # -- lookups -----------------------------------------------------------------------------

    def resolve(self, qname: str, qtype: str, _depth: int = 0) -> Answer | None:
        """Answer one question, or None when the name is not in our zones."""
        owner = qname if qname.endswith(".") else qname + "."
        name, qtype = owner.lower().rstrip("."), qtype.upper()
        if name.endswith((".in-addr.arpa", ".ip6.arpa")):
            return self._reverse(owner, name, qtype)
        if name == self.domain:
            labels: list[str] = []
        elif name.endswith("." + self.domain):
            labels = name[: -len(self.domain) - 1].split(".")
        else:
            return None
        found = self._records_at(owner, labels)
        if found is None:
            return Answer("NXDOMAIN", authority=[self.soa(self.domain)])
        records, additional = found
        cnames = [r for r in records if r.rtype == "CNAME"]
        if cnames and qtype not in ("CNAME", "ANY"):
            return self._chase(cnames[0], qtype, _depth)
        answer = [r for r in records if qtype in (r.rtype, "ANY")]
        if not answer:
            return Answer(authority=[self.soa(self.domain)])
        return Answer(answer=answer, additional=additional if qtype in ("SRV", "NS") else [])

    def soa(self, zone: str) -> Record:
        """The zone's SOA (CoreDNS's shape): its TTL and minimum bound negative caching."""
        data = (f"ns.dns.{self.domain}. hostmaster.{self.domain}. {self.serial} "
                f"7200 1800 86400 {self.ttl}")
        return Record(f"{zone}.", "SOA", min(self.ttl, 300), data)

    def _chase(self, cname: Record, qtype: str, depth: int) -> Answer:
        """Follow a CNAME to a name inside the domain; the server chases outside names."""
        result = Answer(answer=[cname])
        if depth < MAX_CNAME_CHAIN:
            target = self.resolve(cname.data, qtype, depth + 1)
            if target is not None:
                result.rcode = target.rcode
                result.answer += target.answer
                result.authority = [] if target.answer else target.authority
        return result

    def _records_at(self, owner: str, labels: list[str]) -> tuple[list[Record],
                                                                   list[Record]] | None:
        """Every record at a name in the domain (and SRV's extra addresses); None: NXDOMAIN."""
        n = len(labels)
        if n == 0:
            soa = self.soa(self.domain)
            return [Record(owner, "SOA", soa.ttl, soa.data),
                    Record(owner, "NS", self.ttl, f"ns.dns.{self.domain}.")], []
        if labels == ["dns-version"]:
            return [Record(owner, "TXT", self.ttl, f'"{SCHEMA_VERSION}"')], []
        if labels == ["ns", "dns"]:
            return [_address(owner, ip, self.ttl) for ip in self.nameservers], []
        if labels[-1] == "pod":
            return self._pod(owner, labels)
        if labels[-1] != "svc":
            return None
        if n == 1:
            return [], []
        if n == 2:
            return ([], []) if labels[0] in self.namespaces else None
        svc = self.services.get((labels[-2], labels[-3]))
        if svc is None or n > 5:
            return None
        if n == 3:
            return self._service_records(owner, svc), []
        if n == 4 and labels[0].startswith("_"):
            protocols = {p.protocol for p in self._ports(svc) if p.name}
            return ([], []) if labels[0][1:] in protocols else None
        if n == 4:
            found = [_address(owner, ep.ip, self.ttl) for ep in svc.endpoints
                     if ep.label == labels[0]]
            return (found, []) if found else None
        if labels[0].startswith("_") and labels[1].startswith("_"):
            return self._srv(owner, svc, labels[0][1:], labels[1][1:])
        return None

    def _service_records(self, owner: str, svc: Service) -> list[Record]:
        if svc.kind == "ExternalName":
            return [Record(owner, "CNAME", self.ttl, f"{svc.external_name}.")]
        ips = svc.ips if svc.kind == "ClusterIP" else sorted(
            {ep.ip for ep in svc.endpoints}, key=lambda ip: (ip.version, ip))
        return [_address(owner, ip, self.ttl) for ip in ips]

    @staticmethod
    def _ports(svc: Service) -> list[Port]:
        if svc.kind != "Headless":
            return list(svc.ports)
        return [p for ep in svc.endpoints for p in ep.ports] or list(svc.ports)

    def _srv(self, owner: str, svc: Service, port_name: str,
             protocol: str) -> tuple[list[Record], list[Record]] | None:
        fqdn = f"{svc.name}.{svc.namespace}.svc.{self.domain}."
        targets: list[tuple[int, str]] = []
        extra: list[Record] = []
        if svc.kind == "Headless":
            for ep in svc.endpoints:
                for port in ep.ports:
                    if (port.name, port.protocol) == (port_name, protocol):
                        targets.append((port.port, f"{ep.label}.{fqdn}"))
                        extra.append(_address(f"{ep.label}.{fqdn}", ep.ip, self.ttl))
                        break
        else:
            target = f"{svc.external_name}." if svc.kind == "ExternalName" else fqdn
            for port in svc.ports:
                if (port.name, port.protocol) == (port_name, protocol):
                    targets.append((port.port, target))
                    extra = self._service_records(fqdn, svc) if svc.kind == "ClusterIP" else []
        if not targets:
            exists = any(p.name == port_name and p.protocol == protocol for p in self._ports(svc))
            return ([], []) if exists else None
        unique = sorted(set(targets), key=lambda t: (t[1], t[0]))
        weight = max(1, 100 // len(unique))
        return ([Record(owner, "SRV", self.ttl, f"0 {weight} {port} {target}")
                 for port, target in unique], sorted(set(extra), key=lambda r: r.name))

    def _pod(self, owner: str, labels: list[str]) -> tuple[list[Record], list[Record]] | None:
        if len(labels) == 1 or len(labels) == 2:
            return [], []  # pod.<domain> and <ns>.pod.<domain>: names with children
        if len(labels) != 3:
            return None
        dashed = labels[0]
        text = (dashed.replace("-", ".") if dashed.count("-") == 3 and "--" not in dashed
                else dashed.replace("-", ":"))
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return None
        return [_address(owner, ip, self.ttl)], []

    def _reverse(self, owner: str, name: str, qtype: str) -> Answer | None:
        ip = _reverse_ip(name)
        target = self.ptr.get(ip) if ip is not None else None
        if target is None:
            return None
        if qtype in ("PTR", "ANY"):
            return Answer(answer=[Record(owner, "PTR", self.ttl, target)])
        zone = "in-addr.arpa" if name.endswith(".in-addr.arpa") else "ip6.arpa"
        return Answer(authority=[self.soa(zone)])


def _service(obj: Object) -> Service:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    namespace, name = str(meta["namespace"]).lower(), str(meta["name"]).lower()
    ports = tuple(Port(str(p.get("name") or "").lower(), str(p.get("protocol") or "TCP").lower(),
                       int(p["port"])) for p in spec.get("ports") or [])
    if spec.get("type") == "ExternalName":
        external = str(spec.get("externalName") or "").strip(".").lower()
        if not external:
            raise ValueError("type ExternalName without spec.externalName")
        return Service(namespace, name, "ExternalName", external_name=external, ports=ports)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP")
                                            else [])
    if "None" in cluster_ips:
        return Service(namespace, name, "Headless", ports=ports,
                       publish_all=bool(spec.get("publishNotReadyAddresses")))
    ips = tuple(ipaddress.ip_address(ip) for ip in cluster_ips)
    return Service(namespace, name, "ClusterIP", ips=ips, ports=ports)


def _address(owner: str, ip: IP, ttl: int) -> Record:
    return Record(owner, "A" if ip.version == 4 else "AAAA", ttl, str(ip))


def _dashed(ip: IP) -> str:
    """The endpoint label of an address without a hostname: 10-0-0-1, or fd00--1 (CoreDNS)."""
    return str(ip).replace(".", "-").replace(":", "-")


def _reverse_ip(name: str) -> IP | None:
    """The address a reverse name stands for (None: a partial or malformed name)."""
    try:
        if name.endswith(".in-addr.arpa"):
            octets = name[: -len(".in-addr.arpa")].split(".")
            return ipaddress.IPv4Address(".".join(reversed(octets))) if len(octets) == 4 else None
        nibbles = name[: -len(".ip6.arpa")].split(".")
        if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
            return None
        return ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16))
    except ValueError:
        return None


def _ref(obj: object) -> str:
    meta = (obj.get("metadata") or {}) if isinstance(obj, dict) else {}
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
