"""The `Storage` contract, run against the memory fake and against a real etcd (EtcdStorage).

Both backends must answer alike: the registry's unit tests run on MemoryStorage and production
runs on etcd, so any difference here is a bug in one of them. The etcd runs once per module in a
short directory under /tmp; each test works under its own key prefix. An etcd nobody listens on
must fail fast with `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.apiserver.storage.etcd import EtcdStorage
from controlplane.apiserver.storage.interface import (
    Compacted,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    NoChange,
    Object,
    Progress,
    Storage,
    Unavailable,
    WatchEvent,
)
from controlplane.apiserver.storage.memory import MemoryStorage
from pinnace.local.etcd import Etcd
from pinnace.local.process import free_port


def _etcd_unusable() -> str | None:
    if shutil.which("etcd") is None:
        return "etcd is not installed (scripts/setup.sh installs it)"
    if os.geteuid() != 0:
        return "the etcd contract tests run as root only, like the other real-component tests"
    return None


ETCD_SKIP = _etcd_unusable()


@pytest.fixture(scope="module")
def etcd_server() -> Iterator[Etcd]:
    base = Path(tempfile.mkdtemp(prefix="pn-st-", dir="/tmp"))
    server = Etcd(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.skipif(
    ETCD_SKIP is not None, reason=ETCD_SKIP or ""))])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    backend: Storage
    if request.param == "memory":
        backend = MemoryStorage()
    else:
        server: Etcd = request.getfixturevalue("etcd_server")
        backend = EtcdStorage([server.endpoint], timeout=5)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own (the etcd is shared by the module)."""
    return f"/registry/contract-{uuid.uuid4().hex[:8]}/"


def obj(name: str, **spec: Any) -> Object:
    return {"kind": "Thing", "metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def rv(o: Object | None) -> int:
    assert o is not None
    return int(o["metadata"]["resourceVersion"])


def set_spec(**values: Any) -> Any:
    async def update(current: Object) -> Object:
        current["spec"].update(values)
        return current
    return update


@contextlib.asynccontextmanager
async def watching(events: AsyncIterator[WatchEvent | Progress]) -> AsyncIterator[
        AsyncIterator[WatchEvent | Progress]]:
    """Iterate a storage watch, then close it (ending the etcd stream) however the block ends."""
    try:
        yield events
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def next_event(events: AsyncIterator[WatchEvent | Progress]) -> WatchEvent:
    """The next change from a storage watch, skipping progress marks (fails after 5 s)."""
    while True:
        item = await asyncio.wait_for(anext(events), 5)
        if isinstance(item, WatchEvent):
            return item


# --- create, get, current_revision ------------------------------------------------------------

async def test_create_returns_resource_version_equal_to_the_revision(
        storage: Storage, prefix: str) -> None:
    before = await storage.current_revision()
    body = obj("a", x=1)
    body["metadata"]["resourceVersion"] = "12345"  # ignored: the store assigns it
    created = await storage.create(prefix + "a", body)
    revision = await storage.current_revision()
    assert revision == before + 1
    assert rv(created) == revision
    assert created["spec"] == {"x": 1}
    assert body["metadata"]["resourceVersion"] == "12345"  # the caller's object is untouched
    assert await storage.get(prefix + "a") == created


async def test_create_twice_is_key_exists_and_writes_nothing(
        storage: Storage, prefix: str) -> None:
    await storage.create(prefix + "a", obj("a", x=1))
    revision = await storage.current_revision()
    with pytest.raises(KeyExists):
        await storage.create(prefix + "a", obj("a", x=2))
    assert await storage.current_revision() == revision
    assert (await storage.get(prefix + "a") or {})["spec"] == {"x": 1}


async def test_get_missing_and_get_after_update(storage: Storage, prefix: str) -> None:
    assert await storage.get(prefix + "missing") is None
    created = await storage.create(prefix + "a", obj("a", x=1))
    updated = await storage.guaranteed_update(prefix + "a", set_spec(x=2))
    assert rv(updated) == rv(created) + 1 == await storage.current_revision()
    got = await storage.get(prefix + "a")
    assert got == updated
    assert rv(got) == rv(updated)


async def test_current_revision_counts_every_write(storage: Storage, prefix: str) -> None:
    start = await storage.current_revision()
    await storage.create(prefix + "a", obj("a"))
    await storage.guaranteed_update(prefix + "a", set_spec(x=1))
    await storage.delete(prefix + "a")
    assert await storage.current_revision() == start + 3


# --- list -------------------------------------------------------------------------------------

async def test_list_by_prefix_sorted_by_key(storage: Storage, prefix: str) -> None:
    for key in ("ns2/b", "ns1/c", "ns1/a"):
        await storage.create(prefix + key, obj(key.split("/")[1]))
    sibling = prefix.rstrip("/") + "x/ns1/z"  # shares the prefix's text but not its '/'
    await storage.create(sibling, obj("z"))
    result = await storage.list(prefix)
    assert [o["metadata"]["name"] for o in result.items] == ["a", "c", "b"]
    assert result.revision == await storage.current_revision()
    assert (result.next_key, result.remaining) == ("", 0)
    ns1 = await storage.list(prefix + "ns1/")
    assert [o["metadata"]["name"] for o in ns1.items] == ["a", "c"]
    assert all(rv(o) > 0 for o in ns1.items)
    assert (await storage.list(prefix + "none/")).items == []


async def test_list_pages_with_limit_start_key_and_remaining(
        storage: Storage, prefix: str) -> None:
    for name in "abcde":
        await storage.create(prefix + name, obj(name))
    first = await storage.list(prefix, limit=2)
    assert [o["metadata"]["name"] for o in first.items] == ["a", "b"]
    assert first.next_key and first.remaining == 3
    # Changes between pages are not seen: the next pages read at the first page's revision.
    await storage.delete(prefix + "c")
    await storage.create(prefix + "bb", obj("bb"))
    second = await storage.list(prefix, revision=first.revision, limit=2,
                                start_key=first.next_key)
    assert [o["metadata"]["name"] for o in second.items] == ["c", "d"]
    assert second.revision == first.revision
    assert second.next_key and second.remaining == 1
    last = await storage.list(prefix, revision=first.revision, limit=2,
                              start_key=second.next_key)
    assert [o["metadata"]["name"] for o in last.items] == ["e"]
    assert (last.next_key, last.remaining) == ("", 0)
    now = await storage.list(prefix)
    assert [o["metadata"]["name"] for o in now.items] == ["a", "b", "bb", "d", "e"]


async def test_list_exactly_limit_items_is_complete(storage: Storage, prefix: str) -> None:
    for name in "ab":
        await storage.create(prefix + name, obj(name))
    result = await storage.list(prefix, limit=2)
    assert len(result.items) == 2
    assert (result.next_key, result.remaining) == ("", 0)


async def test_list_at_an_older_revision(storage: Storage, prefix: str) -> None:
    a = await storage.create(prefix + "a", obj("a", x=1))
    at_a = await storage.current_revision()
    await storage.guaranteed_update(prefix + "a", set_spec(x=2))
    b = await storage.create(prefix + "b", obj("b"))
    await storage.delete(prefix + "b")
    old = await storage.list(prefix, revision=at_a)
    assert old.items == [a] and old.revision == at_a
    with_b = await storage.list(prefix, revision=rv(b))
    assert [(o["metadata"]["name"], o["spec"]) for o in with_b.items] == [
        ("a", {"x": 2}), ("b", {})]
    assert [rv(o) for o in with_b.items] == [rv(b) - 1, rv(b)]
    assert [o["metadata"]["name"] for o in (await storage.list(prefix)).items] == ["a"]


async def test_list_at_a_future_revision_fails(storage: Storage, prefix: str) -> None:
    with pytest.raises(FutureRevision):
        await storage.list(prefix, revision=await storage.current_revision() + 100)


# --- guaranteed_update ------------------------------------------------------------------------

async def test_guaranteed_update_retries_when_a_concurrent_writer_wins(
        storage: Storage, prefix: str) -> None:
    key = prefix + "a"
    created = await storage.create(key, obj("a", n=0))
    seen: list[Object] = []

    async def update(current: Object) -> Object:
        seen.append(copy.deepcopy(current))
        if len(seen) == 1:  # someone else writes between our read and our write
            await storage.guaranteed_update(key, set_spec(other=True))
        current["spec"]["n"] += 1
        return current

    result = await storage.guaranteed_update(key, update)
    assert len(seen) == 2
    assert seen[1]["spec"] == {"n": 0, "other": True}  # the retry saw the winner's write
    assert rv(seen[1]) == rv(created) + 1
    assert result["spec"] == {"n": 1, "other": True}
    assert rv(result) == rv(created) + 2 == await storage.current_revision()
    assert await storage.get(key) == result


async def test_no_change_and_identical_updates_do_not_write(
        storage: Storage, prefix: str) -> None:
    key = prefix + "a"
    created = await storage.create(key, obj("a", x=1))
    revision = await storage.current_revision()

    async def no_change(current: Object) -> Object:
        raise NoChange

    async def same(current: Object) -> Object:
        current["metadata"]["resourceVersion"] = "1"  # not part of the stored value
        return current

    assert await storage.guaranteed_update(key, no_change) == created
    assert await storage.guaranteed_update(key, same) == created
    assert await storage.current_revision() == revision


async def test_update_errors_propagate_and_write_nothing(storage: Storage, prefix: str) -> None:
    key = prefix + "a"
    created = await storage.create(key, obj("a", x=1))

    async def refuse(current: Object) -> Object:
        current["spec"]["x"] = 2
        raise ValueError("no")

    with pytest.raises(ValueError):
        await storage.guaranteed_update(key, refuse)
    assert await storage.get(key) == created
    with pytest.raises(KeyNotFound):
        await storage.guaranteed_update(prefix + "missing", set_spec(x=1))


# --- delete -----------------------------------------------------------------------------------

async def test_delete_returns_the_last_state_at_the_deletion_revision(
        storage: Storage, prefix: str) -> None:
    key = prefix + "a"
    await storage.create(key, obj("a", x=1))
    updated = await storage.guaranteed_update(key, set_spec(x=2))
    deleted = await storage.delete(key, check=lambda current: None)
    assert deleted["spec"] == {"x": 2}
    assert rv(deleted) == rv(updated) + 1 == await storage.current_revision()
    assert await storage.get(key) is None
    with pytest.raises(KeyNotFound):
        await storage.delete(key)


async def test_delete_with_a_failing_check_leaves_the_key(storage: Storage, prefix: str) -> None:
    key = prefix + "a"
    created = await storage.create(key, obj("a", x=1))
    revision = await storage.current_revision()
    checked: list[Object] = []

    def check(current: Object) -> None:
        checked.append(current)
        raise PermissionError("precondition failed")

    with pytest.raises(PermissionError):
        await storage.delete(key, check=check)
    assert checked == [created]
    assert await storage.get(key) == created
    assert await storage.current_revision() == revision


# --- watch ------------------------------------------------------------------------------------

async def test_watch_delivers_changes_after_the_revision_in_order(
        storage: Storage, prefix: str) -> None:
    await storage.create(prefix + "before", obj("before"))
    start = await storage.current_revision()
    created = await storage.create(prefix + "a", obj("a", x=1))
    updated = await storage.guaranteed_update(prefix + "a", set_spec(x=2))
    await storage.create(prefix.rstrip("/") + "x/a", obj("elsewhere"))  # not under prefix
    async with watching(storage.watch(prefix, start)) as events:
        added = await next_event(events)  # replayed from history
        modified = await next_event(events)
        deleted = await storage.delete(prefix + "a")  # and live from here
        gone = await next_event(events)
    assert (added.type, added.key, added.revision) == ("ADDED", prefix + "a", rv(created))
    assert added.object == created and added.prev_object is None
    assert (modified.type, modified.revision) == ("MODIFIED", rv(updated))
    assert modified.object == updated and modified.prev_object == created
    assert (gone.type, gone.key, gone.revision) == ("DELETED", prefix + "a", rv(deleted))
    assert gone.object["spec"] == {"x": 2}  # the last state ...
    assert rv(gone.object) == rv(deleted)  # ... at the deletion's revision
    assert gone.object == deleted


async def test_watch_from_a_compacted_revision_raises_compacted(
        storage: Storage, prefix: str) -> None:
    old = await storage.current_revision()
    for name in "abc":
        await storage.create(prefix + name, obj(name))
    compacted = await storage.current_revision() - 1  # the write of "b"
    await storage.compact(compacted)
    with pytest.raises(Compacted):
        async with watching(storage.watch(prefix, old)) as events:
            await next_event(events)
    with pytest.raises(Compacted):
        await storage.list(prefix, revision=compacted - 1)
    # The compacted revision itself is kept, as etcd keeps it.
    assert [o["metadata"]["name"] for o in (
        await storage.list(prefix, revision=compacted)).items] == ["a", "b"]
    async with watching(storage.watch(prefix, compacted - 1)) as events:
        assert (await next_event(events)).key == prefix + "b"
        assert (await next_event(events)).key == prefix + "c"
    await storage.compact(compacted)  # compacting again is harmless
    with pytest.raises(FutureRevision):
        await storage.compact(await storage.current_revision() + 100)


# --- an etcd that is not there ----------------------------------------------------------------

async def test_unreachable_etcd_is_unavailable_fast() -> None:
    storage = EtcdStorage([f"http://127.0.0.1:{free_port()}"], timeout=1)
    key = "/registry/things/ns/a"

    async def watch() -> None:
        async with watching(storage.watch("/registry/things/", 0)) as events:
            await anext(events)

    calls = {
        "create": lambda: storage.create(key, obj("a")),
        "get": lambda: storage.get(key),
        "list": lambda: storage.list("/registry/things/"),
        "update": lambda: storage.guaranteed_update(key, set_spec(x=1)),
        "delete": lambda: storage.delete(key),
        "current_revision": storage.current_revision,
        "watch": watch,
    }
    try:
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(Unavailable):
                await asyncio.wait_for(call(), 3)  # a hang fails here as TimeoutError
            assert time.monotonic() - started < 3, name
    finally:
        await storage.close()


async def test_memory_watch_lagging_behind_a_compaction_fails() -> None:
    """MemoryStorage only: a watch that has not yet taken changes that compaction dropped fails
    with Compacted rather than skipping them silently."""
    storage = MemoryStorage()
    start = await storage.current_revision()
    await storage.create("/registry/things/a", obj("a"))
    async with watching(storage.watch("/registry/things/", start)) as events:
        assert (await next_event(events)).key == "/registry/things/a"
        for name in "bc":
            await storage.create(f"/registry/things/{name}", obj(name))
        await storage.compact(await storage.current_revision())  # drops the write of "b"
        with pytest.raises(Compacted):
            await next_event(events)
