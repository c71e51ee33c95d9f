"""The data dir's and the machine's pid lock (flock): one holder, named to the second comer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pinnace.up.lock import Busy, PidLock

HOLD = """
import sys, time
from pathlib import Path
from pinnace.up.lock import PidLock
lock = PidLock(Path(sys.argv[1]), "pinnace up --data-dir /x")
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_second_holder_is_told_who_holds_it_until_released(tmp_path: Path) -> None:
    path = tmp_path / "up.pid"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(Busy) as busy:
            PidLock(path, "second").acquire()
        assert str(busy.value) == f"{holder.pid} pinnace up --data-dir /x"
    finally:
        holder.communicate("")  # the holder exits: the kernel drops its lock
    with PidLock(path, "second") as lock:
        assert path.read_text().split(" ", 1)[1] == "second\n"
        assert "held=True" in repr(lock)
    assert path.read_text() == ""


def test_a_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    first = PidLock(tmp_path / "l", "first")
    first.acquire()
    try:
        with pytest.raises(Busy):
            PidLock(tmp_path / "l", "second").acquire()
    finally:
        first.release()
    first.release()  # twice is fine
