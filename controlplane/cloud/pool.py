"""An address pool for load balancers: ranges of IPs and which service holds each.

A pool is one or more ranges, each written as a CIDR ("10.254.1.0/28": its host addresses, so
without the network and broadcast addresses of an IPv4 CIDR up to /30), a start-end range
("192.168.1.240-192.168.1.250") or one address. Ranges may not overlap. Invariant: an address
is never held by two owners (owners are "namespace/name" of Services). `allocate` takes the
lowest free address (or the one asked for), `adopt` claims an address an owner already shows
(how the pool is rebuilt after a restart), `release` frees all an owner holds. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence

from controlplane.cloud.provider import CloudError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class PoolError(CloudError):
    """The pool cannot satisfy a request (exhausted, outside the pool, held by another)."""


def parse_range(text: str) -> tuple[Address, Address]:
    """One range as (first, last); raise ValueError naming the bad text."""
    spec = text.strip()
    try:
        if "/" in spec:
            network = ipaddress.ip_network(spec, strict=False)
            if network.version == 4 and network.prefixlen <= 30:
                return network.network_address + 1, network.broadcast_address - 1
            return network.network_address, network.broadcast_address
        if "-" in spec:
            low, _, high = spec.partition("-")
            first, last = ipaddress.ip_address(low.strip()), ipaddress.ip_address(high.strip())
        else:
            first = last = ipaddress.ip_address(spec)
    except ValueError:
        raise ValueError(f"invalid address range {text!r}: want a CIDR, FIRST-LAST or one "
                         "address") from None
    if first.version != last.version or first > last:  # type: ignore[operator]
        raise ValueError(f"invalid address range {text!r}: the first address must come "
                         "before the last, both of one IP family")
    return first, last


class AddressPool:
    """Addresses handed out to owners; never one address to two owners."""

    def __init__(self, ranges: Sequence[tuple[Address, Address]]) -> None:
        if not ranges:
            raise ValueError("the address pool is empty: give at least one range")
        ordered = sorted(ranges, key=lambda r: (r[0].version, int(r[0])))
        for (_, last), (first, _) in zip(ordered, ordered[1:], strict=False):
            if last.version == first.version and int(first) <= int(last):
                raise ValueError(f"address ranges overlap at {first}")
        self.ranges = list(ordered)
        self._holder: dict[Address, str] = {}  # owned by the caller's task (one event loop)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> AddressPool:
        """A pool from range texts (each may itself be comma-separated)."""
        parts = [p for spec in specs for p in spec.split(",") if p.strip()]
        return cls([parse_range(p) for p in parts])

    def __repr__(self) -> str:
        return f"<AddressPool {self.describe()} held={len(self._holder)}/{self.size}>"

    def describe(self) -> str:
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ranges)

    @property
    def size(self) -> int:
        return sum(int(last) - int(first) + 1 for first, last in self.ranges)

    def __contains__(self, ip: object) -> bool:
        address = _address(ip)
        return address is not None and any(
            a.version == address.version and int(a) <= int(address) <= int(b)
            for a, b in self.ranges)

    def holder(self, ip: str) -> str | None:
        address = _address(ip)
        return None if address is None else self._holder.get(address)

    def held_by(self, owner: str) -> list[str]:
        return sorted((str(a) for a, o in self._holder.items() if o == owner),
                      key=lambda s: int(ipaddress.ip_address(s)))

    def _addresses(self) -> Iterator[Address]:
        for first, last in self.ranges:
            for value in range(int(first), int(last) + 1):
                yield ipaddress.ip_address(value)

    def allocate(self, owner: str, wanted: str = "") -> str:
        """Give `owner` the address `wanted`, else the lowest free one; raise PoolError."""
        if wanted:
            address = _address(wanted)
            if address is None or wanted not in self:
                raise PoolError(f"requested address {wanted} is not in the pool "
                                f"{self.describe()}")
            holder = self._holder.get(address)
            if holder not in (None, owner):
                raise PoolError(f"requested address {wanted} is already allocated to "
                                f"{holder}")
            self._holder[address] = owner
            return str(address)
        if len(self._holder) < self.size:
            for address in self._addresses():
                if address not in self._holder:
                    self._holder[address] = owner
                    return str(address)
        raise PoolError(f"no free address in the pool {self.describe()}: all {self.size} "
                        "are allocated")

    def adopt(self, owner: str, ip: str) -> bool:
        """Count `ip` as `owner`'s if it is in the pool and free (or already its own)."""
        address = _address(ip)
        if address is None or ip not in self or self._holder.get(address) not in (None, owner):
            return False
        self._holder[address] = owner
        return True

    def release(self, owner: str, keep: Iterable[str] = ()) -> list[str]:
        """Free what `owner` holds except `keep`; return the freed addresses."""
        kept = {_address(k) for k in keep}
        freed = [a for a, o in self._holder.items() if o == owner and a not in kept]
        for address in freed:
            del self._holder[address]
        return [str(a) for a in freed]


def _address(ip: object) -> Address | None:
    try:
        return ipaddress.ip_address(str(ip))
    except ValueError:
        return None
