from __future__ import annotations

import asyncio

import pytest

from controlplane.client.workqueue import ShutDown, WorkQueue


async def test_keys_are_deduplicated_and_fifo() -> None:
    q = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_a_key_is_never_processed_twice_at_once() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # re-added while processing: not handed out again yet
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_rate_limited_backoff_doubles_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.01)
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_rate_limited("k")
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.done("k")
    first = loop.time() - start
    start = loop.time()
    q.add_rate_limited("k")
    await asyncio.wait_for(q.get(), 1)
    q.done("k")
    second = loop.time() - start
    assert q.failures("k") == 2
    assert second >= 0.018 and first >= 0.008
    q.forget("k")
    assert q.failures("k") == 0


async def test_shutdown_wakes_waiting_workers() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    await q.shut_down()
    with pytest.raises(ShutDown):
        await waiter
