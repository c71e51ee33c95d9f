"""fsGroup ownership of volume files, as the kubelet's SetVolumeOwnership applies it.

Every file and directory gets the pod's fsGroup as its group (symlinks too, with lchown) and
gains group read (and write, for writable volumes such as emptyDir); directories also get the
setgid bit and group search, so files created later inherit the group. Nothing is followed
outside the walked tree. Blocking; callers run it in a thread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def own(path: Path | str, gid: int, *, readonly: bool) -> None:
    """Give one path the group `gid` and the group permissions it needs."""
    info = os.lstat(path)
    os.lchown(path, -1, gid)
    if stat.S_ISLNK(info.st_mode):
        return
    mask = 0o440 if readonly else 0o660
    if stat.S_ISDIR(info.st_mode):
        mask |= stat.S_ISGID | 0o110
    os.chmod(path, stat.S_IMODE(info.st_mode) | mask)


def apply_fs_group(root: Path, gid: int, *, readonly: bool) -> None:
    """`own` every path from `root` down."""
    own(root, gid, readonly=readonly)
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            own(os.path.join(directory, name), gid, readonly=readonly)
