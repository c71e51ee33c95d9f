"""Group commit of the range allocators: requests that come while a compare-and-swap is in
flight share the next one, each with its own outcome, and a caller that goes away gets nothing."""

from __future__ import annotations

import asyncio
import random

import pytest

from controlplane.apiserver.registry.allocator import (
    SERVICE_IPS_KEY,
    AlreadyAllocated,
    IPAllocator,
    PortAllocator,
    RangeFull,
    RangeMismatch,
)
from controlplane.apiserver.storage.interface import Object, Unavailable, UpdateFunc
from controlplane.apiserver.storage.memory import MemoryStorage


class SlowStorage(MemoryStorage):
    """Each update takes `delay` (an etcd round trip), so requests pile up behind it; counts the
    update attempts and writes since `mark()`, and fails the attempts numbered in `fail`."""

    def __init__(self, delay: float = 0.01, fail: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.delay = delay
        self.fail = fail
        self.attempts = 0
        self.marked = self.revision

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        async def slow(obj: Object) -> Object:
            self.attempts += 1
            if self.attempts in self.fail:
                raise Unavailable("etcd is unreachable")
            await asyncio.sleep(self.delay)
            return await update(obj)

        return await super().guaranteed_update(key, slow)

    @property
    def writes(self) -> int:
        return self.revision - self.marked

    def mark(self) -> None:
        self.attempts, self.marked = 0, self.revision


async def ready(storage: SlowStorage, *allocators: IPAllocator | PortAllocator) -> None:
    """Create the ranges (an allocation given back), then start counting."""
    for alloc in allocators:
        await alloc.bitmap.release(await alloc.bitmap.allocate_next())
    storage.mark()


def ips(storage: MemoryStorage, cidr: str = "10.96.0.0/12", seed: int = 1) -> IPAllocator:
    return IPAllocator(storage, cidr, rand=random.Random(seed))


async def test_concurrent_requests_share_one_compare_and_swap() -> None:
    storage = SlowStorage()
    alloc = ips(storage)
    await ready(storage, alloc)
    first = asyncio.create_task(alloc.allocate_next())  # finds the range idle: goes alone
    await asyncio.sleep(0)
    got = await asyncio.gather(*(alloc.allocate_next() for _ in range(31)), first)
    assert len(set(got)) == 32
    # The 31 that came while the first was written went together.
    assert storage.writes == 2 and storage.attempts == 2
    assert set(await alloc.allocated()) == set(got)


async def test_each_request_of_a_batch_has_its_own_outcome() -> None:
    storage = SlowStorage()
    alloc = ips(storage, "10.0.0.0/29")  # items 0-5: 10.0.0.1-10.0.0.6
    await ready(storage, alloc)
    first = asyncio.create_task(alloc.allocate("10.0.0.1"))  # alone: the others queue behind it
    await asyncio.sleep(0)
    results = await asyncio.gather(
        *(alloc.allocate("10.0.0.2") for _ in range(3)),
        *(alloc.allocate_next() for _ in range(5)),
        return_exceptions=True)
    await first
    assert storage.writes == 2
    assert results[:3].count(None) == 1
    assert sum(isinstance(r, AlreadyAllocated) for r in results[:3]) == 2
    nexts = results[3:]
    assert sorted(r for r in nexts if isinstance(r, str)) == [f"10.0.0.{i}" for i in range(3, 7)]
    assert sum(isinstance(r, RangeFull) for r in nexts) == 1  # 6 items: the fifth found none
    assert sorted(await alloc.allocated()) == [f"10.0.0.{i}" for i in range(1, 7)]


async def test_a_batch_is_applied_in_the_order_requests_came() -> None:
    storage = SlowStorage()
    ports = PortAllocator(storage, "30000-30009", rand=random.Random(4))
    await ready(storage, ports)
    blocker = asyncio.create_task(ports.allocate(30009))
    await asyncio.sleep(0)
    await asyncio.gather(ports.allocate(30001), ports.release(30001), ports.allocate(30001),
                         ports.release(30002))
    await blocker
    assert storage.writes == 2
    assert await ports.allocated() == [30001, 30009]


async def test_nothing_to_write_writes_nothing() -> None:
    storage = SlowStorage()
    alloc = ips(storage)
    await alloc.allocate("10.96.0.3")
    writes = storage.writes
    await asyncio.gather(alloc.release("10.96.0.9"), alloc.release("192.168.0.1"))
    results = await asyncio.gather(alloc.allocate("10.96.0.3"), return_exceptions=True)
    assert isinstance(results[0], AlreadyAllocated)
    assert storage.writes == writes


async def test_a_storage_failure_fails_its_batch_and_not_the_next() -> None:
    storage = SlowStorage(fail=(2,))
    alloc = ips(storage)
    await alloc.allocate("10.96.0.1")  # attempt 1
    failed = await asyncio.gather(*(alloc.allocate_next() for _ in range(4)),
                                  return_exceptions=True)  # attempt 2, one batch
    assert all(isinstance(r, Unavailable) for r in failed)
    assert await alloc.allocated() == ["10.96.0.1"]
    got = await asyncio.gather(*(alloc.allocate_next() for _ in range(4)))
    assert set(await alloc.allocated()) == {"10.96.0.1", *got}


async def test_a_range_of_another_cidr_fails_every_request_of_the_batch() -> None:
    storage = SlowStorage()
    await ips(storage, "10.96.0.0/12").allocate("10.96.0.1")
    other = ips(storage, "10.0.0.0/16")
    results = await asyncio.gather(other.allocate_next(), other.allocate("10.0.0.9"),
                                   return_exceptions=True)
    assert all(isinstance(r, RangeMismatch) for r in results)


async def test_a_cancelled_request_gives_its_item_back() -> None:
    storage = SlowStorage(delay=0.05)
    alloc = ips(storage)
    in_flight = asyncio.create_task(alloc.allocate("10.96.0.7"))
    await asyncio.sleep(0.01)  # its compare-and-swap is under way
    queued = asyncio.create_task(alloc.allocate("10.96.0.8"))
    await asyncio.sleep(0)  # queued behind it, not yet sent
    in_flight.cancel()
    queued.cancel()
    for task in (in_flight, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    await alloc.allocate("10.96.0.9")  # after the give-back, which was queued first
    assert await alloc.allocated() == ["10.96.0.9"]
    stored = await storage.get(SERVICE_IPS_KEY)
    assert stored is not None


async def test_racing_batches_of_two_allocators_retry_and_never_collide() -> None:
    storage = SlowStorage(delay=0.002)
    # The same seed: both start their scans at the same places, the worst case for races.
    one, two = ips(storage, "10.0.0.0/24", seed=7), ips(storage, "10.0.0.0/24", seed=7)
    await ready(storage, one)
    got: list[str] = []

    async def worker(alloc: IPAllocator) -> None:
        for _ in range(10):
            got.append(await alloc.allocate_next())

    await asyncio.gather(*(worker(a) for a in (one, two) for _ in range(4)))
    assert len(set(got)) == 80
    assert storage.attempts > storage.writes  # some batches lost a race and were redone
    assert storage.writes < 80  # and requests shared compare-and-swaps
    assert set(await two.allocated()) == set(got)
