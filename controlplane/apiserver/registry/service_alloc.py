"""ClusterIPs and NodePorts of services: the store hooks that allocate them (Kubernetes' alloc.go).

On create a service gets a ClusterIP from the IP range unless it is headless ("None") or an
ExternalName, and NodePort/LoadBalancer services a NodePort per port (plus a health check port
for LoadBalancer with externalTrafficPolicy Local); a requested value is honoured or refused with
Kubernetes' 422. Updates keep what was allocated (the ClusterIP is immutable), allocate what a
type change needs and drop what it no longer needs; deletes release everything. Each write is a
small transaction: what it took is given back if the write fails, what it frees is given back
only once the write is stored. A dry run takes nothing (it only checks requested values).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable

from controlplane.api import errors
from controlplane.api.errors import FIELD_FORBIDDEN, FIELD_INVALID, Cause
from controlplane.apiserver.registry.allocator import (
    AllocationError,
    IPAllocator,
    PortAllocator,
    RangeMismatch,
)
from controlplane.apiserver.registry.hooks import Finish, Object
from controlplane.apiserver.storage.interface import StorageError

log = logging.getLogger(__name__)
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")


def _go_strings(values: list[str]) -> str:
    """A []string as Go's %#v prints it in field errors: []string{"10.96.0.5"}."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def _invalid(svc: Object, field: str, value: str, detail: str) -> errors.Invalid:
    cause = Cause(FIELD_INVALID, f"Invalid value: {value}: {detail}", field)
    return errors.Invalid.of("Service", "", svc["metadata"]["name"], [cause])


def _forbidden(svc: Object, field: str, detail: str) -> errors.Invalid:
    cause = Cause(FIELD_FORBIDDEN, f"Forbidden: {detail}", field)
    return errors.Invalid.of("Service", "", svc["metadata"]["name"], [cause])


def _needs_cluster_ip(spec: Object) -> bool:
    return spec.get("type") != "ExternalName"


def _needs_node_ports(spec: Object) -> bool:
    return spec.get("type") in NODE_PORT_TYPES


def _needs_health_check_port(spec: Object) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _node_ports(spec: Object) -> set[int]:
    return {int(p["nodePort"]) for p in spec.get("ports") or []
            if isinstance(p, dict) and p.get("nodePort")}


def _real_ip(spec: Object) -> str:
    """The allocated ClusterIP of a stored spec ("" for none, headless or ExternalName)."""
    ip = spec.get("clusterIP") or ""
    return "" if ip == "None" or not _needs_cluster_ip(spec) else str(ip)


class _Txn:
    """What one write took (given back if it fails) and frees (given back once stored)."""

    def __init__(self, ips: IPAllocator, ports: PortAllocator, svc: Object,
                 dry_run: bool) -> None:
        self.ips, self.ports, self.svc, self.dry_run = ips, ports, svc, dry_run
        self.taken_ips: list[str] = []
        self.taken_ports: list[int] = []
        self.freed_ips: list[str] = []
        self.freed_ports: list[int] = []

    async def take_ip(self, ip: str) -> None:
        try:
            if self.dry_run:
                await self.ips.check(ip)
            else:
                await self.ips.allocate(ip)
                self.taken_ips.append(ip)
        except RangeMismatch as exc:
            raise errors.InternalError(f"Internal error occurred: {exc}") from None
        except AllocationError as exc:
            raise _invalid(self.svc, "spec.clusterIPs", _go_strings([ip]),
                           f"failed to allocate IP {ip}: {exc}") from None

    async def next_ip(self) -> str | None:
        if self.dry_run:
            return None
        try:
            ip = await self.ips.allocate_next()
        except AllocationError as exc:
            raise errors.InternalError(
                f"Internal error occurred: failed to allocate a serviceIP: {exc}") from None
        self.taken_ips.append(ip)
        return ip

    async def take_port(self, port: int, field: str) -> None:
        try:
            if self.dry_run:
                await self.ports.check(port)
            else:
                await self.ports.allocate(port)
                self.taken_ports.append(port)
        except RangeMismatch as exc:
            raise errors.InternalError(f"Internal error occurred: {exc}") from None
        except AllocationError as exc:
            raise _invalid(self.svc, field, str(port), str(exc)) from None

    async def next_port(self) -> int | None:
        if self.dry_run:
            return None
        try:
            port = await self.ports.allocate_next()
        except AllocationError as exc:
            raise errors.InternalError(
                f"Internal error occurred: failed to allocate a nodePort: {exc}") from None
        self.taken_ports.append(port)
        return port

    async def finish(self, stored: bool) -> None:
        """Give back what the write freed (stored) or took (not stored); failures are logged."""
        ips, ports = ((self.freed_ips, self.freed_ports) if stored
                      else (self.taken_ips, self.taken_ports))
        if self.dry_run:
            return
        for ip in ips:
            await self._release(self.ips.release(ip), f"clusterIP {ip}")
        for port in ports:
            await self._release(self.ports.release(port), f"nodePort {port}")
        for done in (self.taken_ips, self.taken_ports, self.freed_ips, self.freed_ports):
            done.clear()  # finishing twice is harmless

    async def _release(self, release: Awaitable[None], what: str) -> None:
        try:
            await release
        except (StorageError, AllocationError) as exc:
            m = self.svc["metadata"]
            log.error("could not release %s of service %s/%s (leaked): %s", what,
                      m.get("namespace"), m.get("name"), exc)


class ServiceAllocation:
    """The `Hooks` of the services store (see `store.Hooks`)."""

    def __init__(self, ips: IPAllocator, ports: PortAllocator) -> None:
        self.ips = ips
        self.ports = ports

    def __repr__(self) -> str:
        return f"<ServiceAllocation {self.ips.network} {self.ports.range_spec}>"

    async def begin_create(self, obj: Object, *, dry_run: bool) -> Finish:
        return await self._begin(obj, None, dry_run)

    async def begin_update(self, new: Object, old: Object, *, dry_run: bool) -> Finish:
        return await self._begin(new, old, dry_run)

    async def after_delete(self, obj: Object) -> None:
        spec = obj.get("spec") or {}
        txn = _Txn(self.ips, self.ports, obj, dry_run=False)
        if _real_ip(spec):
            txn.freed_ips.append(_real_ip(spec))
        txn.freed_ports += sorted(_node_ports(spec))
        if spec.get("healthCheckNodePort"):
            txn.freed_ports.append(int(spec["healthCheckNodePort"]))
        await txn.finish(True)

    async def _begin(self, svc: Object, old: Object | None, dry_run: bool) -> Finish:
        spec = svc.get("spec")
        if not isinstance(spec, dict):
            return _Txn(self.ips, self.ports, svc, dry_run).finish
        old_spec = (old or {}).get("spec") or {}
        if old is not None:
            _drop_type_dependent_fields(spec, old_spec)
            _patch_allocated_values(spec, old_spec)
        txn = _Txn(self.ips, self.ports, svc, dry_run)
        try:
            await self._cluster_ip(svc, spec, old_spec, txn)
            kept = await self._node_ports(svc, spec, old_spec, txn)
            await self._health_check_port(svc, spec, old_spec, kept, txn)
        except BaseException:
            await txn.finish(False)
            raise
        return txn.finish

    async def _cluster_ip(self, svc: Object, spec: Object, old_spec: Object, txn: _Txn) -> None:
        old_ip = _real_ip(old_spec)
        if not _needs_cluster_ip(spec):
            for field in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if spec.get(field) or (field == "clusterIPs" and spec.get("clusterIP")):
                    raise _forbidden(svc, f"spec.{field}",
                                     "may not be set for ExternalName services")
            if old_ip:
                txn.freed_ips.append(old_ip)
            return
        requested = self._requested_ip(svc, spec)
        if requested == "None":
            if _needs_node_ports(spec):
                raise _invalid(svc, "spec.clusterIPs[0]", '"None"',
                               f"may not be set to 'None' for {spec['type']} services")
            ip: str | None = "None"
        elif requested and requested == old_ip:
            ip = requested
        elif requested:
            await txn.take_ip(requested)
            ip = requested
        else:
            ip = await txn.next_ip()
        if old_ip and ip != old_ip:
            txn.freed_ips.append(old_ip)
        if ip is not None:
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", [self.ips.family])
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    def _requested_ip(self, svc: Object, spec: Object) -> str:
        """The ClusterIP the client asked for ("" for any), after checking families and form."""
        single, plural = spec.get("clusterIP") or "", list(spec.get("clusterIPs") or [])
        if single and plural and plural[0] != single:
            raise _invalid(svc, "spec.clusterIPs[0]", f'"{plural[0]}"',
                           "must match `clusterIP` when both are specified")
        if len(plural) > 1:
            raise _invalid(svc, "spec.clusterIPs", _go_strings(plural),
                           "this cluster is not configured for dual-stack services")
        policy = spec.get("ipFamilyPolicy")
        if policy is not None and policy not in FAMILY_POLICIES:
            cause = Cause(errors.FIELD_NOT_SUPPORTED, f'Unsupported value: "{policy}": supported '
                          'values: "SingleStack", "PreferDualStack", "RequireDualStack"',
                          "spec.ipFamilyPolicy")
            raise errors.Invalid.of("Service", "", svc["metadata"]["name"], [cause])
        if policy == "RequireDualStack":
            raise _invalid(svc, "spec.ipFamilyPolicy", f'"{policy}"',
                           "this cluster is not configured for dual-stack services")
        for i, family in enumerate(spec.get("ipFamilies") or []):
            if family != self.ips.family or i > 0:
                raise _invalid(svc, f"spec.ipFamilies[{i}]", f'"{family}"',
                               "not configured on this cluster")
        requested = str(single or (plural[0] if plural else ""))
        if requested and requested != "None":
            try:
                ipaddress.ip_address(requested)
            except ValueError:
                raise _invalid(svc, "spec.clusterIPs[0]", f'"{requested}"',
                               "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
                               ) from None
        return requested

    async def _node_ports(self, svc: Object, spec: Object, old_spec: Object,
                          txn: _Txn) -> set[int]:
        """Allocate the NodePorts `spec` needs; return the ones it holds."""
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        held = _node_ports(old_spec) if _needs_node_ports(old_spec) else set()
        kept: set[int] = set()
        if not _needs_node_ports(spec):
            for i, port in enumerate(ports):
                if port.get("nodePort"):
                    raise _forbidden(svc, f"spec.ports[{i}].nodePort", "may not be used when "
                                     f"`type` is '{spec.get('type', 'ClusterIP')}'")
        else:
            auto = spec["type"] == "NodePort" or spec.get(
                "allocateLoadBalancerNodePorts") is not False
            # The TCP and UDP of one port number share a node port (Kubernetes' initNodePorts).
            by_number = {p.get("port"): int(p["nodePort"]) for p in reversed(ports)
                         if p.get("nodePort")}
            for i, port in enumerate(ports):
                wanted = int(port.get("nodePort") or 0)
                if not wanted and auto:
                    wanted = by_number.get(port.get("port")) or 0
                if not wanted and auto:
                    wanted = await txn.next_port() or 0
                    by_number[port.get("port")] = wanted
                elif wanted and wanted not in kept and wanted not in held:
                    await txn.take_port(wanted, f"spec.ports[{i}].nodePort")
                if wanted:
                    port["nodePort"] = wanted
                    kept.add(wanted)
        txn.freed_ports += sorted(held - kept)
        return kept

    async def _health_check_port(self, svc: Object, spec: Object, old_spec: Object,
                                 kept: set[int], txn: _Txn) -> None:
        old = int(old_spec.get("healthCheckNodePort") or 0)
        wanted = int(spec.get("healthCheckNodePort") or 0)
        if not _needs_health_check_port(spec):
            if wanted:
                raise _invalid(svc, "spec.healthCheckNodePort", str(wanted),
                               "may only be set when `type` is 'LoadBalancer' and "
                               "`externalTrafficPolicy` is 'Local'")
        elif wanted and wanted != old:
            await txn.take_port(wanted, "spec.healthCheckNodePort")
        elif not wanted:
            wanted = await txn.next_port() or 0
            if wanted:
                spec["healthCheckNodePort"] = wanted
        if old and old != wanted and old not in kept:
            txn.freed_ports.append(old)


def _drop_type_dependent_fields(spec: Object, old: Object) -> None:
    """Clear what a type change makes meaningless, when the client left it as it was.

    Kubernetes' dropTypeDependentFields: switching NodePort -> ClusterIP drops the node ports
    (released once the update is stored), switching to ExternalName drops the ClusterIP.
    """
    if _needs_cluster_ip(old) and not _needs_cluster_ip(spec):
        if (spec.get("clusterIP"), spec.get("clusterIPs")) == (old.get("clusterIP"),
                                                               old.get("clusterIPs")):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for field in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(field) == old.get(field):
                spec.pop(field, None)
    if _needs_node_ports(old) and not _needs_node_ports(spec):
        if _node_ports(spec) <= _node_ports(old):
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
        if spec.get("externalTrafficPolicy") == old.get("externalTrafficPolicy"):
            spec.pop("externalTrafficPolicy", None)
    if _needs_health_check_port(old) and not _needs_health_check_port(spec) and (
            spec.get("healthCheckNodePort") == old.get("healthCheckNodePort")):
        spec.pop("healthCheckNodePort", None)


def _patch_allocated_values(spec: Object, old: Object) -> None:
    """Carry over allocated values an update left out (Kubernetes' patchAllocatedValues)."""
    if _needs_cluster_ip(old) and _needs_cluster_ip(spec):
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if not spec.get(field) and old.get(field):
                spec[field] = old[field]
    if _needs_node_ports(old) and _needs_node_ports(spec):
        # By port name: the client may have changed other fields of the port.
        used = _node_ports(old) & _node_ports(spec)
        by_name = {p.get("name"): p.get("nodePort") for p in old.get("ports") or []
                   if isinstance(p, dict)}
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                value = by_name.get(port.get("name"))
                if value and value not in used:
                    port["nodePort"] = value
    if _needs_health_check_port(old) and _needs_health_check_port(spec) and not spec.get(
            "healthCheckNodePort"):
        spec["healthCheckNodePort"] = old.get("healthCheckNodePort")
