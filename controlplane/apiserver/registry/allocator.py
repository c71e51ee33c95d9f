"""Range allocators of service ClusterIPs and NodePorts, persisted as one bitmap per range.

As kube-apiserver's: the whole range is one object in storage (`/registry/ranges/serviceips`,
`/registry/ranges/servicenodeports`: `{"range": "10.96.0.0/12", "data": <base64 bitmap>}`, bit i
set = item i taken, the bytes of Go's big.Int) and every change is one compare-and-swap on it
(`Storage.guaranteed_update`), so restarts and several apiservers on one etcd never hand out
the same item twice. Nothing is cached: each write reads the bitmap it changes.

Writes are group-committed, one range at a time: the first request finds the range idle and is
written at once; those that come while a write is in flight wait for it, then go together in the
next compare-and-swap, each applied in turn to the bitmap left by the ones before it (so two in
one batch never get the same item, and one's error, e.g. "already allocated", is its own). Racing
writers on one key each re-read and retry the whole batch only when another apiserver won: a
batch of 32 costs two etcd round trips, where 32 separate writes cost up to 32 rounds of
conflicts, each decoding and re-encoding a bitmap of up to 128 KiB. A request whose caller went
away (cancelled) after its item was taken has that item given back.

Dynamic allocation is Kubernetes' random scan with an offset (1.26+ for IPs, 1.27+ for ports):
the range is cut into a small lower band, kept for requested (static) values, and the upper
band; a random start in the upper band then a forward scan (wrapping), and the lower band only
once the upper one is full. IPv4 ranges never give out the network or broadcast address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.apiserver.storage import interface as st

log = logging.getLogger(__name__)
SERVICE_IPS_KEY = "/registry/ranges/serviceips"
NODE_PORTS_KEY = "/registry/ranges/servicenodeports"
MAX_IPV6_ITEMS = 65536  # Kubernetes caps an IPv6 range's bitmap at this size


class AllocationError(Exception):
    """An item the range cannot give; `str()` is Kubernetes' wording."""


class RangeFull(AllocationError):
    def __init__(self) -> None:
        super().__init__("range is full")


class AlreadyAllocated(AllocationError):
    """The requested item is taken."""


class NotInRange(AllocationError):
    """The requested item is outside the range (or is its network/broadcast address)."""


class RangeMismatch(AllocationError):
    """The stored bitmap is of another range (the flag changed): it cannot be used as is."""


def range_offset(size: int, low: int, high: int, step: int) -> int:
    """Kubernetes' static band: min(max(low, size/step), high), or 0 for ranges of <= low."""
    if size <= low:
        return 0
    return min(max(low, size // step), high)


def _first_clear(bits: int, lo: int, hi: int) -> int | None:
    """The lowest clear bit of `bits` in [lo, hi), or None."""
    if lo >= hi:
        return None
    free = ~(bits >> lo) & ((1 << (hi - lo)) - 1)
    return lo + (free & -free).bit_length() - 1 if free else None


# One request's change to a bitmap: bits -> (new bits, the item it concerns); it raises an
# AllocationError of its own when it cannot be made (the other requests of its batch go on).
Change = Callable[[int], tuple[int, int]]


@dataclass
class _Request:
    change: Change
    done: asyncio.Future[int]
    takes: bool  # an allocation: its item is given back if its caller is gone


Outcome = int | AllocationError


def _retrieve(future: asyncio.Future[int]) -> None:
    """Mark the error of a future nobody awaits as seen (a failed give-back stays leaked)."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not give back an item: %s", future.exception())


class Bitmap:
    """`size` items persisted at `key`; the allocation policy is the random scan with offset."""

    def __init__(self, storage: st.Storage, key: str, range_spec: str, size: int, offset: int,
                 *, noun: str, rand: random.Random | None = None) -> None:
        self.storage = storage
        self.key = key
        self.range_spec = range_spec
        self.size = max(0, size)
        self.offset = offset if offset < self.size else 0
        self.noun = noun  # "IP" or "port", for the error messages
        self.rand = rand or random.Random()  # tests pass a seeded one
        self._queue: list[_Request] = []  # requests waiting for the next compare-and-swap
        self._committer: asyncio.Task[None] | None = None  # writing batches while the queue lasts

    def __repr__(self) -> str:
        return f"<Bitmap {self.key} {self.range_spec} size={self.size} offset={self.offset}>"

    def _empty(self) -> st.Object:
        return {"kind": "RangeAllocation", "apiVersion": "v1", "metadata": {"name": ""},
                "range": self.range_spec, "data": ""}

    def _bits_of(self, obj: st.Object) -> int:
        if obj.get("range") != self.range_spec:
            raise RangeMismatch(
                f"the stored range {obj.get('range')} ({self.key}) does not match the "
                f"configured range {self.range_spec}")
        return int.from_bytes(base64.b64decode(obj.get("data") or ""), "big")

    async def bits(self) -> int:
        """The stored bitmap (read only)."""
        obj = await self.storage.get(self.key)
        return 0 if obj is None else self._bits_of(obj)

    async def _write(self, change: Change, *, takes: bool) -> int:
        """Apply `change` in the range's next batch; return its item (or raise its error)."""
        request = _Request(change, asyncio.get_running_loop().create_future(), takes)
        self._queue.append(request)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued(),
                                                  name=f"allocator {self.key}")
        return await request.done  # a cancelled caller cancels this future, not the batch

    async def _commit_queued(self) -> None:
        """Write batches of the queued requests, one compare-and-swap each, until none is left."""
        while self._queue:
            batch = [r for r in self._queue if not r.done.done()]  # not those whose caller left
            self._queue = []
            if not batch:
                continue
            try:
                outcomes = await self._commit(batch)
            except asyncio.CancelledError:
                for r in batch + self._queue:
                    r.done.cancel()
                raise
            except Exception as exc:  # storage failures, RangeMismatch: the whole batch's
                for r in batch:
                    if not r.done.done():
                        r.done.set_exception(exc)
                continue
            for r, outcome in zip(batch, outcomes, strict=True):
                if r.done.cancelled():
                    if r.takes and isinstance(outcome, int):
                        self._give_back(outcome)
                elif isinstance(outcome, AllocationError):
                    r.done.set_exception(outcome)
                else:
                    r.done.set_result(outcome)

    def _give_back(self, item: int) -> None:
        """Queue the release of an item taken for a caller that went away (nobody waits)."""
        log.info("giving back item %d of %s: its request was cancelled", item, self.key)
        unwatched: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        unwatched.add_done_callback(_retrieve)
        self._queue.append(_Request(lambda bits: (bits & ~(1 << item), item), unwatched,
                                    takes=False))

    async def _commit(self, batch: list[_Request]) -> list[Outcome]:
        """Apply `batch` in order over the stored bitmap in one compare-and-swap (retried over
        the bitmap that won a race, from scratch); return each request's outcome."""
        outcomes: list[Outcome] = []

        async def update(obj: st.Object) -> st.Object:
            outcomes.clear()
            bits = changed = self._bits_of(obj)
            for request in batch:
                try:
                    changed, item = request.change(changed)
                except AllocationError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(item)
            if changed == bits:
                raise st.NoChange
            data = changed.to_bytes((changed.bit_length() + 7) // 8, "big")
            obj["data"] = base64.b64encode(data).decode()
            return obj

        while True:
            try:
                await self.storage.guaranteed_update(self.key, update)
                return list(outcomes)
            except st.KeyNotFound:  # first use of this range
                with contextlib.suppress(st.KeyExists):
                    await self.storage.create(self.key, self._empty())

    def _taken(self) -> AlreadyAllocated:
        return AlreadyAllocated(f"provided {self.noun} is already allocated")

    async def allocate(self, item: int) -> None:
        """Take `item`; AlreadyAllocated when it is taken."""

        def take(bits: int) -> tuple[int, int]:
            if bits >> item & 1:
                raise self._taken()
            return bits | 1 << item, item

        await self._write(take, takes=True)

    async def check(self, item: int) -> None:
        """Raise what `allocate(item)` would, without taking it (dry run; may race)."""
        if await self.bits() >> item & 1:
            raise self._taken()

    async def allocate_next(self) -> int:
        """Take a free item (upper band first, random start); RangeFull when none is left."""

        def take(bits: int) -> tuple[int, int]:
            chosen = self._pick(bits)  # again on each retry, over the bitmap that won
            return bits | 1 << chosen, chosen

        return await self._write(take, takes=True)

    def _pick(self, bits: int) -> int:
        for lo, hi in ((self.offset, self.size), (0, self.offset)):
            if lo < hi:
                start = self.rand.randrange(lo, hi)
                found = _first_clear(bits, start, hi)
                if found is None:
                    found = _first_clear(bits, lo, start)
                if found is not None:
                    return found
        raise RangeFull()

    async def release(self, item: int) -> None:
        """Give `item` back (releasing a free item is a no-op)."""
        await self._write(lambda bits: (bits & ~(1 << item), item), takes=False)

    async def allocated(self) -> list[int]:
        bits, items = await self.bits(), []
        while bits:
            lowest = bits & -bits
            items.append(lowest.bit_length() - 1)
            bits ^= lowest
        return items


class IPAllocator:
    """Service ClusterIPs of one CIDR; item i is the address network + 1 + i."""

    def __init__(self, storage: st.Storage, cidr: str, *, key: str = SERVICE_IPS_KEY,
                 rand: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        total = self.network.num_addresses
        if self.network.version == 4:
            size = total - 2  # neither the network nor the broadcast address
        else:
            size = min(total - 1, MAX_IPV6_ITEMS)
        self.base = int(self.network.network_address) + 1
        self.bitmap = Bitmap(storage, key, str(self.network), size,
                             range_offset(total, 16, 256, 16), noun="IP", rand=rand)

    def __repr__(self) -> str:
        return f"<IPAllocator {self.network}>"

    @property
    def family(self) -> str:
        return f"IPv{self.network.version}"

    @property
    def first(self) -> str:
        """The first usable address: the `kubernetes` service's (10.96.0.1 of 10.96.0.0/12)."""
        return str(ipaddress.ip_address(self.base))

    def _offset(self, ip: str) -> int:
        address = ipaddress.ip_address(ip)
        offset = int(address) - self.base
        if address.version != self.network.version or not 0 <= offset < self.bitmap.size:
            raise NotInRange(f"the provided IP ({ip}) is not in the valid range. The range of "
                             f"valid IPs is {self.network}")
        return offset

    def contains(self, ip: str) -> bool:
        try:
            self._offset(ip)
        except (NotInRange, ValueError):
            return False
        return True

    async def allocate(self, ip: str) -> None:
        """Take `ip`: NotInRange or AlreadyAllocated when it cannot be had (ValueError: no IP)."""
        await self.bitmap.allocate(self._offset(ip))

    async def check(self, ip: str) -> None:
        await self.bitmap.check(self._offset(ip))

    async def allocate_next(self) -> str:
        return str(ipaddress.ip_address(self.base + await self.bitmap.allocate_next()))

    async def release(self, ip: str) -> None:
        """Give `ip` back; an address outside the range is ignored."""
        if self.contains(ip):
            await self.bitmap.release(self._offset(ip))

    async def allocated(self) -> list[str]:
        return [str(ipaddress.ip_address(self.base + i)) for i in await self.bitmap.allocated()]


class PortAllocator:
    """Service NodePorts of a range such as "30000-32767" (both ends included)."""

    def __init__(self, storage: st.Storage, port_range: str, *, key: str = NODE_PORTS_KEY,
                 rand: random.Random | None = None) -> None:
        self.base, self.last = parse_port_range(port_range)
        self.range_spec = f"{self.base}-{self.last}"
        size = self.last - self.base + 1
        self.bitmap = Bitmap(storage, key, self.range_spec, size, range_offset(size, 16, 128, 32),
                             noun="port", rand=rand)

    def __repr__(self) -> str:
        return f"<PortAllocator {self.range_spec}>"

    def _offset(self, port: int) -> int:
        if not self.base <= port <= self.last:
            raise NotInRange(f"provided port is not in the valid range. The range of valid "
                             f"ports is {self.range_spec}")
        return port - self.base

    def contains(self, port: int) -> bool:
        return self.base <= port <= self.last

    async def allocate(self, port: int) -> None:
        await self.bitmap.allocate(self._offset(port))

    async def check(self, port: int) -> None:
        await self.bitmap.check(self._offset(port))

    async def allocate_next(self) -> int:
        return self.base + await self.bitmap.allocate_next()

    async def release(self, port: int) -> None:
        if self.contains(port):
            await self.bitmap.release(self._offset(port))

    async def allocated(self) -> list[int]:
        return [self.base + i for i in await self.bitmap.allocated()]


def parse_port_range(text: str) -> tuple[int, int]:
    """"30000-32767" (or "30000+767", or one port) -> (30000, 32767); ValueError when invalid."""
    text = text.strip()
    try:
        if "+" in text:
            start, extra = text.split("+", 1)
            first, last = int(start), int(start) + int(extra)
        elif "-" in text:
            start, end = text.split("-", 1)
            first, last = int(start), int(end)
        else:
            first = last = int(text)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: want FIRST-LAST") from None
    if not 0 < first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}: want FIRST-LAST within 1-65535")
    return first, last
