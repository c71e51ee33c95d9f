"""Who is running a cluster: an flock'd pid file per data dir, and one for the machine.

The data dir's lock (`DIR/up.pid`) makes a second `up` on a running DIR say so and exit. The
machine's lock (`/run/pinnace-up.pid`) exists because the bridge, the node namespaces and the
routes have machine-wide names: only one `up` can own them at a time. The kernel drops an flock
when its holder dies, so a crashed `up` never leaves a stale lock, only a stale pid in the file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

MACHINE_LOCK = Path("/run/pinnace-up.pid")


class Busy(Exception):
    """Another process holds the lock; the message names its pid and what it runs."""


class PidLock:
    """An exclusive, non-blocking flock on `path`, whose content is `<pid> <description>`."""

    def __init__(self, path: Path, description: str) -> None:
        self.path = path
        self.description = description
        self._file: IO[str] | None = None

    def __repr__(self) -> str:
        return f"<PidLock {self.path} held={self._file is not None}>"

    def acquire(self) -> None:
        """Take the lock or raise Busy naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open for as long as we hold the lock
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise Busy(holder) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {self.description}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        """Drop the lock; the file stays (its content is only meaningful while locked)."""
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
