"""`Storage` in memory, with etcd's revision semantics, for unit tests of registries and handlers.

One global revision counter like etcd's; every write appends to a history that watches replay
from, and `compact` drops history (a later watch from before it fails with `Compacted`).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from controlplane.apiserver.storage.etcd import decode, encode
from controlplane.apiserver.storage.interface import (
    Compacted,
    KeyExists,
    KeyNotFound,
    ListResult,
    NoChange,
    Object,
    Progress,
    UpdateFunc,
    WatchEvent,
)


@dataclass
class _Entry:
    value: bytes
    create_revision: int
    mod_revision: int


class MemoryStorage:
    """A single-process stand-in for etcd."""

    def __init__(self) -> None:
        self.revision = 1  # etcd starts at 1
        self.compacted = 0
        self._data: dict[str, _Entry] = {}
        self._history: list[WatchEvent] = []
        self._changed = asyncio.Condition()

    def __repr__(self) -> str:
        return f"<MemoryStorage revision={self.revision} keys={len(self._data)}>"

    async def close(self) -> None:
        pass

    async def current_revision(self) -> int:
        return self.revision

    async def _commit(self, event: WatchEvent) -> None:
        self._history.append(event)
        async with self._changed:
            self._changed.notify_all()

    async def create(self, key: str, obj: Object) -> Object:
        if key in self._data:
            raise KeyExists(key)
        self.revision += 1
        self._data[key] = _Entry(encode(obj), self.revision, self.revision)
        created = decode(self._data[key].value, self.revision)
        await self._commit(WatchEvent("ADDED", key, created, self.revision))
        return copy.deepcopy(created)

    async def get(self, key: str) -> Object | None:
        entry = self._data.get(key)
        return decode(entry.value, entry.mod_revision) if entry else None

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_key: str = "") -> ListResult:
        if revision and revision < self.compacted:
            raise Compacted(revision, self.compacted)
        keys = sorted(k for k in self._data if k.startswith(prefix) and k >= (start_key or ""))
        page = keys[:limit] if limit else keys
        items = [decode(self._data[k].value, self._data[k].mod_revision) for k in page]
        next_key = page[-1] + "\x00" if limit and len(keys) > limit else ""
        return ListResult(items, revision or self.revision, next_key, len(keys) - len(page))

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        entry = self._data.get(key)
        if entry is None:
            raise KeyNotFound(key)
        current = decode(entry.value, entry.mod_revision)
        try:
            updated = await update(copy.deepcopy(current))
        except NoChange:
            return current
        value = encode(updated)
        if value == entry.value:
            return current
        if self._data.get(key) is not entry:  # changed while update() awaited: retry
            return await self.guaranteed_update(key, update)
        self.revision += 1
        self._data[key] = _Entry(value, entry.create_revision, self.revision)
        result = decode(value, self.revision)
        await self._commit(WatchEvent("MODIFIED", key, result, self.revision, current))
        return copy.deepcopy(result)

    async def delete(self, key: str, *, check: Callable[[Object], None] | None = None) -> Object:
        entry = self._data.get(key)
        if entry is None:
            raise KeyNotFound(key)
        current = decode(entry.value, entry.mod_revision)
        if check is not None:
            check(current)
        del self._data[key]
        self.revision += 1
        current["metadata"]["resourceVersion"] = str(self.revision)
        await self._commit(WatchEvent("DELETED", key, current, self.revision))
        return copy.deepcopy(current)

    async def compact(self, revision: int) -> None:
        self.compacted = max(self.compacted, revision)
        self._history = [e for e in self._history if e.revision > revision]

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[WatchEvent | Progress]:
        if revision < self.compacted:
            raise Compacted(revision, self.compacted)
        seen = revision
        while True:
            for event in [e for e in self._history if e.revision > seen]:
                seen = event.revision
                if event.key.startswith(prefix):
                    yield copy.deepcopy(event)
            async with self._changed:
                if not any(e.revision > seen for e in self._history):
                    await self._changed.wait()
