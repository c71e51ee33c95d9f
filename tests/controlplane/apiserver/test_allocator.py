"""The bitmap range allocators of ClusterIPs and NodePorts, over the in-memory storage."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import random

import pytest

from controlplane.apiserver.registry.allocator import (
    NODE_PORTS_KEY,
    SERVICE_IPS_KEY,
    AlreadyAllocated,
    IPAllocator,
    NotInRange,
    PortAllocator,
    RangeFull,
    RangeMismatch,
    parse_port_range,
    range_offset,
)
from controlplane.apiserver.storage.interface import Object, UpdateFunc
from controlplane.apiserver.storage.memory import MemoryStorage


def ips(storage: MemoryStorage, cidr: str = "10.96.0.0/12", seed: int = 1) -> IPAllocator:
    return IPAllocator(storage, cidr, rand=random.Random(seed))


def index(ip: str, network: str = "10.96.0.0") -> int:
    return int(ipaddress.ip_address(ip)) - int(ipaddress.ip_address(network))


@pytest.mark.parametrize(("size", "low", "high", "step", "expected"), [
    (1 << 20, 16, 256, 16, 256),  # a /12: 256 addresses kept for requested IPs
    (256, 16, 256, 16, 16),  # a /24
    (16, 16, 256, 16, 0),  # a /28 is too small to split
    (2768, 16, 128, 32, 86),  # NodePorts 30000-32767
    (100, 16, 128, 32, 16),
])
def test_range_offset_is_kubernetes_formula(size: int, low: int, high: int, step: int,
                                            expected: int) -> None:
    assert range_offset(size, low, high, step) == expected


async def test_first_ip_and_stored_format() -> None:
    storage = MemoryStorage()
    alloc = ips(storage)
    assert alloc.first == "10.96.0.1" and alloc.family == "IPv4"
    await alloc.allocate("10.96.0.1")
    stored = await storage.get(SERVICE_IPS_KEY)
    assert stored is not None
    assert (stored["range"], stored["data"]) == ("10.96.0.0/12", "AQ==")  # big.Int bytes of 1
    await alloc.allocate("10.96.0.10")  # item 9
    stored = await storage.get(SERVICE_IPS_KEY)
    assert stored is not None
    assert base64.b64decode(stored["data"]) == (1 | 1 << 9).to_bytes(2, "big")


async def test_dynamic_ips_prefer_the_upper_band_and_are_not_sequential() -> None:
    alloc = ips(MemoryStorage())
    got = [await alloc.allocate_next() for _ in range(20)]
    assert len(set(got)) == 20
    offsets = [index(ip) for ip in got]
    assert all(257 <= o < (1 << 20) - 1 for o in offsets)  # above the static band, no broadcast
    assert sorted(offsets) != list(range(offsets[0], offsets[0] + 20))


async def test_requested_ip_taken_or_out_of_range() -> None:
    alloc = ips(MemoryStorage())
    await alloc.allocate("10.96.0.5")
    with pytest.raises(AlreadyAllocated, match="^provided IP is already allocated$"):
        await alloc.allocate("10.96.0.5")
    message = ("the provided IP (10.112.0.1) is not in the valid range. The range of valid IPs "
               "is 10.96.0.0/12")
    with pytest.raises(NotInRange) as raised:
        await alloc.allocate("10.112.0.1")
    assert str(raised.value) == message
    for reserved in ("10.96.0.0", "10.111.255.255", "fd00::1"):  # network, broadcast, family
        with pytest.raises(NotInRange):
            await alloc.allocate(reserved)
    with pytest.raises(ValueError):
        await alloc.allocate("not-an-ip")


async def test_exhaustion_then_release() -> None:
    alloc = ips(MemoryStorage(), "10.0.0.0/29")  # 6 usable addresses, no static band
    got = {await alloc.allocate_next() for _ in range(6)}
    assert got == {f"10.0.0.{i}" for i in range(1, 7)}
    with pytest.raises(RangeFull, match="^range is full$"):
        await alloc.allocate_next()
    await alloc.release("10.0.0.4")
    assert await alloc.allocate_next() == "10.0.0.4"


async def test_lower_band_is_used_only_when_the_upper_one_is_full() -> None:
    alloc = ips(MemoryStorage(), "10.0.0.0/27")  # 30 usable; items 0-15 are the static band
    upper = [index(await alloc.allocate_next(), "10.0.0.1") for _ in range(14)]
    assert sorted(upper) == list(range(16, 30))
    lower = index(await alloc.allocate_next(), "10.0.0.1")
    assert 0 <= lower < 16


async def test_release_is_idempotent_and_ignores_foreign_ips() -> None:
    storage = MemoryStorage()
    alloc = ips(storage)
    await alloc.allocate("10.96.0.7")
    await alloc.release("10.96.0.7")
    revision = storage.revision
    await alloc.release("10.96.0.7")
    await alloc.release("192.168.0.1")
    assert storage.revision == revision  # nothing written
    await alloc.allocate("10.96.0.7")


async def test_a_new_allocator_sees_earlier_allocations() -> None:
    storage = MemoryStorage()
    first = ips(storage, seed=3)
    taken = {await first.allocate_next() for _ in range(5)} | {"10.96.0.1"}
    await first.allocate("10.96.0.1")
    again = ips(storage, seed=3)  # same seed: it would pick the same addresses if it forgot
    assert set(await again.allocated()) == taken
    with pytest.raises(AlreadyAllocated):
        await again.allocate("10.96.0.1")
    assert not taken & {await again.allocate_next() for _ in range(5)}


async def test_a_stored_range_of_another_cidr_is_refused() -> None:
    storage = MemoryStorage()
    await ips(storage, "10.96.0.0/12").allocate("10.96.0.1")
    with pytest.raises(RangeMismatch, match="does not match the configured range 10.0.0.0/16"):
        await ips(storage, "10.0.0.0/16").allocate_next()


class InterleavingStorage(MemoryStorage):
    """Yields to other tasks inside every update, so concurrent updates race and retry."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        async def slow(obj: Object) -> Object:
            self.calls += 1
            await asyncio.sleep(0)
            return await update(obj)

        return await super().guaranteed_update(key, slow)


async def test_concurrent_allocators_never_hand_out_the_same_ip() -> None:
    storage = InterleavingStorage()
    # The same seed: both start their scans at the same places, the worst case for races.
    one, two = ips(storage, "10.0.0.0/24", seed=7), ips(storage, "10.0.0.0/24", seed=7)
    got = await asyncio.gather(*(a.allocate_next() for _ in range(40) for a in (one, two)))
    assert len(set(got)) == 80
    assert storage.calls > 2  # the two allocators' batches raced: one was redone
    assert set(await one.allocated()) == set(got)


async def test_concurrent_requests_for_one_ip_give_it_once() -> None:
    storage = InterleavingStorage()
    allocators = [ips(storage, seed=s) for s in range(5)]
    results = await asyncio.gather(*(a.allocate("10.96.0.9") for a in allocators),
                                   return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, AlreadyAllocated) for r in results) == 4


async def test_ipv6_range_is_capped() -> None:
    alloc = IPAllocator(MemoryStorage(), "fd00:10:96::/64")
    assert alloc.family == "IPv6" and alloc.first == "fd00:10:96::1"
    assert alloc.bitmap.size == 65536
    assert alloc.contains("fd00:10:96::1:0") and not alloc.contains("fd00:10:96::1:1")


async def test_node_ports() -> None:
    storage = MemoryStorage()
    ports = PortAllocator(storage, "30000-32767", rand=random.Random(2))
    await ports.allocate(30080)
    with pytest.raises(AlreadyAllocated, match="^provided port is already allocated$"):
        await ports.allocate(30080)
    with pytest.raises(NotInRange) as raised:
        await ports.allocate(8080)
    assert str(raised.value) == ("provided port is not in the valid range. The range of valid "
                                 "ports is 30000-32767")
    dynamic = [await ports.allocate_next() for _ in range(10)]
    assert all(30086 <= p <= 32767 for p in dynamic) and len(set(dynamic)) == 10
    stored = await storage.get(NODE_PORTS_KEY)
    assert stored is not None and stored["range"] == "30000-32767"
    again = PortAllocator(storage, "30000-32767")
    assert set(await again.allocated()) == {30080, *dynamic}


async def test_small_port_range_fills_up() -> None:
    ports = PortAllocator(MemoryStorage(), "30000-30002")
    assert {await ports.allocate_next() for _ in range(3)} == {30000, 30001, 30002}
    with pytest.raises(RangeFull):
        await ports.allocate_next()


@pytest.mark.parametrize(("text", "expected"), [
    ("30000-32767", (30000, 32767)), ("30000+767", (30000, 30767)), ("8080", (8080, 8080)),
])
def test_parse_port_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["", "a-b", "32767-30000", "0-10", "30000-70000"])
def test_parse_port_range_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid port range"):
        parse_port_range(text)
