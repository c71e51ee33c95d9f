"""The service link: the local interface (`kube-ipvs0`) that holds every service address.

IPVS only sees packets addressed to this host, so each ClusterIP, externalIP and load-balancer
ingress IP is bound here as a /32; the kernel then adds a local route for it even while the link
is down, which is all IPVS needs. kube-proxy uses a dummy link. Kernels without the dummy type
(ours among them) can use a bridge with no ports instead (`--ipvs-link-kind bridge`): it also
holds addresses without forwarding anything. The link is ours alone, so every address on it is
one of ours, which is how syncs and `--cleanup` know what to remove.
"""

from __future__ import annotations

import errno
from typing import Any, Protocol

LINK_NAME = "kube-ipvs0"
LINK_KINDS = ("dummy", "bridge")


class LinkKindUnsupported(OSError):
    """The kernel cannot create a link of this kind."""

    def __init__(self, kind: str, name: str = LINK_NAME) -> None:
        others = ", ".join(k for k in LINK_KINDS if k != kind)
        super().__init__(errno.EOPNOTSUPP,
                         f"--proxy-mode ipvs binds service addresses to a {kind} link {name}, "
                         f"and this kernel has no {kind} link type; use --ipvs-link-kind {others}")
        self.kind = kind

    def __str__(self) -> str:
        return str(self.strerror)


class ServiceLink(Protocol):
    """The service link as the proxier uses it. Calls block: run them off the event loop."""

    name: str

    def exists(self) -> bool: ...

    def ensure(self) -> None:
        """Create the link unless it exists; raise LinkKindUnsupported or OSError."""

    def addresses(self) -> set[str]:
        """The IPv4 addresses bound to the link (empty when it does not exist)."""

    def bind(self, address: str) -> None: ...

    def unbind(self, address: str) -> None: ...

    def delete(self) -> None:
        """Remove the link and with it every address; a missing link is no error."""


class IPRouteLink:
    """The service link through pyroute2's IPRoute, in the current network namespace."""

    def __init__(self, kind: str = "dummy", name: str = LINK_NAME) -> None:
        self.kind = kind
        self.name = name

    def __repr__(self) -> str:
        return f"<IPRouteLink {self.name} kind={self.kind}>"

    def _call(self, fn: Any) -> Any:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            with IPRoute() as ipr:
                return fn(ipr)
        except NetlinkError as exc:
            raise OSError(exc.code, f"{self.name}: {exc}") from None

    def _index(self, ipr: Any) -> int | None:
        found = ipr.link_lookup(ifname=self.name)
        return int(found[0]) if found else None

    def exists(self) -> bool:
        return bool(self._call(self._index) is not None)

    def ensure(self) -> None:
        def create(ipr: Any) -> None:
            if self._index(ipr) is None:
                ipr.link("add", ifname=self.name, kind=self.kind)

        try:
            self._call(create)
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                raise LinkKindUnsupported(self.kind, self.name) from None
            raise

    def addresses(self) -> set[str]:
        def dump(ipr: Any) -> set[str]:
            index = self._index(ipr)
            if index is None:
                return set()
            return {str(a.get("address")) for a in ipr.addr("dump", index=index)
                    if a.get("family") == 2}

        return set(self._call(dump))

    def bind(self, address: str) -> None:
        self._call(lambda ipr: ipr.addr("add", index=self._index(ipr), address=address,
                                        prefixlen=32))

    def unbind(self, address: str) -> None:
        self._call(lambda ipr: ipr.addr("del", index=self._index(ipr), address=address,
                                        prefixlen=32))

    def delete(self) -> None:
        def remove(ipr: Any) -> None:
            index = self._index(ipr)
            if index is not None:
                ipr.link("del", index=index)

        self._call(remove)
