"""LeaderElector over a recording fake client: acquire, respect a live holder, report standby."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from controlplane.client.leaderelection import LeaderElector
from controlplane.client.rest import LEASES, RESTClient
from controlplane.controllers.testing import FakeClient

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def lease(holder: str, renewed: datetime) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kcm", "namespace": "kube-system", "resourceVersion": "1"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def elector(client: FakeClient, seen: list[str]) -> LeaderElector:
    return LeaderElector(cast(RESTClient, client), name="kcm", identity="me",
                         clock=lambda: NOW, on_standby=seen.append)


@pytest.mark.asyncio
async def test_no_lease_is_created_and_won() -> None:
    client, seen = FakeClient(), list[str]()
    assert await elector(client, seen).try_acquire_or_renew()
    assert client.actions() == [("create", "leases", "kcm")]


@pytest.mark.asyncio
async def test_a_live_holder_keeps_it_and_we_are_standby() -> None:
    client, seen = FakeClient(), list[str]()
    client.seed(LEASES, lease("other", NOW - timedelta(seconds=5)))
    e = elector(client, seen)
    assert not await e.try_acquire_or_renew()
    assert e.holder == "other"


@pytest.mark.asyncio
async def test_an_expired_holder_is_replaced() -> None:
    client, seen = FakeClient(), list[str]()
    client.seed(LEASES, lease("other", NOW - timedelta(seconds=60)))
    assert await elector(client, seen).try_acquire_or_renew()
    body = client.bodies("update", "leases")[0]
    assert body["spec"]["holderIdentity"] == "me"
    assert body["spec"]["leaseTransitions"] == 1


@pytest.mark.asyncio
async def test_campaigning_against_a_live_holder_reports_standby() -> None:
    client, seen = FakeClient(), list[str]()
    client.seed(LEASES, lease("other", NOW - timedelta(seconds=1)))
    e = elector(client, seen)
    e.retry_period = 0.01

    async def lead() -> None:
        raise AssertionError("must not lead while another holds the lease")

    task = asyncio.create_task(e.run(lead))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert seen and set(seen) == {"other"}


@pytest.mark.asyncio
async def test_release_gives_up_only_a_lease_we_hold() -> None:
    client = FakeClient()
    held = lease("me", NOW)
    held["spec"]["leaseTransitions"] = 2
    client.seed(LEASES, held)
    await elector(client, list[str]()).release()
    [released] = client.bodies("update", "leases")
    assert released["spec"]["holderIdentity"] is None
    assert released["spec"]["leaseDurationSeconds"] == 1
    assert released["spec"]["leaseTransitions"] == 2  # the next holder counts the transition
    theirs = FakeClient()
    theirs.seed(LEASES, lease("other", NOW))
    await elector(theirs, list[str]()).release()
    assert theirs.bodies("update", "leases") == []
