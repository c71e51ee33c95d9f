"""The apiserver side of health checks: `spec.healthCheckNodePort`, which netproxy serves.

The services store's allocation hooks (controlplane/apiserver/registry/service_alloc.py), over
an in-memory apiserver: a LoadBalancer Service with externalTrafficPolicy Local gets a port from
the node port range, keeps it on updates, gives it back when deleted or when its type or policy
no longer calls for one; a port the client asks for is honoured, or refused with a 422.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.apiserver.registry.store import Store
from controlplane.apiserver.server import APIServer
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


def services(api: APIServer) -> Store:
    return next(s for i, s in api.stores.items()
                if i.resource == "services" and i.version == "v1" and i.group == "")


def lb(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {
        "type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": name},
        "ports": [{"port": 80, "targetPort": 8080}]}}
    body["spec"].update(spec)
    return body


async def ports(api: APIServer) -> set[int]:
    return set(await api.node_ports.allocated())


async def test_allocated_from_the_node_port_range_and_kept_on_update(api: APIServer) -> None:
    store = services(api)
    created = await store.create(NS, lb("web"))
    hc, node_port = created["spec"]["healthCheckNodePort"], created["spec"]["ports"][0]["nodePort"]
    assert 30000 <= hc <= 32767 and hc != node_port
    assert await ports(api) == {hc, node_port}
    # A replace that leaves it out keeps it; so does an unrelated change.
    replaced, _ = await store.update(NS, "web", lb("web"))
    assert replaced["spec"]["healthCheckNodePort"] == hc
    live = copy.deepcopy(replaced)
    live["spec"]["sessionAffinity"] = "ClientIP"
    updated, _ = await store.update(NS, "web", live)
    assert updated["spec"]["healthCheckNodePort"] == hc
    assert await ports(api) == {hc, node_port}


async def test_cluster_policy_and_other_types_get_none(api: APIServer) -> None:
    store = services(api)
    cluster = await store.create(NS, lb("c", externalTrafficPolicy="Cluster"))
    assert "healthCheckNodePort" not in cluster["spec"]
    nodeport = await store.create(NS, lb("n", type="NodePort"))
    assert "healthCheckNodePort" not in nodeport["spec"]


async def test_released_when_the_policy_or_type_changes_and_on_delete(api: APIServer) -> None:
    store = services(api)
    created = await store.create(NS, lb("web"))
    hc = created["spec"]["healthCheckNodePort"]
    live = copy.deepcopy(created)
    live["spec"]["externalTrafficPolicy"] = "Cluster"
    cluster, _ = await store.update(NS, "web", live)
    assert "healthCheckNodePort" not in cluster["spec"]
    assert hc not in await ports(api)
    live = copy.deepcopy(cluster)
    live["spec"]["externalTrafficPolicy"] = "Local"
    local, _ = await store.update(NS, "web", live)
    hc = local["spec"]["healthCheckNodePort"]
    assert hc in await ports(api)
    live = copy.deepcopy(local)
    live["spec"]["type"] = "NodePort"
    nodeport, _ = await store.update(NS, "web", live)
    assert "healthCheckNodePort" not in nodeport["spec"]
    assert await ports(api) == {nodeport["spec"]["ports"][0]["nodePort"]}
    await store.delete(NS, "web", {})
    assert await ports(api) == set()


async def test_a_requested_port_is_honoured_or_refused(api: APIServer) -> None:
    store = services(api)
    created = await store.create(NS, lb("web", healthCheckNodePort=31000))
    assert created["spec"]["healthCheckNodePort"] == 31000 and 31000 in await ports(api)
    before = await ports(api)
    with pytest.raises(errors.Invalid) as raised:
        await store.create(NS, lb("again", healthCheckNodePort=31000))
    assert raised.value.message == (
        'Service "again" is invalid: spec.healthCheckNodePort: Invalid value: 31000: provided '
        "port is already allocated")
    with pytest.raises(errors.Invalid, match="spec.healthCheckNodePort: Invalid value: 80"):
        await store.create(NS, lb("outside", healthCheckNodePort=80))
    with pytest.raises(errors.Invalid, match="may only be set when `type` is 'LoadBalancer'"):
        await store.create(NS, lb("cluster", externalTrafficPolicy="Cluster",
                                  healthCheckNodePort=31001))
    assert await ports(api) == before
    await store.delete(NS, "web", {})
    assert await ports(api) == set()
