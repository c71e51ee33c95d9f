"""A cluster of the container tier: the host's control plane and N node containers on our bridge.

`start()` in order: the bridge (its address is the apiserver's), `pinnace certs` for the server
and every node, the control plane, each node's files (scripts/install-systemd.sh node), the
containers with their links. `stop()` undoes all of it and is safe to call twice; `leftovers()`
names whatever of it is still there.
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from containers.nodes import Bridge, ContainerNode, provision
from containers.server import ControlPlane
from pyroute2 import IPRoute

from pinnace.local import cleanup
from pinnace.local.process import free_port


def free_network(seed: int) -> str:
    """A /24 in 10.250.0.0/16 that no address or route of the root namespace overlaps."""
    with IPRoute() as ipr:
        used = [ipaddress.IPv4Network(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", strict=False)
                for r in ipr.get_routes(family=2) if r.get_attr("RTA_DST")]
        used += [ipaddress.IPv4Network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}",
                                       strict=False) for a in ipr.get_addr(family=2)]
    for step in range(250):
        candidate = ipaddress.IPv4Network(f"10.250.{(seed + step) % 250 + 1}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise RuntimeError("no free /24 in 10.250.0.0/16 for the container tier's bridge")


class ContainerCluster:
    """The control plane on the host and `nodes` node containers of `image`, under `base`."""

    def __init__(self, base: Path, *, image: str, suffix: str, host_mounts: list[str],
                 nodes: int = 2) -> None:
        self.base = base
        self.bridge = Bridge(f"pnct{suffix}", free_network(int(suffix, 16)))
        self.control_plane: ControlPlane | None = None
        self.names = [f"cnode{i}" for i in range(1, nodes + 1)]
        self.nodes: dict[str, ContainerNode] = {}
        self.image = image
        self.suffix = suffix
        self.host_mounts = host_mounts

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None
        return self.control_plane.kubeconfig

    def start(self) -> None:
        self.bridge.create()
        server = ControlPlane(self.base, self.bridge.address, free_port(self.bridge.address))
        self.control_plane = server
        addresses = {name: self.bridge.node_address(i)
                     for i, name in enumerate(self.names, start=1)}
        server.make_certs(addresses)
        server.start()
        with ThreadPoolExecutor(len(self.names)) as pool:
            list(pool.map(lambda n: provision(
                self.base / "nodes" / n, server.certs, n, addresses[n], server.address),
                self.names))
        for i, name in enumerate(self.names, start=1):
            self.nodes[name] = ContainerNode(
                name=name, index=i, image=self.image, bridge=self.bridge,
                base=self.base / "nodes" / name, host_mounts=self.host_mounts,
                veth=f"pnct{self.suffix}n{i}")
        for node in self.nodes.values():
            node.start()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.remove()
        if self.control_plane is not None:
            self.control_plane.stop()
        self.bridge.remove()
        cleanup.kill_pids(cleanup.pids_referencing(str(self.base)))
        cleanup.unmount_all(self.base)

    def leftovers(self) -> list[str]:
        found = self.bridge.leftovers()
        found += [f"mount {m}" for m in cleanup.mounts_under(self.base)]
        found += [f"process {p}" for p in cleanup.pids_referencing(str(self.base))]
        return found

    def logs(self) -> str:
        return "\n".join(node.logs() for node in self.nodes.values())
