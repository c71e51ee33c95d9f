"""The bounded-frequency runner: coalesced bursts, a minimum interval, periodic and retry runs."""

from __future__ import annotations

import asyncio
import time

from netproxy.runner import BoundedFrequencyRunner


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def noop() -> None:
    return None


def test_next_run_decisions() -> None:
    clock = Clock()
    runner = BoundedFrequencyRunner("t", noop, min_interval=1, max_interval=30, clock=clock)
    assert runner.next_run() == 100.0  # never ran: now
    runner._last = 100.0
    assert runner.next_run() == 130.0  # periodic
    runner.run()
    assert runner.next_run() == 101.0  # requested: after the minimum interval
    runner._requested = False
    runner.retry_after(5)
    assert runner.next_run() == 105.0
    runner.retry_after(0)  # a retry never beats the minimum interval
    assert runner.next_run() == 101.0


async def test_bursts_coalesce_and_are_spaced_by_the_minimum_interval() -> None:
    starts: list[float] = []

    async def fn() -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.01)

    runner = BoundedFrequencyRunner("t", fn, min_interval=0.1, max_interval=60)
    task = asyncio.create_task(runner.loop())
    try:
        await asyncio.sleep(0.02)  # the first run happens at once
        for _ in range(50):
            runner.run()
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
    assert len(starts) == 2, starts
    assert starts[1] - starts[0] >= 0.099


async def test_a_failing_run_does_not_stop_the_runner() -> None:
    calls: list[int] = []

    async def fn() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    runner = BoundedFrequencyRunner("t", fn, min_interval=0.0, max_interval=60)
    task = asyncio.create_task(runner.loop())
    try:
        await asyncio.sleep(0.02)
        runner.retry_after(0.01)
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
    assert len(calls) == 2


async def test_periodic_runs_without_requests() -> None:
    calls: list[int] = []

    async def fn() -> None:
        calls.append(1)

    runner = BoundedFrequencyRunner("t", fn, min_interval=0.0, max_interval=0.05)
    task = asyncio.create_task(runner.loop())
    await asyncio.sleep(0.18)
    task.cancel()
    assert 3 <= len(calls) <= 5
