"""One asyncio task per pod uid, each syncing its pod whenever anything about it changes.

Only the latest desired state matters: `update(uid)` marks the pod dirty and wakes its worker;
several updates while a sync runs collapse into one more sync. A sync returns how long until it
wants to run again (a back-off ending) or None; `DONE` ends the worker (the pod is gone).
A failing sync is logged and retried with back-off; it never stops other pods' workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)
DONE = -1.0  # a sync result that ends the pod's worker
Sync = Callable[[str], Awaitable[float | None]]


class _Worker:
    def __init__(self) -> None:
        self.dirty = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class PodWorkers:
    def __init__(self, sync: Sync, *, error_backoff: float = 5.0) -> None:
        self.sync = sync
        self.error_backoff = error_backoff
        self._workers: dict[str, _Worker] = {}

    def __repr__(self) -> str:
        return f"<PodWorkers pods={len(self._workers)}>"

    def __contains__(self, uid: str) -> bool:
        return uid in self._workers

    def uids(self) -> list[str]:
        return list(self._workers)

    def update(self, uid: str) -> None:
        worker = self._workers.get(uid)
        if worker is None:
            worker = self._workers[uid] = _Worker()
            worker.task = asyncio.create_task(self._run(uid, worker), name=f"pod {uid}")
        worker.dirty.set()

    async def _run(self, uid: str, worker: _Worker) -> None:
        failures = 0
        try:
            while True:
                await worker.dirty.wait()
                worker.dirty.clear()
                try:
                    again = await self.sync(uid)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one pod's failure must not stop the agent
                    failures += 1
                    log.exception("sync of pod uid=%s failed (%d in a row)", uid, failures)
                    again = min(self.error_backoff * 2 ** (failures - 1), 60.0)
                if again == DONE:
                    return
                if again is not None and not worker.dirty.is_set():
                    asyncio.get_running_loop().call_later(max(again, 0.05), worker.dirty.set)
        finally:
            if self._workers.get(uid) is worker:
                del self._workers[uid]

    async def stop(self) -> None:
        tasks = [w.task for w in self._workers.values() if w.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
