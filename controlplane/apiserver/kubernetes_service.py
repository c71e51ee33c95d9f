"""The `kubernetes` service in `default`: how pods reach the API (Kubernetes' kubernetesservice
controller and endpoint reconciler, run once at bootstrap).

Every apiserver ensures it idempotently: the service (ClusterIP the first address of the service
range, port 443 "https" to the apiserver's secure port, no selector), then its Endpoints and
EndpointSlice, to which each apiserver adds its own address. Apiservers starting together race
safely: one create wins, the others find the service, or retry while the winner holds the
ClusterIP but has not stored the service yet. Addresses of apiservers that went away are not
removed (Kubernetes does that with leases; not here yet).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
from collections.abc import Callable

from controlplane.api import errors
from controlplane.apiserver.registry.store import Object, Store

log = logging.getLogger(__name__)
NAMESPACE, NAME = "default", "kubernetes"
CREATE_TIMEOUT = 10.0  # seconds to wait for a racing apiserver to store the service


def service(cluster_ip: str, port: int) -> Object:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": port}]},
    }


def endpoints(address: str, port: int) -> Object:
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    }


def endpoint_slice(address: str, port: int) -> Object:
    family = f"IPv{ipaddress.ip_address(address).version}"
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": family,
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


async def ensure(services: Store, endpoint_store: Store, slices: Store, *, cluster_ip: str,
                 address: str, port: int) -> None:
    """Create the `kubernetes` service and add `address:port` to its endpoints."""
    await _ensure_service(services, cluster_ip, port)
    try:
        specific = not ipaddress.ip_address(address).is_unspecified
    except ValueError:
        specific = False
    if not specific:
        log.warning("not publishing %s in the kubernetes endpoints: not one IP address "
                    "(set --advertise-address)", address)
        return
    await _ensure_with_address(endpoint_store, endpoints(address, port), _add_endpoint)
    await _ensure_with_address(slices, endpoint_slice(address, port), _add_slice_endpoint)


async def _ensure_service(services: Store, cluster_ip: str, port: int) -> None:
    deadline = asyncio.get_running_loop().time() + CREATE_TIMEOUT
    while True:
        try:
            await services.get(NAMESPACE, NAME)
            return
        except errors.NotFound:
            pass
        try:
            await services.create(NAMESPACE, service(cluster_ip, port))
            log.info("created service %s/%s clusterIP=%s", NAMESPACE, NAME, cluster_ip)
            return
        except errors.AlreadyExists:
            return
        except errors.Invalid as exc:  # the ClusterIP is held: by a racing apiserver, or leaked
            if asyncio.get_running_loop().time() > deadline:
                log.error("cannot create service %s/%s: %s", NAMESPACE, NAME, exc)
                return
            await asyncio.sleep(0.1)


def _add_endpoint(obj: Object, fresh: Object) -> None:
    """Add the address of `fresh` (Endpoints) to `obj`'s first subset."""
    subsets = obj.get("subsets") or []
    address = fresh["subsets"][0]["addresses"][0]
    if not subsets:
        obj["subsets"] = fresh["subsets"]
    elif address["ip"] not in [a.get("ip") for a in subsets[0].get("addresses") or []]:
        subsets[0].setdefault("addresses", []).append(address)


def _add_slice_endpoint(obj: Object, fresh: Object) -> None:
    """Add the endpoint of `fresh` (EndpointSlice) to `obj`."""
    endpoint = fresh["endpoints"][0]
    known = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    if endpoint["addresses"][0] not in known:
        obj.setdefault("endpoints", []).append(endpoint)


async def _ensure_with_address(store: Store, fresh: Object,
                               add: Callable[[Object, Object], None]) -> None:
    """Create `fresh`, or add its address to the object already there."""
    try:
        await store.create(NAMESPACE, fresh)
        return
    except errors.AlreadyExists:
        pass

    async def mutate(current: Object) -> Object:
        new = copy.deepcopy(current)
        add(new, fresh)
        return store.prepare_update(current, new, "")

    await store.guaranteed_update(NAMESPACE, NAME, mutate)
