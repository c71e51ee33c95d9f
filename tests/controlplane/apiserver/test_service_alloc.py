"""Services get ClusterIPs and NodePorts through the store's hooks; `kubernetes` at bootstrap."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.apiserver.registry.store import Store
from controlplane.apiserver.server import APIServer
from controlplane.apiserver.storage.interface import Object, UpdateFunc
from controlplane.apiserver.storage.memory import MemoryStorage

NS = "default"


@pytest.fixture
async def api() -> AsyncIterator[APIServer]:
    server = APIServer(MemoryStorage(), authenticate=False, server_address="10.0.0.5:6443")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def store(api: APIServer, resource: str) -> Store:
    return next(s for i, s in api.stores.items() if i.resource == resource and i.version == "v1"
                and i.group in ("", "discovery.k8s.io"))


def svc(name: str, kind: str = "ClusterIP", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {
        "type": kind, "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
    body["spec"].update(spec)
    return body


async def held(api: APIServer) -> tuple[set[str], set[int]]:
    return set(await api.service_ips.allocated()), set(await api.node_ports.allocated())


async def test_kubernetes_service_and_endpoints_at_bootstrap(api: APIServer) -> None:
    services, endpoints = store(api, "services"), store(api, "endpoints")
    kubernetes = await services.get(NS, "kubernetes")
    assert kubernetes["spec"]["clusterIP"] == "10.96.0.1"
    assert kubernetes["spec"]["clusterIPs"] == ["10.96.0.1"]
    assert kubernetes["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                           "targetPort": 6443}]
    assert "selector" not in kubernetes["spec"]
    ep = await endpoints.get(NS, "kubernetes")
    assert ep["subsets"] == [{"addresses": [{"ip": "10.0.0.5"}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    endpoint_slice = await store(api, "endpointslices").get(NS, "kubernetes")
    assert endpoint_slice["endpoints"][0]["addresses"] == ["10.0.0.5"]
    assert await held(api) == ({"10.96.0.1"}, set())
    await api.bootstrap()  # idempotent
    assert (await endpoints.get(NS, "kubernetes"))["metadata"]["resourceVersion"] == (
        ep["metadata"]["resourceVersion"])
    # A second apiserver on the same storage adds its address.
    other = APIServer(api.storage, authenticate=False, server_address="10.0.0.6:6443")
    await other.start()
    await other.stop()
    addresses = (await endpoints.get(NS, "kubernetes"))["subsets"][0]["addresses"]
    assert addresses == [{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}]
    assert (await services.get(NS, "kubernetes"))["metadata"]["uid"] == (
        kubernetes["metadata"]["uid"])


async def test_cluster_ip_allocated_with_families(api: APIServer) -> None:
    created = await store(api, "services").create(NS, svc("web"))
    spec = created["spec"]
    assert api.service_ips.contains(spec["clusterIP"]) and spec["clusterIP"] != "10.96.0.1"
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")
    assert "nodePort" not in spec["ports"][0]
    assert spec["clusterIP"] in (await held(api))[0]


async def test_requested_cluster_ip_honoured_then_refused(api: APIServer) -> None:
    services = store(api, "services")
    created = await services.create(NS, svc("a", clusterIP="10.96.0.5"))
    assert created["spec"]["clusterIPs"] == ["10.96.0.5"]
    with pytest.raises(errors.Invalid) as raised:
        await services.create(NS, svc("b", clusterIP="10.96.0.5"))
    assert raised.value.code == 422
    assert raised.value.message == (
        'Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.5"}: failed '
        "to allocate IP 10.96.0.5: provided IP is already allocated")
    with pytest.raises(errors.Invalid) as raised:
        await services.create(NS, svc("c", clusterIP="10.0.0.9"))
    assert raised.value.message.endswith(
        "failed to allocate IP 10.0.0.9: the provided IP (10.0.0.9) is not in the valid range. "
        "The range of valid IPs is 10.96.0.0/12")
    with pytest.raises(errors.Invalid, match="must be a valid IP address"):
        await services.create(NS, svc("d", clusterIP="ten"))


async def test_node_ports_allocated_and_refused(api: APIServer) -> None:
    services = store(api, "services")
    created = await services.create(NS, svc("np", "NodePort"))
    port = created["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767 and created["spec"]["clusterIP"]
    await services.create(NS, svc("fixed", "NodePort", ports=[
        {"port": 80, "nodePort": 30080}]))
    before = await held(api)
    with pytest.raises(errors.Invalid) as raised:
        await services.create(NS, svc("again", "NodePort", ports=[
            {"port": 80, "nodePort": 30080}]))
    assert raised.value.message == (
        'Service "again" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided '
        "port is already allocated")
    assert await held(api) == before  # the ClusterIP taken before the port failed is back
    with pytest.raises(errors.Invalid, match="may not be used when `type` is 'ClusterIP'"):
        await services.create(NS, svc("cip", ports=[{"port": 80, "nodePort": 30081}]))


async def test_tcp_and_udp_of_one_port_share_the_node_port(api: APIServer) -> None:
    created = await store(api, "services").create(NS, svc("dns", "NodePort", ports=[
        {"name": "udp", "port": 53, "protocol": "UDP"},
        {"name": "tcp", "port": 53, "protocol": "TCP"}]))
    first, second = (p["nodePort"] for p in created["spec"]["ports"])
    assert first == second
    assert (await held(api))[1] == {first}


async def test_failed_create_and_dry_run_take_nothing(api: APIServer) -> None:
    services = store(api, "services")
    await services.create(NS, svc("dup"))
    before = await held(api)
    with pytest.raises(errors.AlreadyExists):
        await services.create(NS, svc("dup", "NodePort", clusterIP="10.96.0.77"))
    dry = await services.create(NS, svc("dry", "NodePort"), dry_run=True)
    assert "clusterIP" not in dry["spec"]
    with pytest.raises(errors.Invalid, match="already allocated"):
        await services.create(NS, svc("dry2", clusterIP="10.96.0.1"), dry_run=True)
    assert await held(api) == before


async def test_headless_and_external_name(api: APIServer) -> None:
    services = store(api, "services")
    before = await held(api)
    headless = await services.create(NS, svc("hl", clusterIP="None"))
    assert headless["spec"]["clusterIPs"] == ["None"]
    external = await services.create(NS, {"metadata": {"name": "ext"}, "spec": {
        "type": "ExternalName", "externalName": "example.com"}})
    assert "clusterIP" not in external["spec"] and "ipFamilies" not in external["spec"]
    with pytest.raises(errors.Invalid, match="may not be set to 'None' for NodePort services"):
        await services.create(NS, svc("hlnp", "NodePort", clusterIP="None"))
    assert await held(api) == before


async def test_updates_keep_allocations_and_type_changes_move_them(api: APIServer) -> None:
    services = store(api, "services")
    created = await services.create(NS, svc("web"))
    ip = created["spec"]["clusterIP"]
    # A replace without the allocated fields keeps them (kubectl replace of the original file).
    replaced, _ = await services.update(NS, "web", svc("web"))
    assert replaced["spec"]["clusterIP"] == ip
    with pytest.raises(errors.Invalid, match="field is immutable"):
        await services.update(NS, "web", svc("web", clusterIP="10.96.0.99"))
    # ClusterIP -> NodePort allocates a node port.
    live = copy.deepcopy(replaced)
    live["spec"]["type"] = "NodePort"
    nodeport, _ = await services.update(NS, "web", live)
    port = nodeport["spec"]["ports"][0]["nodePort"]
    assert nodeport["spec"]["clusterIP"] == ip and (await held(api))[1] == {port}
    # NodePort -> ClusterIP drops and releases it (the client left nodePort as it was).
    live = copy.deepcopy(nodeport)
    live["spec"]["type"] = "ClusterIP"
    back, _ = await services.update(NS, "web", live)
    assert "nodePort" not in back["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in back["spec"]
    assert (await held(api))[1] == set()
    # -> ExternalName releases the ClusterIP.
    live = copy.deepcopy(back)
    live["spec"].update(type="ExternalName", externalName="example.com")
    external, _ = await services.update(NS, "web", live)
    assert "clusterIP" not in external["spec"] and ip not in (await held(api))[0]


async def test_dry_run_update_takes_nothing(api: APIServer) -> None:
    services = store(api, "services")
    created = await services.create(NS, svc("web"))
    before = await held(api)
    live = copy.deepcopy(created)
    live["spec"]["type"] = "NodePort"
    await services.update(NS, "web", live, dry_run=True)
    assert await held(api) == before


async def test_delete_releases_everything(api: APIServer) -> None:
    services = store(api, "services")
    before = await held(api)
    await services.create(NS, svc("lb", "LoadBalancer", clusterIP="10.96.0.50",
                                  externalTrafficPolicy="Local"))
    created = await services.get(NS, "lb")
    assert created["spec"]["healthCheckNodePort"] != created["spec"]["ports"][0]["nodePort"]
    assert len((await held(api))[1]) == 2
    await services.delete(NS, "lb", {})
    assert await held(api) == before
    again = await services.create(NS, svc("lb2", clusterIP="10.96.0.50"))
    assert again["spec"]["clusterIP"] == "10.96.0.50"


async def test_finalizer_removal_releases(api: APIServer) -> None:
    services = store(api, "services")
    before = await held(api)
    body = svc("fin", "NodePort")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await services.create(NS, body)
    _, now = await services.delete(NS, "fin", {})
    assert not now and await held(api) != before  # still there, still holding
    live = await services.get(NS, "fin")
    live["metadata"]["finalizers"] = []
    await services.update(NS, "fin", live)
    assert await held(api) == before


async def test_families_this_cluster_cannot_serve(api: APIServer) -> None:
    services = store(api, "services")
    with pytest.raises(errors.Invalid, match="not configured for dual-stack"):
        await services.create(NS, svc("ds", ipFamilyPolicy="RequireDualStack"))
    with pytest.raises(errors.Invalid, match=r"spec.ipFamilies\[0\]: Invalid value: \"IPv6\""):
        await services.create(NS, svc("v6", ipFamilies=["IPv6"]))
    prefer = await services.create(NS, svc("pref", ipFamilyPolicy="PreferDualStack"))
    assert prefer["spec"]["ipFamilies"] == ["IPv4"]


class RacingStorage(MemoryStorage):
    """Yields inside every update, so concurrent updates of one key conflict and retry."""

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        async def slow(obj: Object) -> Object:
            await asyncio.sleep(0)
            return await update(obj)

        return await super().guaranteed_update(key, slow)


async def test_retried_updates_leak_nothing() -> None:
    api = APIServer(RacingStorage(), authenticate=False, server_address="10.0.0.5:6443")
    await api.start()
    try:
        services = store(api, "services")
        created = await services.create(NS, svc("web"))
        live = copy.deepcopy(created)
        live["spec"]["type"] = "NodePort"
        del live["metadata"]["resourceVersion"]  # last write wins, after retries
        results = await asyncio.gather(*(services.update(NS, "web", live) for _ in range(4)))
        ports = {r["spec"]["ports"][0]["nodePort"] for r, _ in results}
        assert len(ports) == 1
        assert (await held(api))[1] == ports  # each losing try gave its port back
    finally:
        await api.stop()


class RangeRoundTrips(MemoryStorage):
    """Updates of the range bitmaps take an etcd round trip; counts their writes."""

    def __init__(self) -> None:
        super().__init__()
        self.range_writes = 0

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        if not key.startswith("/registry/ranges/"):
            return await super().guaranteed_update(key, update)
        before = self.revision

        async def slow(obj: Object) -> Object:
            await asyncio.sleep(0.005)
            return await update(obj)

        result = await super().guaranteed_update(key, slow)
        self.range_writes += self.revision > before
        return result


async def test_concurrent_creates_share_range_writes_and_leak_nothing() -> None:
    storage = RangeRoundTrips()
    api = APIServer(storage, authenticate=False, server_address="10.0.0.5:6443")
    await api.start()
    try:
        services = store(api, "services")
        await services.create(NS, svc("taken", "NodePort", ports=[
            {"port": 80, "nodePort": 30080}]))
        writes = storage.range_writes
        bodies = [svc(f"s{i}", "NodePort") for i in range(32)]
        # Both fail after taking a ClusterIP (and a port): the store (409) and the allocator (422).
        bodies += [svc("taken", "NodePort"), svc("clash", "NodePort", ports=[
            {"port": 80, "nodePort": 30080}])]
        results = await asyncio.gather(*(services.create(NS, b) for b in bodies),
                                       return_exceptions=True)
        created = [r for r in results if isinstance(r, dict)]
        assert len(created) == 32
        assert isinstance(results[32], errors.AlreadyExists)
        assert isinstance(results[33], errors.Invalid)
        assert "provided port is already allocated" in results[33].message
        ips = {r["spec"]["clusterIP"] for r in created}
        ports = {r["spec"]["ports"][0]["nodePort"] for r in created}
        assert len(ips) == 32 and len(ports) == 32
        # Two ranges per create, 34 creates: far fewer writes than 68 (and the give-backs).
        assert storage.range_writes - writes <= 6, storage.range_writes - writes
        everything = [await services.get(NS, n) for n in ["taken", *(f"s{i}" for i in range(32))]]
        assert await held(api) == (
            {"10.96.0.1", *(s["spec"]["clusterIP"] for s in everything)},
            {s["spec"]["ports"][0]["nodePort"] for s in everything})
    finally:
        await api.stop()
