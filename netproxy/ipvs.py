"""IPVS mode: detection only, for now. This kernel family has no ip_vs (PLATFORM.md).

`unavailable_reason()` says in one sentence why IPVS cannot be used here (no /proc/net/ip_vs
and no IPVS generic-netlink family), or None when the kernel has it. The daemon prints that
sentence and exits non-zero for `--proxy-mode ipvs`; the IPVS tests skip with it.
"""

from __future__ import annotations

import os
from pathlib import Path


def unavailable_reason(proc: Path = Path("/proc/net/ip_vs")) -> str | None:
    """Why IPVS is unusable in this network namespace, or None if the kernel has it."""
    if proc.exists():
        return None
    try:
        from pyroute2 import IPVS

        IPVS().close()
        return None
    except Exception as exc:  # noqa: BLE001 - NetlinkError(ENOENT) when the family is absent
        code = getattr(exc, "code", None)
        detail = f" (netlink: {os.strerror(code)})" if isinstance(code, int) else f" ({exc})"
    return ("this kernel has no IPVS (ip_vs): /proc/net/ip_vs is missing and the IPVS "
            f"netlink family is not registered{detail}; use --proxy-mode iptables")
