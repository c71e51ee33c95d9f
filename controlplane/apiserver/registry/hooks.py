"""Store hooks: side effects a resource needs around its writes, as Kubernetes' BeginCreate,
BeginUpdate and AfterDelete. Rarely needed; services use them to allocate ClusterIPs and NodePorts.

The store calls `begin_*` after validation and admission; they may change the object about to
be written (or raise an APIError) and return a `Finish`, which the store calls with the write's
outcome: True once it is stored, False when it certainly failed. A write whose outcome is unknown
(cancelled, etcd unreachable) is not finished at all: a leaked allocation can be repaired, one
handed out twice cannot. When storage retries an update after a conflict, the store finishes
the earlier try with False before beginning the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from controlplane.api import errors

Object = dict[str, Any]
Finish = Callable[[bool], Awaitable[None]]


class Hooks(Protocol):
    async def begin_create(self, obj: Object, *, dry_run: bool) -> Finish: ...

    async def begin_update(self, new: Object, old: Object, *, dry_run: bool) -> Finish: ...

    async def after_delete(self, obj: Object) -> None:
        """Called once the object is gone from storage."""


@contextlib.asynccontextmanager
async def finishing(finishes: list[Finish]) -> AsyncIterator[None]:
    """Call each `finish` with True when the block succeeds, False when it certainly failed."""
    try:
        yield
    except errors.ServiceUnavailable:  # etcd may have applied the write: leave things be
        raise
    except Exception:
        for finish in finishes:
            await finish(False)
        raise
    for finish in finishes:
        await finish(True)
