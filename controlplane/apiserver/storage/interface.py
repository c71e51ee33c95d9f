"""The storage contract every backend meets (etcd for real, memory for unit tests).

Semantics follow Kubernetes' storage.Interface on etcd3: create is "key absent" in one
transaction; `guaranteed_update` re-reads and retries until its compare-and-swap on mod_revision
wins; a watch from revision R delivers every change after R, in order, or fails with `Compacted`
when R is older than the store keeps; objects are returned with `metadata.resourceVersion` set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Object = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StorageError(Exception):
    """Base of the storage failures the registry translates into API errors."""


class KeyExists(StorageError):
    """Create found the key present."""


class KeyNotFound(StorageError):
    """Update or delete found no key."""


class RevisionConflict(StorageError):
    """A precondition on the object's resourceVersion (or uid) did not hold."""


class Compacted(StorageError):
    """The requested revision is older than the store's compacted revision (0: not known)."""

    def __init__(self, requested: int, compacted: int = 0) -> None:
        at = f" (at {compacted})" if compacted else ""
        super().__init__(f"revision {requested} has been compacted{at}")
        self.requested = requested
        self.compacted = compacted


class FutureRevision(StorageError):
    """The requested revision is newer than the store's current revision (0: not known)."""

    def __init__(self, requested: int, current: int = 0) -> None:
        now = f" (current {current})" if current else ""
        super().__init__(f"revision {requested} is a future revision{now}")
        self.requested = requested
        self.current = current


class Unavailable(StorageError):
    """The store (etcd) cannot be reached; the request may be retried."""


@dataclass(frozen=True)
class WatchEvent:
    """One change: for DELETED, `object` is the last state, at the deletion's revision."""

    type: EventType
    key: str
    object: Object
    revision: int
    prev_object: Object | None = None


@dataclass(frozen=True)
class Progress:
    """The store has sent every change up to `revision` (etcd's progress notification)."""

    revision: int


@dataclass
class ListResult:
    items: list[Object]
    revision: int  # the store revision the list was read at
    next_key: str = ""  # where a continued list resumes; "" when the list is complete
    remaining: int = 0  # items after this page, when known
    extra: dict[str, Any] = field(default_factory=dict)


class NoChange(Exception):
    """Raised by an update function to say the object needs no write."""


UpdateFunc = Callable[[Object], Awaitable[Object]]


class Storage(Protocol):
    async def create(self, key: str, obj: Object) -> Object:
        """Store `obj` at `key` if absent; return it with its resourceVersion."""

    async def get(self, key: str) -> Object | None:
        """Return the object at `key` (a consistent read), or None."""

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_key: str = "") -> ListResult:
        """Objects under `prefix` at `revision` (0: now), from `start_key`, at most `limit`.

        Raises Compacted for a revision before the compacted one, FutureRevision after now.
        """

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        """Apply `update` to the current object and write it, retrying on races.

        `update` may raise (its error propagates, nothing is written) or `NoChange`.
        Raises KeyNotFound when the key does not exist.
        """

    async def delete(self, key: str, *, check: Callable[[Object], None] | None = None) -> Object:
        """Delete `key` after `check(current)` passes; return the last state."""

    def watch(self, prefix: str, revision: int) -> AsyncIterator[WatchEvent | Progress]:
        """Every change under `prefix` after `revision`, with periodic Progress marks.

        Raises Compacted (when iterated) if a change after `revision` is no longer kept.
        """

    async def current_revision(self) -> int:
        """The store's current revision."""

    async def compact(self, revision: int) -> None:
        """Discard history before `revision` (kept: `revision` itself; FutureRevision after now)."""

    async def close(self) -> None: ...
