"""The informer's transform (client-go's SetTransform) and the REST client's TLS read buffers.

A fake client serves one list and one watch stream; the informer must cache and hand to its
handlers the transformed objects only, keep an object whole when the transform fails on it, and
still track resourceVersions.
"""

from __future__ import annotations

import asyncio
import copy
from asyncio import sslproto
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controlplane.client import rest
from controlplane.client.informer import Informer, Object, strip_managed_fields
from controlplane.client.rest import CONFIGMAPS


def configmap(name: str, rv: str, **data: str) -> Object:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv,
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]},
            "data": data}


class FakeClient:
    """`list` answers `items`; `watch` yields `events`, then waits to be cancelled."""

    def __init__(self, items: list[Object], events: list[Object]) -> None:
        self.items = items
        self.events = events
        self.watched = asyncio.Event()

    async def list(self, *_: Any, **__: Any) -> Object:
        return {"metadata": {"resourceVersion": "10"}, "items": copy.deepcopy(self.items)}

    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[Object]:
        for event in copy.deepcopy(self.events):
            yield event
        self.watched.set()
        await asyncio.Event().wait()


def test_strip_managed_fields_keeps_everything_else() -> None:
    obj = configmap("a", "1", k="v")
    stripped = strip_managed_fields(obj)
    assert stripped == {"metadata": {"namespace": "ns", "name": "a", "resourceVersion": "1"},
                        "data": {"k": "v"}}
    assert "managedFields" in obj["metadata"]  # the original is left alone
    assert strip_managed_fields({"data": {}}) == {"data": {}}


async def test_listed_and_watched_objects_are_cached_transformed() -> None:
    client = FakeClient([configmap("a", "1", k="v")], [
        {"type": "ADDED", "object": configmap("b", "11")},
        {"type": "MODIFIED", "object": configmap("a", "12", k="w")},
        {"type": "DELETED", "object": configmap("b", "13")}])
    informer = Informer(client, CONFIGMAPS, transform=strip_managed_fields)  # type: ignore[arg-type]
    seen: list[tuple[str, Object]] = []
    informer.add_handlers(on_add=lambda o: seen.append(("add", o)),
                          on_update=lambda _, o: seen.append(("update", o)),
                          on_delete=lambda o: seen.append(("delete", o)))
    informer.start()
    try:
        await asyncio.wait_for(client.watched.wait(), 5)
    finally:
        await informer.stop()
    assert [(what, o["metadata"]["name"]) for what, o in seen] == [
        ("add", "a"), ("add", "b"), ("update", "a"), ("delete", "b")]
    assert all("managedFields" not in o["metadata"] for _, o in seen)
    assert informer.store == {"ns/a": strip_managed_fields(configmap("a", "12", k="w"))}
    assert informer.resource_version == "13"


async def test_an_object_the_transform_fails_on_is_cached_whole() -> None:
    def picky(obj: Object) -> Object:
        if obj["metadata"]["name"] == "odd":
            raise ValueError("cannot slim this one")
        return strip_managed_fields(obj)

    client = FakeClient([configmap("odd", "1"), configmap("fine", "2")], [])
    informer = Informer(client, CONFIGMAPS, transform=picky)  # type: ignore[arg-type]
    informer.start()
    try:
        await informer.wait_synced(5)
    finally:
        await informer.stop()
    assert "managedFields" in informer.store["ns/odd"]["metadata"]
    assert "managedFields" not in informer.store["ns/fine"]["metadata"]


def test_clients_lower_asyncio_tls_read_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", 256 * 1024)
    rest._small_tls_read_buffers()
    assert sslproto.SSLProtocol.max_size == rest.TLS_READ_BUFFER == 64 * 1024
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", 16 * 1024)
    rest._small_tls_read_buffers()  # never raised
    assert sslproto.SSLProtocol.max_size == 16 * 1024
