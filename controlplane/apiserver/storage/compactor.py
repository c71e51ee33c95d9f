"""Periodic compaction of etcd's history, coordinated between apiservers (as kube-apiserver).

Every `interval` each apiserver tries one transaction on `compact_rev_key`: "if its version is
still the one I last saw, write the current revision". The winner compacts etcd at the revision
written one interval earlier, so watches and paged lists keep `interval` of history; losers
learn the key's version and try again next time. Only one apiserver compacts per interval.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aetcd import rpc

from controlplane.apiserver.storage.interface import StorageError

log = logging.getLogger(__name__)
COMPACT_REV_KEY = b"compact_rev_key"
VERSION = rpc.Compare.CompareTarget.Value("VERSION")
EQUAL = rpc.Compare.CompareResult.Value("EQUAL")


class Compactor:
    """Runs in the background of an apiserver with an `EtcdStorage`."""

    def __init__(self, storage: Any, *, interval: float = 300.0) -> None:
        self.storage = storage  # an EtcdStorage: uses its KV stub and call wrapper
        self.interval = interval
        self.version = 0  # compact_rev_key's version as we last saw it
        self.previous = 0  # the revision written at the last successful claim
        self.compacted = 0
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Compactor every {self.interval}s compacted={self.compacted}>"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="etcd compactor")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except StorageError as exc:
                log.warning("compaction skipped: %s", exc)

    async def tick(self) -> None:
        """One round: claim this interval; when we win, compact at the previous claim."""
        current = await self.storage.current_revision()
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=COMPACT_REV_KEY, target=VERSION, result=EQUAL,
                                 version=self.version)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(
                key=COMPACT_REV_KEY, value=str(current).encode()))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=COMPACT_REV_KEY))],
        )
        response = await self.storage.call_kv("Txn", request)
        if not response.succeeded:
            kvs = response.responses[0].response_range.kvs
            self.version = kvs[0].version if kvs else 0
            self.previous = int(kvs[0].value) if kvs else 0
            return
        self.version += 1
        target, self.previous = self.previous, current
        if target:
            await self.storage.compact(target)
            self.compacted = target
            log.info("compacted etcd at revision %d", target)
