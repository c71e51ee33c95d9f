"""The record of the virtual servers we made, so that only ours are ever deleted.

Virtual servers on an address bound to kube-ipvs0 are ours by construction; NodePort ones sit on
the node's own addresses, so they are written down here, in a small JSON file under /run by
default: /run is emptied at boot exactly when the kernel's IPVS table is. A missing or unreadable
record reads as empty (we then leave NodePort servers of an earlier run alone rather than risk
someone else's). Writes go through a temporary file and a rename, so a crash never leaves half.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from netproxy.ipvs.state import VirtualServerKey

log = logging.getLogger(__name__)
DEFAULT_PATH = Path("/run/pinnace/netproxy-ipvs.json")


def parse_key(text: str) -> VirtualServerKey | None:
    """`TCP/10.96.0.1:443` back into a key; None when it is not one."""
    try:
        protocol, rest = text.split("/", 1)
        address, port = rest.rsplit(":", 1)
        return VirtualServerKey(protocol, address, int(port))
    except ValueError:
        return None


class OwnershipRecord:
    """Our virtual servers, kept in `path`. Used from one thread at a time."""

    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"<OwnershipRecord {self.path}>"

    def load(self) -> set[VirtualServerKey]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("ipvs record %s unreadable (%s); treating it as empty", self.path, exc)
            return set()
        keys = {parse_key(str(item)) for item in raw.get("virtualServers", [])} \
            if isinstance(raw, dict) else set()
        return {k for k in keys if k is not None}

    def save(self, keys: Iterable[VirtualServerKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_text(json.dumps({"virtualServers": sorted(str(k) for k in keys)},
                                        indent=1) + "\n")
        temporary.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
