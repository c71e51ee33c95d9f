"""Change trackers: informer events only *record* what changed; a sync later *merges* it.

As kube-proxy's ServiceChangeTracker / EndpointsChangeTracker: per Service (namespace/name) they
keep the state it had at the last merge and the latest state seen, so a burst of events costs one
sync and an object that changed back costs none. `update()` runs on the event loop (informer
handlers) and returns "anything pending?"; `checkout()` merges the pending changes into the maps
the renderer reads and says which Services changed and which UDP flows went stale (conntrack).
One bad object is logged and treated as empty; it never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from netproxy.model import (
    PROTOCOLS,
    Endpoint,
    EndpointSlice,
    ServicePort,
    ServicePortName,
    parse_service,
    parse_slice,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
PortMap = dict[ServicePortName, ServicePort]
EndpointsMap = dict[ServicePortName, tuple[Endpoint, ...]]


def _key(obj: Object) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass
class ServiceUpdate:
    changed: set[str] = field(default_factory=set)  # namespace/name of changed Services
    deleted_udp_ips: set[str] = field(default_factory=set)  # ClusterIPs of removed UDP ports


class ServiceChangeTracker:
    """Pending Service changes. Owned by the event loop (no lock: one thread touches it)."""

    def __init__(self, *, protocols: tuple[str, ...] = PROTOCOLS) -> None:
        self.protocols = protocols
        self._recorded: dict[str, PortMap] = {}  # latest parsed state per Service
        self._pending: dict[str, PortMap] = {}  # state at the last checkout, per changed Service

    def __repr__(self) -> str:
        return f"<ServiceChangeTracker services={len(self._recorded)} pending={len(self._pending)}>"

    def update(self, previous: Object | None, current: Object | None) -> bool:
        """Record one event (add: previous None; delete: current None); return "pending?"."""
        key = _key(current or previous or {})
        new: PortMap = {}
        if current is not None:
            try:
                new = {p.name: p for p in parse_service(current, protocols=self.protocols)}
            except Exception:  # noqa: BLE001 - one bad Service never stops the others
                log.exception("service %s: cannot parse it; treating it as having no ports", key)
        old = self._recorded.get(key, {})
        self._pending.setdefault(key, old)
        if current is None:
            self._recorded.pop(key, None)
        else:
            self._recorded[key] = new
        if self._pending[key] == new:
            del self._pending[key]
        return bool(self._pending)

    def checkout(self, services: PortMap) -> ServiceUpdate:
        """Merge the pending changes into `services` (in place) and say what changed."""
        result = ServiceUpdate()
        for key, old in self._pending.items():
            new = self._recorded.get(key, {})
            for name in old:
                services.pop(name, None)
            services.update(new)
            result.changed.add(key)
            result.deleted_udp_ips.update(p.cluster_ip for n, p in old.items()
                                          if p.protocol == "UDP" and n not in new)
        self._pending.clear()
        return result


@dataclass
class EndpointsUpdate:
    changed: set[str] = field(default_factory=set)  # namespace/name of Services
    stale_endpoints: list[tuple[ServicePortName, Endpoint]] = field(default_factory=list)
    new_udp_services: set[ServicePortName] = field(default_factory=set)  # 0 -> some ready


class EndpointsChangeTracker:
    """Pending EndpointSlice changes, aggregated per Service. Owned by the event loop."""

    def __init__(self) -> None:
        self._slices: dict[str, dict[str, EndpointSlice]] = {}  # Service -> slice name -> slice
        self._owner: dict[str, str] = {}  # slice namespace/name -> its Service's namespace/name
        self._pending: dict[str, EndpointsMap] = {}  # Service -> endpoints at the last checkout

    def __repr__(self) -> str:
        return f"<EndpointsChangeTracker services={len(self._slices)} pending={len(self._pending)}>"

    def update(self, previous: Object | None, current: Object | None) -> bool:
        """Record one EndpointSlice event; return "pending?"."""
        slice_key = _key(current or previous or {})
        parsed: EndpointSlice | None = None
        if current is not None:
            try:
                parsed = parse_slice(current)
            except Exception:  # noqa: BLE001
                log.exception("endpointslice %s: cannot parse it; ignoring it", slice_key)
        old_owner = self._owner.get(slice_key)
        new_owner = f"{parsed.namespace}/{parsed.service}" if parsed else None
        affected = {s for s in (old_owner, new_owner) if s}
        for service in affected:
            if service not in self._pending:
                self._pending[service] = self.endpoints_of(service)
        slice_name = slice_key.split("/", 1)[1]
        if old_owner:
            self._slices.get(old_owner, {}).pop(slice_name, None)
            if not self._slices.get(old_owner):
                self._slices.pop(old_owner, None)
            del self._owner[slice_key]
        if parsed and new_owner:
            self._slices.setdefault(new_owner, {})[slice_name] = parsed
            self._owner[slice_key] = new_owner
        for service in affected:
            if self._pending[service] == self.endpoints_of(service):
                del self._pending[service]
        return bool(self._pending)

    def endpoints_of(self, service: str) -> EndpointsMap:
        """All endpoints of a Service per port, merged across its slices, sorted as kube-proxy."""
        merged: dict[ServicePortName, dict[str, Endpoint]] = {}
        namespace, name = service.split("/", 1)
        for slice_name in sorted(self._slices.get(service, {})):
            eps = self._slices[service][slice_name]
            for port in eps.ports:
                by_address = merged.setdefault(
                    ServicePortName(namespace, name, port.name, port.protocol), {})
                for ep in eps.endpoints:
                    endpoint = replace(ep, port=port.port)
                    seen = by_address.get(str(endpoint))
                    if seen is None or (endpoint.ready and not seen.ready):
                        by_address[str(endpoint)] = endpoint
        return {spn: tuple(eps[k] for k in sorted(eps)) for spn, eps in merged.items() if eps}

    def checkout(self, endpoints: EndpointsMap) -> EndpointsUpdate:
        """Merge the pending changes into `endpoints` (in place) and say what changed."""
        result = EndpointsUpdate()
        for service, old in self._pending.items():
            new = self.endpoints_of(service)
            for spn in old:
                endpoints.pop(spn, None)
            endpoints.update(new)
            result.changed.add(service)
            _stale_udp(old, new, result)
        self._pending.clear()
        return result


def _stale_udp(old: Mapping[ServicePortName, tuple[Endpoint, ...]],
               new: Mapping[ServicePortName, tuple[Endpoint, ...]],
               result: EndpointsUpdate) -> None:
    """UDP flows pinned by conntrack to endpoints that are gone, or stuck on no endpoint."""
    for spn in set(old) | set(new):
        if spn.protocol != "UDP":
            continue
        before = {str(e): e for e in old.get(spn, ()) if e.ready}
        after = {str(e) for e in new.get(spn, ()) if e.ready}
        result.stale_endpoints.extend((spn, e) for k, e in before.items() if k not in after)
        if not before and after:
            result.new_udp_services.add(spn)
