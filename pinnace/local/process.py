"""A child process we started: its log file, readiness wait, and stop by PID (TERM, then KILL)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class ComponentError(Exception):
    """A component failed to start or become ready; the message names it and its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on `host` a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def netns_prefix(netns: str | None) -> list[str]:
    """The argv prefix that runs a command inside network namespace `netns` (none: as is).

    `nsenter --net=` rather than `ip netns exec`: the latter remounts /sys and hides the cgroup
    mounts runc needs (PLATFORM.md).
    """
    return ["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []


class Process:
    """One long-running child. `start()` it, `wait_ready(check)`, `stop()` it; logs go to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *,
                 netns: str | None = None, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = [*netns_prefix(netns), *argv]
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "not started" if self.popen is None else (
            f"pid {self.popen.pid}" if self.popen.poll() is None
            else f"exited {self.popen.returncode}")
        return f"<Process {self.name} {state}>"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=None if self.env is None else {**os.environ, **self.env},
                start_new_session=True,  # a Ctrl-C on the terminal reaches the supervisor only
            )
        log.info("started %s pid=%s argv=%s", self.name, self.popen.pid, " ".join(self.argv))

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def wait_ready(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        """Poll `check` until it is true; fail at once if the process exits, or at `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise ComponentError(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}")
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001 - not ready yet, whatever the check raised
                pass
            if time.monotonic() > deadline:
                raise ComponentError(
                    f"{self.name} not ready after {timeout:.0f}s; log {self.log_path}:\n"
                    f"{self.log_tail()}")
            time.sleep(0.02)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM our PID, wait up to `grace` seconds, then SIGKILL. Safe to call twice."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s pid=%s ignored SIGTERM for %.0fs; killing", self.name, self.pid, grace)
            self.popen.kill()
            self.popen.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` every 20 ms until true; raise ComponentError naming `what` at `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ComponentError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)
