"""Our client library (REST client, informer, leader election) against the real apiserver."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from controlplane.api import errors
from controlplane.client.informer import Informer
from controlplane.client.leaderelection import LeaderElector
from controlplane.client.rest import CONFIGMAPS, LEASES, NAMESPACES, RESTClient


@pytest.fixture
async def namespace(client: RESTClient) -> str:
    name = f"c-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def test_crud_and_errors(client: RESTClient, namespace: str) -> None:
    created = await client.create(CONFIGMAPS, {"metadata": {"name": "a"}, "data": {"k": "1"}},
                                  namespace)
    assert created["metadata"]["uid"]
    with pytest.raises(errors.AlreadyExists, match='configmaps "a" already exists'):
        await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace)
    patched = await client.patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, namespace)
    assert patched["data"] == {"k": "2"}
    stale = dict(created, data={"k": "3"})
    with pytest.raises(errors.Conflict):
        await client.update(CONFIGMAPS, stale, namespace)
    await client.delete(CONFIGMAPS, "a", namespace)
    with pytest.raises(errors.NotFound):
        await client.get(CONFIGMAPS, "a", namespace)


async def test_informer_follows_changes(client: RESTClient, namespace: str) -> None:
    await client.create(CONFIGMAPS, {"metadata": {"name": "before"}}, namespace)
    seen: list[tuple[str, str]] = []
    informer = Informer(client, CONFIGMAPS, namespace=namespace)
    informer.add_handlers(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                          on_update=lambda a, b: seen.append(("update", b["metadata"]["name"])),
                          on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    informer.start()
    try:
        await informer.wait_synced(10)
        assert seen == [("add", "before")]
        await client.create(CONFIGMAPS, {"metadata": {"name": "after"}}, namespace)
        await client.patch(CONFIGMAPS, "after", {"data": {"x": "y"}}, namespace)
        await client.delete(CONFIGMAPS, "before", namespace)
        for _ in range(100):
            if len(seen) >= 4:
                break
            await asyncio.sleep(0.05)
        assert seen[1:] == [("add", "after"), ("update", "after"), ("delete", "before")]
        assert informer.get(f"{namespace}/after")["data"] == {"x": "y"}  # type: ignore[index]
        assert informer.get(f"{namespace}/before") is None
    finally:
        await informer.stop()


async def test_one_leader_at_a_time(client: RESTClient, namespace: str) -> None:
    a = LeaderElector(client, name="election", namespace=namespace, identity="a",
                      lease_duration=2, renew_deadline=1.5, retry_period=0.2)
    b = LeaderElector(client, name="election", namespace=namespace, identity="b",
                      lease_duration=2, renew_deadline=1.5, retry_period=0.2)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # a holds an unexpired lease
    assert await a.try_acquire_or_renew()  # renewing works
    await asyncio.sleep(2.3)  # a stops renewing: the lease expires
    assert await b.try_acquire_or_renew()
    assert not await a.try_acquire_or_renew()
    lease = await client.get(LEASES, "election", namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
