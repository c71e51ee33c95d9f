"""`Storage` in memory, with etcd's revision semantics, for unit tests of registries and handlers.

One global revision counter like etcd's. Every key keeps its versions (a deletion is a version
with no value), so a list at an older revision sees that revision's state, as etcd's MVCC does.
Every write also appends to a history that watches replay from. `compact(C)` keeps revision C
and what follows, like etcd: a later read before C, or a watch needing an event before C, fails
with `Compacted`; a read or compaction after the current revision fails with `FutureRevision`.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from controlplane.apiserver.storage.etcd import decode, encode, same_object
from controlplane.apiserver.storage.interface import (
    Compacted,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    ListResult,
    NoChange,
    Object,
    Progress,
    UpdateFunc,
    WatchEvent,
)


@dataclass(frozen=True)
class _Entry:
    value: bytes
    create_revision: int
    mod_revision: int


class MemoryStorage:
    """A single-process stand-in for etcd."""

    def __init__(self) -> None:
        self.revision = 1  # etcd starts at 1
        self.compacted = 0
        self._data: dict[str, _Entry] = {}  # key -> its current version
        self._versions: dict[str, list[tuple[int, _Entry | None]]] = {}  # key -> (revision, ...)
        self._history: list[WatchEvent] = []  # every change after `compacted`, in order
        self._changed = asyncio.Condition()

    def __repr__(self) -> str:
        return f"<MemoryStorage revision={self.revision} keys={len(self._data)}>"

    async def close(self) -> None:
        pass

    async def current_revision(self) -> int:
        return self.revision

    async def _commit(self, key: str, entry: _Entry | None, event: WatchEvent) -> None:
        if entry is None:
            del self._data[key]
        else:
            self._data[key] = entry
        self._versions.setdefault(key, []).append((self.revision, entry))
        self._history.append(event)
        async with self._changed:
            self._changed.notify_all()

    def _check_revision(self, revision: int) -> None:
        if revision > self.revision:
            raise FutureRevision(revision, self.revision)
        if revision < self.compacted:
            raise Compacted(revision, self.compacted)

    def _at(self, key: str, revision: int) -> _Entry | None:
        """The version of `key` that was current at `revision`."""
        found: _Entry | None = None
        for rev, entry in self._versions.get(key, ()):
            if rev > revision:
                break
            found = entry
        return found

    async def create(self, key: str, obj: Object) -> Object:
        if key in self._data:
            raise KeyExists(key)
        self.revision += 1
        entry = _Entry(encode(obj), self.revision, self.revision)
        created = decode(entry.value, self.revision)
        await self._commit(key, entry, WatchEvent("ADDED", key, created, self.revision))
        return copy.deepcopy(created)

    async def get(self, key: str) -> Object | None:
        entry = self._data.get(key)
        return decode(entry.value, entry.mod_revision) if entry else None

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_key: str = "") -> ListResult:
        if revision:
            self._check_revision(revision)
        read_at = revision or self.revision
        entries = {k: e for k in self._versions if k.startswith(prefix) and k >= start_key
                   for e in [self._at(k, read_at)] if e is not None}
        keys = sorted(entries)
        page = keys[:limit] if limit else keys
        items = [decode(entries[k].value, entries[k].mod_revision) for k in page]
        next_key = page[-1] + "\x00" if limit and len(keys) > limit else ""
        return ListResult(items, read_at, next_key, len(keys) - len(page))

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        while True:
            entry = self._data.get(key)
            if entry is None:
                raise KeyNotFound(key)
            current = decode(entry.value, entry.mod_revision)
            try:
                updated = await update(copy.deepcopy(current))
            except NoChange:
                return current
            value = encode(updated)
            if value == entry.value or same_object(updated, current):
                return current
            if self._data.get(key) is not entry:  # changed while update() awaited: retry
                continue
            self.revision += 1
            result = decode(value, self.revision)
            await self._commit(key, _Entry(value, entry.create_revision, self.revision),
                               WatchEvent("MODIFIED", key, result, self.revision, current))
            return copy.deepcopy(result)

    async def delete(self, key: str, *, check: Callable[[Object], None] | None = None) -> Object:
        entry = self._data.get(key)
        if entry is None:
            raise KeyNotFound(key)
        current = decode(entry.value, entry.mod_revision)
        if check is not None:
            check(current)
        self.revision += 1
        current["metadata"]["resourceVersion"] = str(self.revision)
        await self._commit(key, None, WatchEvent("DELETED", key, current, self.revision))
        return copy.deepcopy(current)

    async def compact(self, revision: int) -> None:
        if revision > self.revision:
            raise FutureRevision(revision, self.revision)
        if revision <= self.compacted:
            return
        self.compacted = revision
        self._history = [e for e in self._history if e.revision >= revision]
        for key in list(self._versions):
            versions = self._versions[key]
            keep = [v for v in versions if v[0] >= revision]
            base = [v for v in versions if v[0] < revision][-1:]  # the state at `revision`
            if base and (keep and keep[0][0] == revision or base[0][1] is None):
                base = []
            self._versions[key] = base + keep
            if not self._versions[key]:
                del self._versions[key]

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[WatchEvent | Progress]:
        seen = revision  # every change up to here has been delivered (or was not ours)
        while True:
            if seen + 1 < self.compacted:  # the events we still need are gone
                raise Compacted(revision, self.compacted)
            for event in [e for e in self._history if e.revision > seen]:
                seen = event.revision
                if event.key.startswith(prefix):
                    yield copy.deepcopy(event)
            async with self._changed:
                if not any(e.revision > seen for e in self._history):
                    await self._changed.wait()
