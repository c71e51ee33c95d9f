"""What a Service's EndpointSlices should become: Kubernetes' endpointslice reconciler, pure.

`desired_endpoints` turns the selected pods into endpoints (addresses of one family, conditions
ready/serving/terminating, nodeName, zone, targetRef) grouped by the ports resolved for each pod.
`reconcile` compares them with the existing slices and returns a `Plan` of slices to create,
update and delete, in Kubernetes' order of preference: keep endpoints where they are (updating
the ones that changed), fill the slices being updated, then an unchanged slice that the rest fits
into, then new slices of at most `max_per_slice`; a service without endpoints keeps one empty
placeholder slice; a create paired with a delete becomes an update of the deleted slice.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controlplane.api.validation import is_dns1123_subdomain
from controlplane.controllers import pods as podutil
from controlplane.controllers.endpoints.util import (
    HEADLESS,
    find_port,
    ip_sort_key,
    ip_version,
    is_headless,
    pod_ips,
    should_be_in_endpoints,
    should_set_hostname,
)

Object = dict[str, Any]
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100
PortKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[tuple[str, ...], str, str, str]
_RESERVED = (SERVICE_NAME, MANAGED_BY, HEADLESS)


@dataclass
class Desired:
    """The endpoints of one address type that share one set of ports."""

    ports: list[Object]
    endpoints: dict[EndpointKey, Object] = field(default_factory=dict)


@dataclass
class Plan:
    create: list[Object] = field(default_factory=list)
    update: list[Object] = field(default_factory=list)
    delete: list[Object] = field(default_factory=list)

    def __repr__(self) -> str:
        updated = [s["metadata"]["name"] for s in self.update]
        deleted = [s["metadata"]["name"] for s in self.delete]
        return f"<Plan create={len(self.create)} update={updated} delete={deleted}>"


def address_types(service: Object) -> list[str]:
    """The slice address types a service gets (its ipFamilies; else by clusterIP; else both)."""
    spec = service.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    if families:
        return families
    if not is_headless(service):
        return ["IPv6" if ip_version(str(spec.get("clusterIP"))) == 6 else "IPv4"]
    return ["IPv4", "IPv6"]


def port_key(ports: Iterable[Object]) -> PortKey:
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0),
                         str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or ""))
                        for p in ports))


def endpoint_key(endpoint: Object) -> EndpointKey:
    ref = endpoint.get("targetRef") or {}
    return (tuple(sorted(endpoint.get("addresses") or [])), str(endpoint.get("hostname") or ""),
            str(ref.get("namespace") or ""), str(ref.get("name") or ""))


def endpoint_ports(service: Object, pod: Object) -> list[Object]:
    ports = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, service_port)
        if number is None:
            continue
        port: Object = {"name": service_port.get("name") or "", "port": number,
                        "protocol": service_port.get("protocol") or "TCP"}
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def pod_endpoint(pod: Object, node: Object | None, service: Object, address_type: str) -> Object:
    serving = podutil.is_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    family = 6 if address_type == "IPv6" else 4
    m = pod["metadata"]
    endpoint: Object = {
        "addresses": [ip for ip in pod_ips(pod) if ip_version(ip) == family],
        "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                       "terminating": terminating},
    }
    if should_set_hostname(pod, service):
        endpoint["hostname"] = pod["spec"]["hostname"]
    endpoint["targetRef"] = {"kind": "Pod", "namespace": m.get("namespace", ""),
                             "name": m["name"], "uid": m.get("uid", "")}
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE)
    if zone:
        endpoint["zone"] = zone
    return endpoint


def desired_endpoints(service: Object, pods: Iterable[Object], nodes: dict[str, Object | None],
                      address_type: str) -> tuple[dict[PortKey, Desired], list[str]]:
    """The endpoints by port set, and the pods skipped because their node is unknown."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    desired: dict[PortKey, Desired] = {}
    skipped = []
    for pod in pods:
        if not should_be_in_endpoints(pod, True):
            continue
        ports = endpoint_ports(service, pod)
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        node = nodes.get(node_name)
        if node is None and not publish:
            skipped.append(f"{pod['metadata']['name']} (node {node_name or '<none>'})")
            continue
        group = desired.setdefault(port_key(ports), Desired(ports))
        endpoint = pod_endpoint(pod, node, service, address_type)
        if endpoint["addresses"]:
            group.endpoints[endpoint_key(endpoint)] = endpoint
    return desired, skipped


def slice_labels(current: dict[str, str], service: Object) -> tuple[dict[str, str], bool]:
    """The labels a slice should carry, and whether its service-derived labels changed."""
    ours = {k: v for k, v in current.items() if k not in _RESERVED}
    theirs = {k: v for k, v in (service["metadata"].get("labels") or {}).items()
              if k not in _RESERVED}
    changed = ours != theirs
    if is_headless(service):
        theirs[HEADLESS] = ""
    theirs[SERVICE_NAME] = service["metadata"]["name"]
    theirs[MANAGED_BY] = CONTROLLER_NAME
    return theirs, changed


def new_slice(service: Object, ports: list[Object], address_type: str) -> Object:
    m = service["metadata"]
    prefix = f"{m['name']}-"
    if is_dns1123_subdomain(prefix + "a"):  # too long with the dash and a generated suffix
        prefix = m["name"]
    labels, _ = slice_labels({}, service)
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": prefix,
                     "namespace": m["namespace"], "labels": labels,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                          "name": m["name"], "uid": m.get("uid", ""),
                                          "controller": True, "blockOwnerDeletion": True}]},
        "addressType": address_type, "endpoints": [], "ports": copy.deepcopy(ports),
    }


def owned_by(slice_: Object, service: Object) -> bool:
    uid = service["metadata"].get("uid")
    return any(r.get("uid") == uid and r.get("kind") == "Service" and r.get("apiVersion") == "v1"
               for r in slice_["metadata"].get("ownerReferences") or [])


def _is_placeholder_of(slice_: Object, placeholder: Object) -> bool:
    m, p = slice_["metadata"], placeholder["metadata"]
    return (not slice_.get("endpoints") and not slice_.get("ports")
            and slice_.get("addressType") == placeholder["addressType"]
            and (m.get("labels") or {}) == p["labels"]
            and (m.get("ownerReferences") or []) == p["ownerReferences"])


def reconcile(service: Object, desired: dict[str, dict[PortKey, Desired]],
              existing: list[Object], max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> Plan:
    """The writes that turn `existing` (our slices of the service) into `desired`."""
    plan = Plan()
    by_type: dict[str, list[Object]] = {}
    for slice_ in existing:
        if slice_.get("addressType") in desired:
            by_type.setdefault(str(slice_["addressType"]), []).append(slice_)
        else:
            plan.delete.append(slice_)
    for address_type, groups in desired.items():
        _reconcile_type(plan, service, address_type, groups, by_type.get(address_type, []),
                        max_per_slice)
    for slice_ in plan.delete[:]:  # a create paired with a delete: update the deleted one
        if not plan.create:
            break
        new = plan.create[-1]
        if slice_.get("addressType") == new["addressType"] and owned_by(slice_, service):
            plan.create.pop()
            plan.delete.remove(slice_)
            new["metadata"].pop("generateName", None)
            new["metadata"].update(name=slice_["metadata"]["name"],
                                   resourceVersion=slice_["metadata"].get("resourceVersion"))
            plan.update.append(new)
    return plan


def _reconcile_type(plan: Plan, service: Object, address_type: str,
                    groups: dict[PortKey, Desired], existing: list[Object],
                    max_per_slice: int) -> None:
    creates, deletes = len(plan.create), len(plan.delete)
    by_ports: dict[PortKey, list[Object]] = {}
    for slice_ in existing:
        if owned_by(slice_, service):
            by_ports.setdefault(port_key(slice_.get("ports") or []), []).append(slice_)
        else:
            plan.delete.append(slice_)
    for key, group in groups.items():
        _reconcile_ports(plan, service, address_type, by_ports.get(key, []), group,
                         max_per_slice)
    for key, slices in by_ports.items():
        if key not in groups:
            plan.delete.extend(slices)
    if len(plan.delete) - deletes == len(existing) and len(plan.create) == creates:
        placeholder = new_slice(service, [], address_type)
        fresh = plan.delete[deletes:]
        if len(fresh) == 1 and _is_placeholder_of(fresh[0], placeholder):
            plan.delete.remove(fresh[0])
        else:
            plan.create.append(placeholder)


def _reconcile_ports(plan: Plan, service: Object, address_type: str, existing: list[Object],
                     group: Desired, max_per_slice: int) -> None:
    remaining = dict(group.endpoints)
    changed: list[Object] = []
    unchanged: list[Object] = []
    for slice_ in existing:
        kept = []
        updated = False
        for endpoint in slice_.get("endpoints") or []:
            want = remaining.pop(endpoint_key(endpoint), None)
            if want is not None:
                kept.append(want)
                updated = updated or want != endpoint
        labels, relabeled = slice_labels(slice_["metadata"].get("labels") or {}, service)
        if updated or len(kept) != len(slice_.get("endpoints") or []):
            if not kept:
                plan.delete.append(slice_)
                continue
            changed.append(_with(slice_, kept, labels))
        elif relabeled:
            changed.append(_with(slice_, kept, labels))
        else:
            unchanged.append(slice_)
    pending = [remaining[k] for k in sorted(remaining, key=_sort_key)]
    for slice_ in sorted(changed, key=lambda s: -len(s["endpoints"])):
        room = max_per_slice - len(slice_["endpoints"])
        if room > 0:
            slice_["endpoints"].extend(pending[:room])
            pending = pending[room:]
    while pending:
        target = None
        if len(pending) < max_per_slice and unchanged:
            target = _slice_to_fill(unchanged, len(pending), max_per_slice)
        if target is None:
            target = new_slice(service, group.ports, address_type)
            plan.create.append(target)
        else:
            unchanged.remove(target)
            target = _with(target, list(target.get("endpoints") or []),
                           target["metadata"].get("labels") or {})
            changed.append(target)
        room = max_per_slice - len(target["endpoints"])
        target["endpoints"].extend(pending[:room])
        pending = pending[room:]
    plan.update.extend(changed)


def _with(slice_: Object, endpoints: list[Object], labels: dict[str, str]) -> Object:
    out = copy.deepcopy(slice_)
    out["endpoints"] = endpoints
    out["metadata"]["labels"] = dict(labels)
    return out


def _slice_to_fill(slices: list[Object], count: int, max_per_slice: int) -> Object | None:
    """The unchanged slice that `count` more endpoints fill the closest to full."""
    best, best_gap = None, max_per_slice
    for slice_ in slices:
        gap = max_per_slice - (count + len(slice_.get("endpoints") or []))
        if 0 <= gap < best_gap:
            best, best_gap = slice_, gap
    return best


def _sort_key(key: EndpointKey) -> tuple[Any, ...]:
    return (tuple(ip_sort_key(a) for a in key[0]), key[3])
