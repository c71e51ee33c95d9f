"""Find what a component left behind under its own directory: mounts and processes.

containerd's shims outlive containerd, and its snapshot, netns and shm mounts live under its root
and state directories. Teardown looks for exactly those (mount points under the directory, PIDs
whose command line names the directory), never for anything by process name.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first."""
    root = str(directory.resolve())
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == root or point.startswith(root + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_all(directory: Path) -> None:
    """Unmount (lazily, as a last resort) every mount point under `directory`."""
    for _ in range(3):
        points = mounts_under(directory)
        if not points:
            return
        for point in points:
            result = subprocess.run(["umount", point], capture_output=True, text=True)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_under(directory)
    if left:
        log.warning("mounts left under %s: %s", directory, left)


def pids_referencing(text: str) -> list[int]:
    """PIDs (not ours) whose command line contains `text`, e.g. a containerd socket path."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill_pids(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM each PID, wait up to `grace`, SIGKILL survivors."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_exists(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _exists(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
