"""etcd compaction between apiservers, and the apiserver through an etcd outage."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.apiserver.storage.compactor import Compactor
from controlplane.apiserver.storage.etcd import EtcdStorage
from controlplane.apiserver.storage.interface import Compacted
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.etcd import Etcd


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[Etcd]:
    """An etcd of this test's own: the session's has apiservers whose compactors take turns too."""
    server = Etcd(tmp_path / "etcd")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_compactors_take_turns_and_keep_one_interval(own_etcd: Etcd) -> None:
    storage = EtcdStorage([own_etcd.endpoint])
    first, second = Compactor(storage, interval=1), Compactor(storage, interval=1)
    try:
        await storage.create("/registry/compact-test/a", {"metadata": {"name": "a"}})
        await first.tick()  # claims the round; nothing to compact yet
        await second.tick()  # loses: learns the claim
        assert (first.compacted, second.compacted) == (0, 0)
        claimed = first.previous
        await storage.create("/registry/compact-test/b", {"metadata": {"name": "b"}})
        await second.tick()  # wins this round: compacts at the first claim
        assert second.compacted == claimed
        with pytest.raises(Compacted):
            await storage.list("/registry/compact-test/", revision=claimed - 1)
        listed = await storage.list("/registry/compact-test/", revision=claimed)
        assert [o["metadata"]["name"] for o in listed.items] == ["a"]
    finally:
        await storage.close()


def _get(url: str, context: ssl.SSLContext) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=20, context=context) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_etcd_outage_is_503_and_recovers_without_restart(tmp_path: Path) -> None:
    base = Path(str(tmp_path))
    etcd = Etcd(base / "etcd")
    etcd.start()
    api = APIServerProcess(base / "api", etcd.endpoint)
    try:
        api.start()
        context = api.ssl_context()
        url = api.url + "/api/v1/namespaces/default/configmaps"
        assert _get(url, context)[0] == 200
        etcd.stop()
        started = time.monotonic()
        code, status = _get(url, context)
        assert code == 503 and status["kind"] == "Status"
        assert "etcd" in str(status["message"])
        assert time.monotonic() - started < 15
        assert api.process.alive()
        etcd.process.start()  # same data dir and ports
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _get(url, context)[0] == 200:
                break
            time.sleep(0.5)
        assert _get(url, context)[0] == 200
        request = urllib.request.Request(
            url, method="POST", data=json.dumps({"metadata": {"name": "after"}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20, context=context) as response:
            assert response.status == 201
    finally:
        api.stop()
        etcd.stop()
