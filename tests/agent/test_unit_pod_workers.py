"""Pod workers: one sync at a time per pod, only the latest desired state, DONE, retries."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.pod_workers import DONE, PodWorkers


class Syncs:
    """A sync function whose calls a test controls: each call records the desired state it
    saw and, when `gate` is set, waits for the test to release it."""

    def __init__(self) -> None:
        self.desired: dict[str, int] = {}
        self.seen: list[tuple[str, int]] = []
        self.running: dict[str, int] = {}
        self.max_parallel: dict[str, int] = {}
        self.gate: asyncio.Event | None = None
        self.results: dict[str, list[float | None | BaseException]] = {}

    async def __call__(self, uid: str) -> float | None:
        self.running[uid] = self.running.get(uid, 0) + 1
        self.max_parallel[uid] = max(self.max_parallel.get(uid, 0), self.running[uid])
        try:
            self.seen.append((uid, self.desired.get(uid, 0)))
            if self.gate is not None:
                await self.gate.wait()
            queued = self.results.get(uid)
            result = queued.pop(0) if queued else None
            if isinstance(result, BaseException):
                raise result
            return result
        finally:
            self.running[uid] -= 1


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_updates_during_a_sync_collapse_into_one_sync_of_the_latest_state() -> None:
    syncs = Syncs()
    syncs.gate = asyncio.Event()
    workers = PodWorkers(syncs)
    workers.update("a")
    await settle()
    assert syncs.seen == [("a", 0)]
    for version in (1, 2, 3):  # three spec changes while the first sync runs
        syncs.desired["a"] = version
        workers.update("a")
    syncs.gate.set()
    await settle()
    assert syncs.seen == [("a", 0), ("a", 3)]  # one more sync, which saw the newest spec
    assert syncs.max_parallel["a"] == 1
    await workers.stop()


async def test_pods_sync_in_parallel_but_each_pod_one_at_a_time() -> None:
    syncs = Syncs()
    syncs.gate = asyncio.Event()
    workers = PodWorkers(syncs)
    for uid in ("a", "b", "a", "b", "c"):  # before any worker ran: one sync per pod
        workers.update(uid)
    await settle()
    assert sorted(syncs.seen) == [("a", 0), ("b", 0), ("c", 0)]  # all three at once
    workers.update("a")
    workers.update("b")
    syncs.gate.set()
    await settle()
    assert sorted(syncs.seen) == [("a", 0), ("a", 0), ("b", 0), ("b", 0), ("c", 0)]
    assert max(syncs.max_parallel.values()) == 1
    assert sorted(workers.uids()) == ["a", "b", "c"] and "a" in workers
    await workers.stop()


async def test_done_ends_the_worker_and_a_later_update_starts_a_new_one() -> None:
    syncs = Syncs()
    syncs.results["a"] = [DONE]
    workers = PodWorkers(syncs)
    workers.update("a")
    await settle()
    assert "a" not in workers and workers.uids() == []
    workers.update("a")  # e.g. the PLEG sees a container of the uid again
    await settle()
    assert syncs.seen == [("a", 0), ("a", 0)]
    assert "a" in workers
    await workers.stop()


async def test_retry_after_syncs_again_unless_an_update_came_first() -> None:
    syncs = Syncs()
    syncs.results["a"] = [0.05, None]
    workers = PodWorkers(syncs)
    workers.update("a")
    await settle()
    assert len(syncs.seen) == 1
    await asyncio.sleep(0.15)
    assert len(syncs.seen) == 2  # the back-off ended: synced once more, then idle
    await asyncio.sleep(0.1)
    assert len(syncs.seen) == 2
    await workers.stop()


async def test_a_failing_sync_is_retried_with_backoff_and_spares_other_pods(
        caplog: pytest.LogCaptureFixture) -> None:
    syncs = Syncs()
    syncs.results["bad"] = [RuntimeError("boom"), RuntimeError("boom"), None]
    workers = PodWorkers(syncs, error_backoff=0.02)
    with caplog.at_level(logging.ERROR, logger="agent.pod_workers"):
        workers.update("bad")
        workers.update("good")
        await asyncio.sleep(0.2)
    assert [s for s in syncs.seen if s[0] == "bad"] == [("bad", 0)] * 3
    assert ("good", 0) in syncs.seen
    assert "sync of pod uid=bad failed (2 in a row)" in caplog.text
    assert "bad" in workers  # still alive, waiting for the next update
    await workers.stop()


async def test_stop_cancels_running_syncs() -> None:
    syncs = Syncs()
    syncs.gate = asyncio.Event()  # never released
    workers = PodWorkers(syncs)
    workers.update("a")
    workers.update("b")
    await settle()
    await workers.stop()
    assert workers.uids() == []
    assert syncs.running == {"a": 0, "b": 0}
