"""The harness's etcd is a real etcd: its v3 gRPC API answers puts, gets and transactions."""

from __future__ import annotations

from urllib.parse import urlparse

import aetcd

from pinnace.local.etcd import Etcd


async def test_etcd_put_get_and_revision(etcd: Etcd) -> None:
    endpoint = urlparse(etcd.endpoint)
    async with aetcd.Client(host=endpoint.hostname, port=endpoint.port) as client:
        first = await client.put(b"/registry/test/a", b"1")
        second = await client.put(b"/registry/test/a", b"2")
        assert second.header.revision == first.header.revision + 1
        got = await client.get(b"/registry/test/a")
        assert got.value == b"2"
        assert got.mod_revision == second.header.revision
        await client.delete(b"/registry/test/a")
        assert await client.get(b"/registry/test/a") is None
