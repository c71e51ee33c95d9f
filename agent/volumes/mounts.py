"""The few mount(2) calls volumes need: tmpfs for medium Memory and secrets, and unmounting.

Mount points are read from /proc/self/mountinfo (the agent runs in the node's mount namespace),
so teardown finds what a previous agent mounted too. Everything is a direct syscall through
libc, no `mount` binary; blocking, so callers run it in a thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str, target: Path) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what} {target}: {os.strerror(code)}", str(target))


def mount_tmpfs(target: Path, size: int | None) -> None:
    """Mount a fresh tmpfs on `target` (an existing directory), `size` bytes at most."""
    options = f"size={size}".encode() if size else None
    _check(_libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", 0, options), "mount tmpfs on",
           target)


def unmount(target: Path) -> None:
    """Unmount `target`; lazily when it is busy (a container may still hold it)."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    if ctypes.get_errno() == errno.EBUSY:
        _check(_libc.umount2(os.fsencode(target), MNT_DETACH), "unmount", target)
        return
    _check(-1, "unmount", target)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Every mount point of this mount namespace."""
    points = []
    for line in mountinfo.read_text().splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(Path(_unescape(fields[4])))
    return points


def mounts_under(root: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Mount points at or below `root`, deepest first (the order to unmount them in)."""
    root = Path(os.path.realpath(root))
    found = {p for p in mount_points(mountinfo) if p == root or root in p.parents}
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def is_mount_point(path: Path) -> bool:
    return Path(os.path.realpath(path)) in set(mount_points())
