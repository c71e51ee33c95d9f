"""Whether this kernel has IPVS, answered once at start in one plain sentence.

The probe resolves the "IPVS" generic netlink family (pyroute2's IPVS socket binds to it, which
also makes the kernel load ip_vs if it can). When the family does not resolve the kernel has no
ip_vs, as on our build machines: `--proxy-mode ipvs` then exits non-zero with `refusal()`, and the
IPVS tests skip. /proc/net/ip_vs existing short-cuts the probe (the module is loaded).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

PROC = Path("/proc/net/ip_vs")


def unavailable_reason(proc: Path = PROC) -> str | None:
    """Why `--proxy-mode ipvs` cannot run here, as one sentence; None when the kernel has IPVS."""
    if proc.exists():
        return None
    try:
        from pyroute2 import IPVS

        IPVS().close()
        return None
    except Exception as exc:  # noqa: BLE001 - NetlinkError(ENOENT) when the family is absent
        code = getattr(exc, "code", None)
    if code == errno.ENOENT:
        return ("--proxy-mode ipvs needs the ip_vs kernel module, which this kernel does not "
                "have (no IPVS generic netlink family); use --proxy-mode iptables")
    detail = os.strerror(code) if isinstance(code, int) else "unknown error"
    return f"--proxy-mode ipvs cannot reach the kernel's IPVS (netlink: {detail})"
