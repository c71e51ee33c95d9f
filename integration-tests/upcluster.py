"""`pinnace up` as a test sees it: the command as a subprocess, waiting, and what it leaves.

Shared by test_up.py and test_e2e.py. The bridge and node namespaces of `up` have machine-wide
names, so the `data_dir` fixture skips while another `pinnace up` runs on this machine.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns

from pinnace.local import cleanup
from pinnace.up.lock import MACHINE_LOCK, Busy, PidLock

NODES = ["node1", "node2"]


class Up:
    """`pinnace up` as a subprocess; its output lines collected by a reader thread."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "pinnace", "up", "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            if self.popen.poll() is not None:
                self._reader.join(5)
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r}; output:\n{self.output()}")

    def stop(self, timeout: float = 90.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self._reader.join(5)
        return code


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def leftovers(data_dir: Path) -> list[str]:
    ours = {f"pn-node{i}" for i in range(1, 10)}
    found = [f"namespace {n}" for n in netns.listnetns() if n in ours]
    with IPRoute() as ipr:
        found += ["link pn-br0"] if ipr.link_lookup(ifname="pn-br0") else []
    found += [f"mount {m}" for m in cleanup.mounts_under(data_dir)]
    found += [f"process {p}" for p in cleanup.pids_referencing(str(data_dir))]
    return found


def up_data_dir() -> Iterator[Path]:
    """A fresh data dir for `pinnace up`, and whatever ran from it gone afterwards (conftest's
    `data_dir` fixture)."""
    try:
        with PidLock(MACHINE_LOCK, "integration-tests/test_up.py probe"):
            pass
    except Busy as busy:
        pytest.skip(f"another pinnace up runs on this machine (pid {busy})")
    base = Path(tempfile.mkdtemp(prefix="pn-up-", dir="/tmp"))
    try:
        yield base
    finally:
        cleanup.kill_pids(cleanup.pids_referencing(str(base)))
        cleanup.unmount_all(base)
        shutil.rmtree(base, ignore_errors=True)
