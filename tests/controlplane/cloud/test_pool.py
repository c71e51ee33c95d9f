"""The load balancer address pool: ranges, lowest-free allocation, never one address twice."""

from __future__ import annotations

import pytest

from controlplane.cloud.pool import AddressPool, PoolError, parse_range


@pytest.mark.parametrize("text,first,last", [
    ("10.0.0.0/30", "10.0.0.1", "10.0.0.2"),  # host addresses only
    ("10.0.0.8/31", "10.0.0.8", "10.0.0.9"),
    ("192.168.1.240-192.168.1.250", "192.168.1.240", "192.168.1.250"),
    (" 10.1.1.1 ", "10.1.1.1", "10.1.1.1"),
    ("fd00::/126", "fd00::", "fd00::3"),
], ids=["cidr", "slash31", "range", "single", "ipv6"])
def test_ranges(text: str, first: str, last: str) -> None:
    a, b = parse_range(text)
    assert (str(a), str(b)) == (first, last)


@pytest.mark.parametrize("text", ["10.0.0.300", "10.0.0.9-10.0.0.1", "10.0.0.1-fd00::1", "x/24",
                                  ""])
def test_bad_ranges_say_what_is_wanted(text: str) -> None:
    with pytest.raises(ValueError, match="invalid address range"):
        parse_range(text)


def test_empty_and_overlapping_pools_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        AddressPool.parse([])
    with pytest.raises(ValueError, match="overlap at 10.0.0.5"):
        AddressPool.parse(["10.0.0.0/24", "10.0.0.5-10.0.1.1"])


def test_lowest_free_first_never_twice_and_exhaustion() -> None:
    pool = AddressPool.parse(["10.0.0.1-10.0.0.2,10.0.1.7"])
    assert pool.size == 3
    assert [pool.allocate(o) for o in ("a/x", "a/y", "a/z")] == [
        "10.0.0.1", "10.0.0.2", "10.0.1.7"]
    with pytest.raises(PoolError, match=r"no free address in the pool "
                                        r"10.0.0.1-10.0.0.2,10.0.1.7: all 3 are allocated"):
        pool.allocate("a/w")
    assert pool.release("a/y") == ["10.0.0.2"]
    assert pool.allocate("a/w") == "10.0.0.2"
    assert pool.holder("10.0.0.2") == "a/w"


def test_a_requested_address_must_be_in_the_pool_and_free() -> None:
    pool = AddressPool.parse(["10.0.0.0/29"])
    assert pool.allocate("a/x", "10.0.0.4") == "10.0.0.4"
    assert pool.allocate("a/x", "10.0.0.4") == "10.0.0.4"  # its own: fine
    with pytest.raises(PoolError, match="10.0.0.4 is already allocated to a/x"):
        pool.allocate("a/y", "10.0.0.4")
    with pytest.raises(PoolError, match="10.0.9.9 is not in the pool 10.0.0.1-10.0.0.6"):
        pool.allocate("a/y", "10.0.9.9")
    assert pool.allocate("a/y") == "10.0.0.1"


def test_adopt_takes_only_free_addresses_of_the_pool() -> None:
    pool = AddressPool.parse(["10.0.0.0/29"])
    assert pool.adopt("a/x", "10.0.0.3")
    assert not pool.adopt("a/y", "10.0.0.3")  # held by another
    assert not pool.adopt("a/y", "10.9.9.9")  # not ours
    assert not pool.adopt("a/y", "garbage")
    assert pool.allocate("a/y") == "10.0.0.1"
    assert pool.held_by("a/x") == ["10.0.0.3"]
    assert pool.release("a/x", keep=["10.0.0.3"]) == []
    assert "10.0.0.6" in pool and "10.0.0.7" not in pool
