"""More of the API surface over real HTTPS and etcd: eviction, deletecollection, bookmarks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from pinnace.local.apiserver import APIServerProcess


@pytest.fixture
async def http(apiserver: APIServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=apiserver.ssl_context())
    async with aiohttp.ClientSession(apiserver.url, connector=connector) as session:
        yield session


@pytest.fixture
async def ns(http: aiohttp.ClientSession) -> str:
    name = f"m-{uuid.uuid4().hex[:8]}"
    async with http.post("/api/v1/namespaces", json={"metadata": {"name": name}}) as r:
        assert r.status == 201
    return name


async def test_eviction_deletes_the_pod(http: aiohttp.ClientSession, ns: str) -> None:
    pod = {"metadata": {"name": "ev"}, "spec": {"containers": [{"name": "c", "image": "b"}]}}
    async with http.post(f"/api/v1/namespaces/{ns}/pods", json=pod) as r:
        assert r.status == 201
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "ev", "namespace": ns}, "deleteOptions": {}}
    async with http.post(f"/api/v1/namespaces/{ns}/pods/ev/eviction", json=eviction) as r:
        assert r.status == 201, await r.text()
    async with http.get(f"/api/v1/namespaces/{ns}/pods/ev") as r:
        assert r.status == 404


async def test_deletecollection_honours_selectors(http: aiohttp.ClientSession, ns: str) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        body = {"metadata": {"name": name, "labels": {"tier": tier}}}
        async with http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body) as r:
            assert r.status == 201
    async with http.delete(f"/api/v1/namespaces/{ns}/configmaps",
                           params={"labelSelector": "tier=web"}) as r:
        assert r.status == 200
        deleted = await r.json()
    assert sorted(i["metadata"]["name"] for i in deleted["items"]) == ["a", "b"]
    async with http.get(f"/api/v1/namespaces/{ns}/configmaps") as r:
        assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["c"]


async def test_watch_sends_bookmarks_when_asked(http: aiohttp.ClientSession, ns: str) -> None:
    async with http.get(f"/api/v1/namespaces/{ns}/configmaps") as r:
        rv = (await r.json())["metadata"]["resourceVersion"]
    url = (f"/api/v1/namespaces/{ns}/configmaps?watch=true&allowWatchBookmarks=true"
           f"&resourceVersion={rv}&timeoutSeconds=20")
    started = time.monotonic()
    async with http.get(url) as r:
        line = await asyncio.wait_for(r.content.readline(), 25)
    event = json.loads(line)
    assert event["type"] == "BOOKMARK"
    assert event["object"]["kind"] == "ConfigMap"
    assert int(event["object"]["metadata"]["resourceVersion"]) >= int(rv)
    assert time.monotonic() - started < 20
