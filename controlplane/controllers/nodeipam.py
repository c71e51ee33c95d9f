"""Node IPAM: gives every Node a spec.podCIDR out of --cluster-cidr (Kubernetes' range allocator).

`CIDRSet` hands out the --node-cidr-mask-size subnets of one cluster CIDR round-robin (a freed
subnet is reused only after the others), as Kubernetes' cidrset does. Invariant: a subnet is
never handed to two nodes. So the CIDRs nodes already carry are occupied by the informer
handlers, before any worker runs (the initial list is delivered first), and again by `sync`;
an allocation whose patch is in flight stays reserved for that node until the node shows it,
or is released if the patch was refused. A deleted node's CIDRs are released (round-robin
makes their reuse as late as possible). A full range records CIDRNotAvailable on the node.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from typing import Any

from controlplane.api import errors
from controlplane.api.flags import boolean
from controlplane.client.events import NORMAL
from controlplane.client.rest import NODES
from controlplane.controllers.base import Controller, ControllerContext, SyncError

log = logging.getLogger(__name__)
Object = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_MASK_SIZE = 24
IPV6_MASK_SIZE = 64  # Kubernetes' --node-cidr-mask-size-ipv6 default
MAX_SUBNET_BITS = 16  # Kubernetes' clusterSubnetMaxDiff


class CIDRSet:
    """The subnets of size `mask` in `cluster`, and which of them are in use."""

    def __init__(self, cluster: Network, mask: int) -> None:
        if not cluster.prefixlen <= mask <= cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask} does not fit cluster CIDR {cluster}")
        if mask - cluster.prefixlen > MAX_SUBNET_BITS:
            raise ValueError(f"node CIDR mask size {mask} is too big for cluster CIDR {cluster}: "
                             f"at most {MAX_SUBNET_BITS} bits more than its prefix")
        self.cluster = cluster
        self.mask = mask
        self.size = 1 << (mask - cluster.prefixlen)
        self._shift = cluster.max_prefixlen - mask
        self._used: set[int] = set()  # subnet indexes; owned by the controller's loop
        self._next = 0  # where the next search starts (round-robin)

    def __repr__(self) -> str:
        return f"<CIDRSet {self.cluster}/{self.mask} used={len(self._used)}/{self.size}>"

    def subnet(self, index: int) -> Network:
        base = int(self.cluster.network_address) + (index << self._shift)
        return ipaddress.ip_network((base, self.mask))

    def allocate_next(self) -> Network | None:
        """Take the next free subnet (None when all are in use)."""
        for step in range(self.size):
            index = (self._next + step) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self.subnet(index)
        return None

    def indexes(self, cidr: Network) -> range:
        """The subnets `cidr` overlaps (empty when it lies outside the cluster CIDR)."""
        if cidr.version != self.cluster.version or not cidr.overlaps(self.cluster):
            return range(0)
        low = max(int(cidr.network_address), int(self.cluster.network_address))
        high = min(int(cidr.broadcast_address), int(self.cluster.broadcast_address))
        start = int(self.cluster.network_address)
        return range((low - start) >> self._shift, ((high - start) >> self._shift) + 1)

    def occupy(self, cidr: Network) -> None:
        self._used.update(self.indexes(cidr))

    def release(self, cidr: Network) -> None:
        self._used.difference_update(self.indexes(cidr))


def parse_cluster_cidrs(text: str, mask: int) -> list[CIDRSet]:
    """--cluster-cidr (one CIDR, or an IPv4 and an IPv6 one, comma-separated) as CIDR sets."""
    sets = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError as exc:
            raise ValueError(f"invalid --cluster-cidr {part!r}: {exc}") from None
        sets.append(CIDRSet(network, mask if network.version == 4 else IPV6_MASK_SIZE))
    if not sets or len(sets) > 2 or len({s.cluster.version for s in sets}) != len(sets):
        raise ValueError(f"--cluster-cidr {text!r}: give one CIDR, or one IPv4 and one IPv6")
    return sets


def pod_cidrs_of(node: Object) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or []]
    return cidrs or ([str(spec["podCIDR"])] if spec.get("podCIDR") else [])


def add_flags(parser: argparse.ArgumentParser) -> None:

    parser.add_argument("--allocate-node-cidrs", type=boolean, default=True, nargs="?",
                        const=True, metavar="true|false",
                        help="give each Node a spec.podCIDR out of --cluster-cidr")
    parser.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR,
                        help="the pod network, from which node pod CIDRs are carved")
    parser.add_argument("--node-cidr-mask-size", type=int, default=DEFAULT_MASK_SIZE,
                        metavar="BITS", help="prefix length of each node's pod CIDR (IPv4)")


class NodeIpamController(Controller):
    name = "nodeipam"
    component = "cidrAllocator"
    kind = "Node"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        options = ctx.options
        self.allocate = bool(options.get("allocate_node_cidrs", True))
        self.sets = parse_cluster_cidrs(str(options.get("cluster_cidr", DEFAULT_CLUSTER_CIDR)),
                                        int(options.get("node_cidr_mask_size", DEFAULT_MASK_SIZE)))
        # cidr -> the nodes holding it; node -> the CIDRs we count as its own (both owned by
        # the controller's loop: handlers and workers)
        self.holders: dict[str, set[str]] = {}
        self.by_node: dict[str, list[str]] = {}
        self.written: dict[str, str] = {}  # node -> uid: patched, not yet seen in the cache
        self.nodes = ctx.informers.lister(NODES)
        if self.allocate:
            self.nodes.informer.add_handlers(on_add=self._seen, on_update=self._updated,
                                             on_delete=self.enqueue)

    def __repr__(self) -> str:
        return f"<NodeIpamController {self.sets} nodes={len(self.by_node)} {self.queue!r}>"

    def _seen(self, node: Object) -> None:
        cidrs = pod_cidrs_of(node)
        if cidrs:
            self.occupy(node["metadata"]["name"], cidrs)
        else:
            self.enqueue(node)

    def _updated(self, old: Object, cur: Object) -> None:
        self._seen(cur)

    # -- bookkeeping (pure, no I/O) --------------------------------------------------------------

    def _set_for(self, cidr: Network) -> CIDRSet | None:
        return next((s for s in self.sets if s.indexes(cidr)), None)

    def occupy(self, node: str, cidrs: list[str]) -> None:
        """Count `cidrs` as `node`'s (dropping what we had reserved for it otherwise)."""
        self.written.pop(node, None)
        if self.by_node.get(node) == cidrs:
            return
        self.release(node)
        for cidr in cidrs:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                log.warning("node %s: podCIDR %r is not a CIDR", node, cidr)
                continue
            cidr_set = self._set_for(network)
            if cidr_set is None:
                log.info("node %s: podCIDR %s is outside --cluster-cidr; not tracked", node, cidr)
                continue
            others = self.holders.setdefault(str(network), set())
            if others:
                log.warning("node %s: podCIDR %s is also held by %s", node, network,
                            ", ".join(sorted(others)))
            others.add(node)
            cidr_set.occupy(network)
        self.by_node[node] = list(cidrs)

    def release(self, node: str) -> None:
        """Free what `node` held, unless another node holds the same CIDR too."""
        self.written.pop(node, None)
        for cidr in self.by_node.pop(node, []):
            holders = self.holders.get(cidr)
            if holders is None:
                continue
            holders.discard(node)
            if not holders:
                del self.holders[cidr]
                network = ipaddress.ip_network(cidr)
                cidr_set = self._set_for(network)
                if cidr_set is not None:
                    cidr_set.release(network)

    def reserve(self, node: str) -> list[str] | None:
        """Allocate one subnet of each cluster CIDR for `node` (None, nothing kept, when full)."""
        taken: list[tuple[CIDRSet, Network]] = []
        for cidr_set in self.sets:
            network = cidr_set.allocate_next()
            if network is None:
                for owner, subnet in taken:
                    owner.release(subnet)
                return None
            taken.append((cidr_set, network))
        cidrs = [str(network) for _, network in taken]
        for cidr in cidrs:
            self.holders.setdefault(cidr, set()).add(node)
        self.by_node[node] = cidrs
        return cidrs

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        if not self.allocate:
            return
        node = self.nodes.get("", key)
        if node is None:
            self.release(key)
            return
        cidrs = pod_cidrs_of(node)
        if cidrs:
            self.occupy(key, cidrs)
            return
        if self.written.get(key) == node["metadata"].get("uid"):
            return  # set already; the watch has yet to show it
        reserved = self.by_node.get(key) or self.reserve(key)  # a reservation in flight wins
        if reserved is None:
            self.event(node, NORMAL, "CIDRNotAvailable", f"Node {key} status is now: "
                       "CIDRNotAvailable")
            raise SyncError(f"node {key}: no pod CIDR left in {', '.join(map(repr, self.sets))}")
        try:
            await self.client.patch(NODES, key, {"spec": {"podCIDR": reserved[0],
                                                          "podCIDRs": reserved}})
        except errors.NotFound:
            self.release(key)
            return
        except (errors.ServiceUnavailable, errors.Timeout):
            raise  # it may have been written: keep the reservation, retry the same CIDRs
        except errors.APIError as exc:
            self.release(key)
            self.event(node, NORMAL, "CIDRAssignmentFailed",
                       f"Node {key} status is now: CIDRAssignmentFailed")
            raise SyncError(f"node {key}: could not set podCIDR {reserved[0]}: {exc}") from None
        self.written[key] = str(node["metadata"].get("uid"))
        log.info("node %s: podCIDRs set to %s", key, ",".join(reserved))
