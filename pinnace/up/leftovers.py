"""What a cluster leaves on the machine if its `up` died without tearing down (SIGKILL, a crash).

Found by name and path only: node namespaces `pn-node<i>`, the links `pn-br0` and `pn-v<i>`,
mounts under DIR, and processes whose command line names a path under DIR (never by process
name, and never our own ancestors). `pinnace up` removes them before it starts, and only while
it holds the machine's lock, i.e. when no other `up` can own them. `find` also serves as the
check after a teardown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pyroute2 import IPRoute, netns

from pinnace.local import cleanup
from pinnace.up.plan import BRIDGE

NODE_NETNS = re.compile(r"pn-node\d+$")
NODE_VETH = re.compile(r"pn-v\d+$")


def ancestors() -> set[int]:
    """Our own PID and those of our parents, up to init."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def stray_pids(data_dir: Path) -> list[int]:
    """Processes whose command line names a path under `data_dir` (not us or our parents)."""
    mine = ancestors()
    return [p for p in cleanup.pids_referencing(f"{data_dir}/") if p not in mine]


def namespaces() -> list[str]:
    return sorted(n for n in netns.listnetns() if NODE_NETNS.match(n))


def links() -> list[str]:
    with IPRoute() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return sorted(n for n in names if n == BRIDGE or NODE_VETH.match(n))


def find(data_dir: Path) -> list[str]:
    """Describe everything of a cluster under `data_dir` still on the machine."""
    found = [f"namespace {n}" for n in namespaces()]
    found += [f"link {n}" for n in links()]
    found += [f"mount {m}" for m in cleanup.mounts_under(data_dir)]
    found += [f"process {p} ({_cmdline(p)})" for p in stray_pids(data_dir)]
    return found


def remove(data_dir: Path) -> list[str]:
    """Remove whatever `find` reports (processes first, they hold mounts and namespaces)."""
    found = find(data_dir)
    cleanup.kill_pids(stray_pids(data_dir))
    cleanup.unmount_all(data_dir)
    for name in namespaces():
        netns.remove(name)
    with IPRoute() as ipr:
        for name in links():
            for index in ipr.link_lookup(ifname=name):
                ipr.link("del", index=index)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"
