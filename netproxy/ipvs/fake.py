"""In-memory fakes of the IPVS table and the service link, for tests without root or ip_vs.

`FakeIPVS` enforces what the kernel does: adding an existing virtual or real server fails with
EEXIST, changing or deleting a missing one with ENOENT (ESRCH for a server), and deleting a
virtual server drops its real servers. `fail_next` makes the next `apply` fail once. Every
applied operation is kept in `applied` (as `str(op)`) for golden assertions.
"""

from __future__ import annotations

import errno
import os

from netproxy.ipvs.link import LINK_NAME, LinkKindUnsupported
from netproxy.ipvs.state import IPVSState, Op, RealServer, VirtualServer, VirtualServerKey


def _error(code: int, what: str) -> OSError:
    return OSError(code, f"ipvs: {what}: {os.strerror(code)}")


class FakeIPVS:
    """The IPVS table in dicts."""

    def __init__(self) -> None:
        self.servers: dict[VirtualServerKey, VirtualServer] = {}
        self.reals: dict[VirtualServerKey, dict[tuple[str, int], RealServer]] = {}
        self.applied: list[str] = []
        self.fail_next: OSError | None = None

    def __repr__(self) -> str:
        return f"<FakeIPVS servers={len(self.servers)}>"

    def add(self, server: VirtualServer, *reals: RealServer) -> None:
        """Put a virtual server (someone else's, say) in the table directly."""
        self.servers[server.key] = server
        self.reals[server.key] = {(r.address, r.port): r for r in reals}

    def dump(self) -> IPVSState:
        return IPVSState(dict(self.servers),
                         {k: frozenset(v.values()) for k, v in self.reals.items()})

    def apply(self, op: Op) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        key = op.server.key
        if op.action == "add-server":
            if key in self.servers:
                raise _error(errno.EEXIST, str(key))
            self.add(op.server)
        elif key not in self.servers:
            raise _error(errno.ESRCH, str(key))
        elif op.action == "update-server":
            self.servers[key] = op.server
        elif op.action == "delete-server":
            del self.servers[key], self.reals[key]
        else:
            assert op.real is not None
            reals, where = self.reals[key], (op.real.address, op.real.port)
            if (op.action == "add-real") == (where in reals):
                raise _error(errno.EEXIST if where in reals else errno.ENOENT, str(op))
            if op.action == "delete-real":
                del reals[where]
            else:
                reals[where] = op.real
        self.applied.append(str(op))


class FakeServiceLink:
    """The service link as a set of addresses; `kind_supported=False` acts like our kernel."""

    def __init__(self, *, kind: str = "dummy", kind_supported: bool = True,
                 name: str = LINK_NAME) -> None:
        self.name = name
        self.kind = kind
        self.kind_supported = kind_supported
        self.present = False
        self.bound: set[str] = set()

    def __repr__(self) -> str:
        return f"<FakeServiceLink {self.name} present={self.present} bound={len(self.bound)}>"

    def exists(self) -> bool:
        return self.present

    def ensure(self) -> None:
        if not self.kind_supported:
            raise LinkKindUnsupported(self.kind, self.name)
        self.present = True

    def addresses(self) -> set[str]:
        return set(self.bound)

    def bind(self, address: str) -> None:
        if not self.present:
            raise OSError(errno.ENODEV, f"{self.name}: no such device")
        if address in self.bound:
            raise OSError(errno.EEXIST, f"{self.name}: {address} already bound")
        self.bound.add(address)

    def unbind(self, address: str) -> None:
        if address not in self.bound:
            raise OSError(errno.EADDRNOTAVAIL, f"{self.name}: {address} not bound")
        self.bound.discard(address)

    def delete(self) -> None:
        self.present = False
        self.bound.clear()
