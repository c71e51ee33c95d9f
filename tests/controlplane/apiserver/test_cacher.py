"""The watch cache over MemoryStorage: filling, lists, watches (initial, replayed, live,
filtered), the event window and 410 Expired, slow watchers, freshness waits and relisting after
the storage watch fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.apiserver.storage import cacher
from controlplane.apiserver.storage.cacher import Event, WatchCache, Watcher
from controlplane.apiserver.storage.interface import (
    Object,
    Progress,
    Unavailable,
    UpdateFunc,
    WatchEvent,
)
from controlplane.apiserver.storage.memory import MemoryStorage

PREFIX = "/registry/things/"
BOOM = "boom"  # writing an object of this name breaks FlakyStorage's watches


def thing(name: str, namespace: str = "ns", **labels: str) -> Object:
    return {"kind": "Thing", "metadata": {"name": name, "namespace": namespace,
                                          "labels": labels}, "spec": {}}


def key(name: str, namespace: str = "ns") -> str:
    return f"{PREFIX}{namespace}/{name}"


def everything(obj: Object) -> bool:
    return True


def app_is(value: str) -> cacher.Predicate:
    return lambda obj: (obj["metadata"].get("labels") or {}).get("app") == value


def relabel(**labels: str) -> UpdateFunc:
    async def update(current: Object) -> Object:
        current["metadata"]["labels"] = labels
        return current
    return update


def names(items: list[Object]) -> list[str]:
    return [o["metadata"]["name"] for o in items]


class FlakyStorage(MemoryStorage):
    """MemoryStorage whose watches fail (as an etcd going away) when an object named BOOM is
    written; counts lists."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = 0

    async def list(self, prefix: str, **kwargs: Any) -> Any:
        self.lists += 1
        return await super().list(prefix, **kwargs)

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[WatchEvent | Progress]:
        async for item in super().watch(prefix, revision):
            if isinstance(item, WatchEvent) and item.key.endswith("/" + BOOM):
                raise Unavailable("etcd went away")
            yield item


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


async def started(storage: MemoryStorage, capacity: int = 2000) -> WatchCache:
    cache = WatchCache(storage, PREFIX, capacity=capacity)
    cache.start()
    await asyncio.wait_for(cache.ready.wait(), 5)
    return cache


@pytest.fixture
async def cache(storage: MemoryStorage) -> AsyncIterator[WatchCache]:
    cache = await started(storage)
    try:
        yield cache
    finally:
        await cache.stop()


async def settled(cache: WatchCache) -> None:
    """Wait until the cache has applied every write made so far."""
    await cache.wait_fresh(await cache.storage.current_revision(), timeout=5)


async def take(watcher: Watcher, count: int) -> list[tuple[str, str]]:
    """The next `count` events as (type, name)."""
    out = []
    for _ in range(count):
        event = await asyncio.wait_for(anext(watcher), 5)
        out.append((event.type, event.object["metadata"]["name"]))
    return out


def pending(watcher: Watcher) -> int:
    """Events waiting for the client (call after `settled`: nothing more is on its way)."""
    return len(watcher.backlog) + watcher.queue.qsize()


# --- filling and lists ------------------------------------------------------------------------

async def test_the_cache_fills_then_follows_the_storage(storage: MemoryStorage) -> None:
    await storage.create(key("a"), thing("a"))
    await storage.create(key("b", "other"), thing("b", "other"))
    await storage.create("/registry/thingsx/ns/z", thing("z"))  # not this resource
    cache = await started(storage)
    try:
        items, revision = cache.list(PREFIX, everything)
        assert items == (await storage.list(PREFIX)).items
        assert revision == await storage.current_revision()
        await storage.create(key("c"), thing("c"))
        await storage.guaranteed_update(key("a"), relabel(app="web"))
        await storage.delete(key("b", "other"))
        await settled(cache)
        assert cache.list(PREFIX, everything) == (
            (await storage.list(PREFIX)).items, await storage.current_revision())
        assert cache.get(key("a")) == await storage.get(key("a"))
        assert cache.get(key("b", "other")) is None
    finally:
        await cache.stop()


async def test_list_by_prefix_and_predicate(storage: MemoryStorage, cache: WatchCache) -> None:
    await storage.create(key("b", "ns1"), thing("b", "ns1", app="web"))
    await storage.create(key("a", "ns1"), thing("a", "ns1", app="db"))
    await storage.create(key("c", "ns10"), thing("c", "ns10", app="web"))
    await settled(cache)
    assert names(cache.list(key("", "ns1"), everything)[0]) == ["a", "b"]  # not ns10
    assert names(cache.list(PREFIX, app_is("web"))[0]) == ["b", "c"]
    assert names(cache.list(key("", "ns1"), app_is("web"))[0]) == ["b"]
    assert cache.list(key("", "none"), everything) == ([], await storage.current_revision())


# --- watches ----------------------------------------------------------------------------------

async def test_watch_from_zero_adds_what_exists_then_streams(
        storage: MemoryStorage, cache: WatchCache) -> None:
    await storage.create(key("b"), thing("b"))
    await storage.create(key("a"), thing("a"))
    await storage.create(key("x", "other"), thing("x", "other"))
    await settled(cache)
    watcher = cache.watch(0, key(""), everything)
    assert await take(watcher, 2) == [("ADDED", "a"), ("ADDED", "b")]
    await storage.create(key("c"), thing("c"))
    await storage.create(key("y", "other"), thing("y", "other"))
    await storage.guaranteed_update(key("a"), relabel(app="web"))
    await storage.delete(key("b"))
    assert await take(watcher, 3) == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    await settled(cache)
    assert pending(watcher) == 0


async def test_watch_from_inside_the_window_replays(
        storage: MemoryStorage, cache: WatchCache) -> None:
    a = await storage.create(key("a"), thing("a"))
    modified = await storage.guaranteed_update(key("a"), relabel(app="web"))
    await storage.create(key("b"), thing("b"))
    await settled(cache)
    watcher = cache.watch(int(a["metadata"]["resourceVersion"]), PREFIX, everything)
    first = await asyncio.wait_for(anext(watcher), 5)
    assert first == Event("MODIFIED", modified)
    assert await take(watcher, 1) == [("ADDED", "b")]
    await storage.delete(key("a"))
    assert await take(watcher, 1) == [("DELETED", "a")]


async def test_watch_from_before_the_window_is_expired(storage: MemoryStorage) -> None:
    cache = await started(storage, capacity=3)
    try:
        listed = cache.revision
        for name in "abcde":
            await storage.create(key(name), thing(name))
        await settled(cache)
        # Revisions listed+1 .. listed+5; the window holds the last 3, so a watch must start at
        # listed+2 or later.
        with pytest.raises(errors.Expired) as raised:
            cache.watch(listed + 1, PREFIX, everything)
        assert raised.value.code == 410
        assert raised.value.message == f"too old resource version: {listed + 1} ({listed + 2})"
        watcher = cache.watch(listed + 2, PREFIX, everything)
        assert await take(watcher, 3) == [("ADDED", "c"), ("ADDED", "d"), ("ADDED", "e")]
    finally:
        await cache.stop()


async def test_watch_from_a_future_revision_skips_what_came_before(
        storage: MemoryStorage, cache: WatchCache) -> None:
    watcher = cache.watch(cache.revision + 2, PREFIX, everything)
    for name in "abc":
        await storage.create(key(name), thing(name))
    await settled(cache)
    assert await take(watcher, 1) == [("ADDED", "c")]
    assert pending(watcher) == 0


async def test_selector_changes_are_adds_and_deletes(
        storage: MemoryStorage, cache: WatchCache) -> None:
    start = cache.revision
    live = cache.watch(0, PREFIX, app_is("web"))
    await storage.create(key("a"), thing("a", app="db"))  # not matching: unseen
    await storage.guaranteed_update(key("a"), relabel(app="web"))  # starts matching
    await storage.guaranteed_update(key("a"), relabel(app="web", tier="1"))  # still matching
    await storage.guaranteed_update(key("a"), relabel(app="db"))  # stops matching
    await storage.delete(key("a"))  # deleted while not matching: unseen
    await storage.create(key("b"), thing("b", app="web"))
    await storage.delete(key("b"))  # deleted while matching
    await settled(cache)
    expected = [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a"), ("ADDED", "b"),
                ("DELETED", "b")]
    assert await take(live, 5) == expected
    assert pending(live) == 0
    replayed = cache.watch(start, PREFIX, app_is("web"))  # the window gives the same view
    assert await take(replayed, 5) == expected
    assert pending(replayed) == 0


async def test_a_stopped_matching_object_arrives_as_deleted_in_its_new_state(
        storage: MemoryStorage, cache: WatchCache) -> None:
    await storage.create(key("a"), thing("a", app="web"))
    await settled(cache)
    watcher = cache.watch(cache.revision, PREFIX, app_is("web"))
    after = await storage.guaranteed_update(key("a"), relabel(app="db"))
    assert await asyncio.wait_for(anext(watcher), 5) == Event("DELETED", after)


async def test_an_idle_timeout_does_not_end_the_watch(
        storage: MemoryStorage, cache: WatchCache) -> None:
    watcher = cache.watch(0, PREFIX, everything)
    events = watcher.__aiter__()
    with pytest.raises(TimeoutError):  # as the HTTP handler waits between bookmarks
        await asyncio.wait_for(events.__anext__(), 0.05)
    await storage.create(key("a"), thing("a"))
    assert await take(watcher, 1) == [("ADDED", "a")]


async def test_a_slow_watcher_is_ended_not_the_cache(
        storage: MemoryStorage, cache: WatchCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacher, "WATCHER_QUEUE", 5)
    slow = cache.watch(0, PREFIX, everything)
    fast = cache.watch(0, PREFIX, everything)
    got: list[tuple[str, str]] = []
    for i in range(10):
        await storage.create(key(f"o{i}"), thing(f"o{i}"))
        got += await take(fast, 1)
    await settled(cache)
    assert slow.closed and slow not in cache.watchers
    # what it had queued, in order and with none dropped for the end marker (a client resumes
    # from the last one it saw, so a dropped one would be lost for good), then the end
    assert [e.object["metadata"]["name"] async for e in slow] == [f"o{i}" for i in range(5)]
    assert [n for _, n in got] == [f"o{i}" for i in range(10)]
    assert fast in cache.watchers and not fast.closed
    await storage.create(key("late"), thing("late"))
    assert await take(fast, 1) == [("ADDED", "late")]
    assert len(cache.list(PREFIX, everything)[0]) == 11


async def test_watch_from_zero_sends_every_object_even_beyond_the_queue(
        storage: MemoryStorage, cache: WatchCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacher, "WATCHER_QUEUE", 5)
    for i in range(8):
        await storage.create(key(f"o{i}"), thing(f"o{i}"))
    await settled(cache)
    watcher = cache.watch(0, PREFIX, everything)
    assert len(await take(watcher, 8)) == 8
    assert not watcher.closed
    replayed = cache.watch(cache.revision - 8, PREFIX, everything)
    assert len(await take(replayed, 8)) == 8
    assert not replayed.closed


# --- freshness and failures -------------------------------------------------------------------

async def test_wait_fresh_times_out(storage: MemoryStorage, cache: WatchCache) -> None:
    await cache.wait_fresh(cache.revision, timeout=0.05)  # already there: returns at once
    wanted = cache.revision + 10
    with pytest.raises(errors.Timeout) as raised:
        await cache.wait_fresh(wanted, timeout=0.05)
    assert raised.value.code == 504
    assert raised.value.message == (
        f"Too large resource version: {wanted}, current: {cache.revision}")


async def test_wait_fresh_returns_once_the_revision_arrives(
        storage: MemoryStorage, cache: WatchCache) -> None:
    waiting = asyncio.create_task(cache.wait_fresh(cache.revision + 1, timeout=5))
    await asyncio.sleep(0)
    assert not waiting.done()
    await storage.create(key("a"), thing("a"))
    await asyncio.wait_for(waiting, 5)


async def test_a_failed_storage_watch_relists_and_ends_the_watches() -> None:
    storage = FlakyStorage()
    await storage.create(key("a"), thing("a"))
    cache = await started(storage)
    try:
        assert storage.lists == 1
        watcher = cache.watch(0, PREFIX, everything)
        before = cache.revision
        assert await take(watcher, 1) == [("ADDED", "a")]
        await storage.create(key(BOOM), thing(BOOM))  # the watch fails on this event
        assert [e async for e in watcher] == []  # ended; the client resumes or relists
        await settled(cache)
        assert storage.lists == 2
        assert names(cache.list(PREFIX, everything)[0]) == ["a", BOOM]
        assert not cache.watchers
        with pytest.raises(errors.Expired):  # what happened meanwhile is not in the window
            cache.watch(before, PREFIX, everything)
        fresh = cache.watch(cache.revision, PREFIX, everything)
        await storage.delete(key("a"))
        assert await take(fresh, 1) == [("DELETED", "a")]
    finally:
        await cache.stop()
    assert fresh.closed  # stopping the cache ends its watches too
