"""Node IPAM: given these nodes, expect these podCIDR patches (and never one CIDR twice)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client.rest import NODES
from controlplane.controllers.nodeipam import CIDRSet, NodeIpamController, parse_cluster_cidrs
from controlplane.controllers.testing import Harness, harness, stamp

Object = dict[str, Any]


def node(name: str, cidr: str = "") -> Object:
    spec: Object = {}
    if cidr:
        spec = {"podCIDR": cidr, "podCIDRs": [cidr]}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                         "creationTimestamp": stamp()}, "spec": spec}


def setup(*nodes: Object, cidr: str = "10.244.0.0/16", mask: int = 24,
          allocate: bool = True) -> tuple[Harness, NodeIpamController]:
    h = harness()
    ctx = h.context()
    ctx.options.update(cluster_cidr=cidr, node_cidr_mask_size=mask, allocate_node_cidrs=allocate)
    c = NodeIpamController(ctx)
    for n in nodes:  # as the informer delivers its initial list, before any worker runs
        h.cache(NODES, n)
        c._seen(n)
    return h, c


def patched(h: Harness) -> list[tuple[str, str]]:
    return [(call.name, call.body["spec"]["podCIDR"]) for call in h.client.calls
            if call.verb == "patch" and call.resource == "nodes"]


async def test_a_new_node_gets_the_first_free_cidr_in_both_fields() -> None:
    h, c = setup(node("a"))
    await c.sync("a")
    assert h.client.actions() == [("patch", "nodes", "a")]
    assert h.client.bodies("patch", "nodes") == [
        {"spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}}]


async def test_cidrs_of_existing_nodes_are_occupied_before_any_allocation() -> None:
    # the node without a CIDR is synced first: it must not get the CIDRs the others hold
    h, c = setup(node("new"), node("b", "10.244.0.0/24"), node("c", "10.244.2.0/23"))
    await c.sync("new")
    assert patched(h) == [("new", "10.244.1.0/24")]


async def test_occupied_and_released_with_the_node_and_round_robin_reuse() -> None:
    h, c = setup(node("a"), node("b"))
    await c.sync("a")
    await c.sync("b")
    assert patched(h) == [("a", "10.244.0.0/24"), ("b", "10.244.1.0/24")]
    h.informers.informer(NODES).store.pop("a")
    await c.sync("a")  # deleted: its CIDR is free again, but handed out last
    h.cache(NODES, node("c"))
    await c.sync("c")
    assert patched(h)[-1] == ("c", "10.244.2.0/24")
    assert "10.244.0.0/24" not in c.holders


async def test_a_slow_watch_reuses_the_reservation_instead_of_a_second_cidr() -> None:
    h, c = setup(node("a"))
    await c.sync("a")
    await c.sync("a")  # the cache still shows no podCIDR: the patch is not repeated
    assert patched(h) == [("a", "10.244.0.0/24")]
    seen = node("a", "10.244.0.0/24")
    c._updated(node("a"), seen)
    h.cache(NODES, seen)
    await c.sync("a")
    assert len(patched(h)) == 1 and c.by_node == {"a": ["10.244.0.0/24"]}


async def test_full_range_records_cidr_not_available_and_retries() -> None:
    h, c = setup(node("a", "10.244.0.0/25"), node("b"), cidr="10.244.0.0/24", mask=25)
    await c.sync("b")
    assert patched(h) == [("b", "10.244.0.128/25")]
    h.cache(NODES, node("c"))
    with pytest.raises(Exception, match="no pod CIDR left"):
        await c.sync("c")
    assert h.events() == [("CIDRNotAvailable", "Node c status is now: CIDRNotAvailable")]


async def test_a_refused_patch_releases_the_cidr() -> None:
    h, c = setup(node("a"))
    h.client.fail[("patch", "nodes")] = errors.Invalid("podCIDR is immutable")
    with pytest.raises(Exception, match="could not set podCIDR"):
        await c.sync("a")
    assert c.holders == {} and c.by_node == {}
    assert h.events()[0][0] == "CIDRAssignmentFailed"


async def test_an_unanswered_patch_keeps_the_reservation_and_retries_it() -> None:
    h, c = setup(node("a"))
    h.client.fail[("patch", "nodes")] = errors.ServiceUnavailable("apiserver away")
    with pytest.raises(errors.ServiceUnavailable):
        await c.sync("a")
    assert c.by_node == {"a": ["10.244.0.0/24"]}
    del h.client.fail[("patch", "nodes")]
    await c.sync("a")
    assert patched(h) == [("a", "10.244.0.0/24")] * 2


async def test_node_cidrs_outside_the_cluster_cidr_are_left_alone() -> None:
    h, c = setup(node("agent", "10.253.2.0/24"), node("a"))
    await c.sync("agent")
    await c.sync("a")
    assert patched(h) == [("a", "10.244.0.0/24")]


async def test_allocation_off_does_nothing() -> None:
    h, c = setup(node("a"), allocate=False)
    await c.sync("a")
    assert h.client.actions() == []


def test_cidr_set_walks_round_robin_and_wraps() -> None:
    s = CIDRSet(ipaddress.ip_network("10.0.0.0/30"), 31)
    assert [str(s.allocate_next()) for _ in range(2)] == ["10.0.0.0/31", "10.0.0.2/31"]
    assert s.allocate_next() is None
    s.release(ipaddress.ip_network("10.0.0.0/31"))
    assert str(s.allocate_next()) == "10.0.0.0/31"


def test_bad_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="too big"):
        parse_cluster_cidrs("10.0.0.0/8", 28)
    with pytest.raises(ValueError, match="does not fit"):
        parse_cluster_cidrs("10.244.0.0/16", 8)
    with pytest.raises(ValueError, match="invalid --cluster-cidr"):
        parse_cluster_cidrs("nonsense", 24)
    dual = parse_cluster_cidrs("10.244.0.0/16,fd00::/48", 24)
    assert [(str(s.cluster), s.mask) for s in dual] == [("10.244.0.0/16", 24), ("fd00::/48", 64)]
