"""A node on this machine: a network namespace of its own with its own containerd inside.

Pods of the node get IPs from its pod CIDR on its own bridge, invisible to the root namespace.
`stop()` undoes `start()` in reverse order, and is safe after a half-done start.
"""

from __future__ import annotations

from pathlib import Path

from pinnace.local.containerd import Containerd
from pinnace.local.netns import NetworkNamespace


class Node:
    """`name`'s namespace (`pn-<name>`) and containerd, with state under `base`."""

    def __init__(self, name: str, base: Path, *, pod_cidr: str, netns: str | None = None) -> None:
        self.name = name
        self.base = base
        self.netns = NetworkNamespace(netns or f"pn-{name}")
        self.containerd = Containerd(base, name=f"containerd-{name}", netns=self.netns.name,
                                     pod_cidr=pod_cidr, bridge="cni0")

    def __repr__(self) -> str:
        return f"<Node {self.name} netns={self.netns.name} socket={self.containerd.socket}>"

    def start(self) -> None:
        try:
            self.netns.create()
            self.containerd.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            self.containerd.stop()
        finally:
            self.netns.remove()
