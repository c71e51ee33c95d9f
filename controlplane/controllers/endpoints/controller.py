"""The Endpoints controller: one core/v1 Endpoints per Service with a selector, as Kubernetes.

`sync(service key)`: a Service that is gone loses its Endpoints; ExternalName services and
services without a selector are left alone (their Endpoints are the user's). Otherwise every
selected pod with an IP that is not terminal (nor terminating, unless publishNotReadyAddresses)
becomes an address (ip, nodeName, targetRef), in addresses when ready (or published anyway),
else in notReadyAddresses, under the ports resolved for that pod; addresses serving the same
ports share a subset. The object is written only when subsets, labels or the over-capacity
mark differ, with the endpoints.kubernetes.io/last-change-trigger-time annotation.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.client.events import WARNING
from controlplane.client.rest import ENDPOINTS, PODS, SERVICES
from controlplane.controllers import pods as podutil
from controlplane.controllers.base import (
    Controller,
    ControllerContext,
    Lister,
    SyncError,
    deep_copy,
    split_key,
)
from controlplane.controllers.endpoints.util import (
    HEADLESS,
    TRIGGER_TIME,
    TriggerTimeTracker,
    find_port,
    format_time,
    ip_family,
    ip_sort_key,
    ip_version,
    is_headless,
    pod_ips,
    selected_pods,
    selector_of,
    services_for_pod,
    services_to_update,
    should_be_in_endpoints,
    should_set_hostname,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
MAX_CAPACITY = 1000  # addresses per Endpoints object (Kubernetes' maxCapacity)


def address_of(pod: Object, service: Object, ip: str) -> Object:
    m = pod["metadata"]
    address: Object = {"ip": ip}
    if should_set_hostname(pod, service):
        address["hostname"] = pod["spec"]["hostname"]
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    address["targetRef"] = {"kind": "Pod", "namespace": m.get("namespace", ""),
                            "name": m["name"], "uid": m.get("uid", "")}
    return address


def endpoint_port(service_port: Object, number: int) -> Object:
    port: Object = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def desired_subsets(service: Object, pods: Iterable[Object]) -> list[Object]:
    """The service's subsets: addresses grouped by the ports they serve, sorted."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    # (ready, ip, uid) -> address, and which ports each serves
    addresses: dict[tuple[bool, str, str], Object] = {}
    ports_of: dict[tuple[bool, str, str], set[tuple[str, int, str, str]]] = {}
    for pod in pods:
        if not should_be_in_endpoints(pod, publish):
            continue
        family = ip_family(service, pod)
        ip = next((i for i in pod_ips(pod) if ip_version(i) == family), None)
        if ip is None:
            continue
        ready = publish or podutil.is_ready(pod)
        key = (ready, ip, str(pod["metadata"].get("uid", "")))
        if not service_ports:
            if not is_headless(service):
                continue
            addresses[key] = address_of(pod, service, ip)
            ports_of.setdefault(key, set())
            continue
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is None:
                log.debug("service %s: no port %s in pod %s", service["metadata"]["name"],
                          service_port.get("targetPort"), pod["metadata"]["name"])
                continue
            p = endpoint_port(service_port, number)
            addresses[key] = address_of(pod, service, ip)
            ports_of.setdefault(key, set()).add(
                (p.get("name", ""), number, p["protocol"], p.get("appProtocol", "")))
    groups: dict[tuple[tuple[str, int, str, str], ...], list[tuple[bool, str, str]]] = {}
    for key, ports in ports_of.items():
        groups.setdefault(tuple(sorted(ports)), []).append(key)
    subsets = []
    for ports_key in sorted(groups):
        keys = sorted(groups[ports_key], key=lambda k: (ip_sort_key(k[1]), k[2]))
        subset: Object = {}
        serving = [addresses[k] for k in keys if k[0]]
        waiting = [addresses[k] for k in keys if not k[0]]
        if serving:
            subset["addresses"] = serving
        if waiting:
            subset["notReadyAddresses"] = waiting
        if ports_key:
            subset["ports"] = [_port_dict(p) for p in ports_key]
        subsets.append(subset)
    return subsets


def _port_dict(p: tuple[str, int, str, str]) -> Object:
    port: Object = {"port": p[1], "protocol": p[2]}
    if p[0]:
        port["name"] = p[0]
    if p[3]:
        port["appProtocol"] = p[3]
    return port


def truncate(subsets: list[Object]) -> bool:
    """Cut subsets to MAX_CAPACITY addresses, ready ones first, proportionally per subset."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= MAX_CAPACITY:
        return False
    cut_ready = ready > MAX_CAPACITY
    limit, total = (MAX_CAPACITY, ready) if cut_ready else (MAX_CAPACITY - ready, not_ready)
    field = "addresses" if cut_ready else "notReadyAddresses"
    room = limit
    for subset in subsets:
        values = subset.get(field) or []
        take = min(math.ceil(len(values) / total * limit), room)
        if values:
            subset[field] = values[:take]
        if cut_ready:
            subset.pop("notReadyAddresses", None)
        room -= len(subset.get(field) or [])
    return True


def _comparable(subsets: list[Object]) -> list[Object]:
    out: list[Object] = copy.deepcopy(subsets)
    for subset in out:
        for field in ("addresses", "notReadyAddresses"):
            for address in subset.get(field) or []:
                (address.get("targetRef") or {}).pop("resourceVersion", None)
    return out


# -- the controller ------------------------------------------------------------------------------


class EndpointsController(Controller):
    name = "endpoint"
    component = "endpoint-controller"
    kind = "Endpoints"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.lister(SERVICES)
        self.pods = ctx.informers.lister(PODS)
        self.endpoints = ctx.informers.lister(ENDPOINTS)
        self.triggers = TriggerTimeTracker()
        # key -> the resourceVersion our last write replaced ("": we created it); while the
        # cache shows that (or nothing), it is behind our own write. Owned by the loop.
        self.stale: dict[str, str] = {}
        self.services.informer.add_handlers(on_add=self.enqueue,
                                            on_update=lambda _old, cur: self.enqueue(cur),
                                            on_delete=self.enqueue)
        self.pods.informer.add_handlers(on_add=self._pod_added, on_update=self._pod_updated,
                                        on_delete=self._pod_added)
        self.endpoints.informer.add_handlers(on_delete=self._endpoints_deleted)

    def _endpoints_deleted(self, endpoints: Object) -> None:
        m = endpoints["metadata"]
        self.stale.pop(f"{m.get('namespace', '')}/{m['name']}", None)
        self.enqueue(endpoints)

    def _pod_added(self, pod: Object) -> None:
        for key in services_for_pod(self.services, pod):
            self.queue.add(key)

    def _pod_updated(self, old: Object, cur: Object) -> None:
        for key in services_to_update(self.services, old, cur):
            self.queue.add(key)

    async def run(self, workers: int) -> None:
        # Endpoints left behind by services deleted while we were away (checkLeftoverEndpoints)
        for key in leftovers(self.endpoints):
            self.queue.add(key)
        await super().run(workers)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        if service is None:
            self.triggers.delete(key)
            self.stale.pop(key, None)
            try:
                await self.client.delete(ENDPOINTS, name, namespace)
            except errors.NotFound:
                pass
            return
        selector = selector_of(service)
        if selector is None:
            return
        pods = selected_pods(self.pods, service, selector)
        trigger, state = self.triggers.compute(key, service, pods)
        subsets = desired_subsets(service, pods)
        current = self.endpoints.get(namespace, name)
        replaced = self.stale.get(key)
        if replaced is not None:
            if replaced == (current or {}).get("metadata", {}).get("resourceVersion", ""):
                raise SyncError(f"endpoints {key}: informer cache is out of date")
            del self.stale[key]
        truncated = truncate(subsets)
        labels = dict(service["metadata"].get("labels") or {})
        if current is not None:
            theirs = dict(current["metadata"].get("labels") or {})
            theirs.pop(HEADLESS, None)
            over = OVER_CAPACITY in (current["metadata"].get("annotations") or {})
            if (_comparable(current.get("subsets") or []) == subsets and theirs == labels
                    and over == truncated):
                self.triggers.save(key, state)
                return
        await self._write(service, current, subsets, labels, trigger, truncated)
        self.triggers.save(key, state)

    async def _write(self, service: Object, current: Object | None, subsets: list[Object],
                     labels: dict[str, str], trigger: datetime | None,
                     truncated: bool) -> None:
        m = service["metadata"]
        key = f"{m['namespace']}/{m['name']}"
        new: Object = deep_copy(current) if current is not None else {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": m["name"], "namespace": m["namespace"]}}
        annotations = dict(new["metadata"].get("annotations") or {})
        if trigger is not None:
            annotations[TRIGGER_TIME] = format_time(trigger)
        else:
            annotations.pop(TRIGGER_TIME, None)
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if is_headless(service):
            labels[HEADLESS] = ""
        new["metadata"].update(labels=labels, annotations=annotations)
        new["subsets"] = subsets
        try:
            if current is None:
                await self.client.create(ENDPOINTS, new, m["namespace"])
                self.stale[key] = ""
            else:
                written = await self.client.update(ENDPOINTS, new, m["namespace"])
                if written["metadata"].get("resourceVersion") != current["metadata"].get(
                        "resourceVersion"):
                    self.stale[key] = str(current["metadata"].get("resourceVersion"))
        except errors.APIError as exc:
            if current is None and isinstance(exc, errors.Forbidden) and "terminat" in str(exc):
                return  # the namespace is going away
            if isinstance(exc, errors.AlreadyExists | errors.Conflict):
                raise SyncError(f"endpoints {key}: {exc} (the cache is behind)") from None
            verb = "create" if current is None else "update"
            self.event(new, WARNING, f"FailedTo{verb.title()}Endpoint",
                       f"Failed to {verb} endpoint {key}: {exc}")
            raise


def leftovers(endpoints: Lister) -> Iterator[str]:
    """Keys of every cached Endpoints (their services are checked; missing ones lose them)."""
    for ep in endpoints.list():
        annotations = ep["metadata"].get("annotations") or {}
        if "control-plane.alpha.kubernetes.io/leader" in annotations:
            continue  # a leader-election record, not a service's endpoints
        yield f"{ep['metadata'].get('namespace', '')}/{ep['metadata']['name']}"
