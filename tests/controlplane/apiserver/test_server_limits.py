"""The apiserver's request limits, in process over MemoryStorage."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from controlplane.apiserver.server import APIServer
from controlplane.apiserver.storage.memory import MemoryStorage


async def test_too_many_requests_in_flight_is_429() -> None:
    api = APIServer(MemoryStorage(), authenticate=False, max_read=0, max_write=0)
    await api.start()
    try:
        async with TestClient(TestServer(api.app())) as client:
            response = await client.get("/api/v1/namespaces")
            assert response.status == 429
            status = await response.json()
            assert status["reason"] == "TooManyRequests"
            assert status["details"]["retryAfterSeconds"] == 1
    finally:
        await api.stop()


async def test_body_over_3_mib_is_413() -> None:
    api = APIServer(MemoryStorage(), authenticate=False)
    await api.start()
    try:
        async with TestClient(TestServer(api.app())) as client:
            body = b'{"metadata":{"name":"x"},"data":{"k":"' + b"a" * (3 * 1024 * 1024) + b'"}}'
            response = await client.post("/api/v1/namespaces/default/configmaps", data=body,
                                         headers={"Content-Type": "application/json"})
            assert response.status == 413
            assert (await response.json())["reason"] == "RequestEntityTooLarge"
    finally:
        await api.stop()
