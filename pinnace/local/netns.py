"""Network namespaces that stand in for hosts: created with loopback up, removed on `remove()`."""

from __future__ import annotations

import logging

from pyroute2 import NetNS, netns

log = logging.getLogger(__name__)


class NetworkNamespace:
    """`/run/netns/NAME`, made by us; `remove()` deletes it (stop its processes first)."""

    def __init__(self, name: str) -> None:
        if len(name) > 32:
            raise ValueError(f"network namespace name {name!r} is too long")
        self.name = name
        self.created = False

    def __repr__(self) -> str:
        return f"<NetworkNamespace {self.name} created={self.created}>"

    def create(self) -> None:
        if self.name in netns.listnetns():
            raise FileExistsError(f"network namespace {self.name} exists already (not ours)")
        netns.create(self.name)
        self.created = True
        with NetNS(self.name) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")

    def remove(self) -> None:
        if self.created and self.name in netns.listnetns():
            netns.remove(self.name)
        self.created = False
