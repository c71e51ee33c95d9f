"""Keep children running: a crashed process is reported and restarted after a growing delay.

The delay starts at `initial` and doubles per consecutive crash up to `maximum`; a process that
stayed up for `stable` seconds starts again from `initial` (systemd's Restart= with a backoff, or
the kubelet's CrashLoopBackOff). `step()` is one pass over the watched processes with an
injected clock, so the policy is tested without processes or waiting; `run()` repeats it until
its stop event is set. Only processes handed to `watch()` are restarted, never anything else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Restartable(Protocol):
    """What the supervisor needs of a child (pinnace.local.process.Process has it)."""

    name: str
    log_path: Path

    def alive(self) -> bool: ...

    def start(self) -> None: ...

    @property
    def pid(self) -> int | None: ...


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: initial * 2**crashes, capped; reset after a stable run."""

    initial: float = 0.5
    maximum: float = 30.0
    stable: float = 60.0

    def delay(self, consecutive_crashes: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** max(consecutive_crashes - 1, 0)))


@dataclass
class _Watched:
    process: Restartable
    started_at: float
    crashes: int = 0  # consecutive crashes, reset by a stable run
    restart_at: float | None = None  # set while a restart is pending


class Supervisor:
    """Restart crashed children with backoff; `report` gets one line per crash and restart."""

    def __init__(self, report: Callable[[str], None], *, backoff: Backoff = Backoff(),
                 clock: Callable[[], float] = time.monotonic,
                 exit_code: Callable[[Restartable], int | None] | None = None) -> None:
        self.report = report
        self.backoff = backoff
        self.clock = clock
        self.exit_code = exit_code or _exit_code
        self._watched: list[_Watched] = []  # guarded by _lock (watch() may come from threads)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        pending = sum(1 for w in self._watched if w.restart_at is not None)
        return f"<Supervisor watching={len(self._watched)} restarts pending={pending}>"

    def watch(self, process: Restartable) -> None:
        """Restart `process` (started already) whenever it exits from now on."""
        with self._lock:
            self._watched.append(_Watched(process, self.clock()))

    def step(self) -> None:
        """Notice crashes, schedule their restarts, and perform the restarts that are due."""
        now = self.clock()
        with self._lock:
            watched = list(self._watched)
        for w in watched:
            if w.restart_at is None:
                if w.process.alive():
                    continue
                ran = now - w.started_at
                w.crashes = 1 if ran >= self.backoff.stable else w.crashes + 1
                delay = self.backoff.delay(w.crashes)
                w.restart_at = now + delay
                self.report(f"{w.process.name} exited (code {self.exit_code(w.process)}) after "
                            f"{ran:.1f} s; restarting in {delay:.1f} s "
                            f"(log {w.process.log_path})")
            elif now >= w.restart_at:
                try:
                    w.process.start()
                except OSError as exc:
                    w.crashes += 1
                    w.restart_at = now + self.backoff.delay(w.crashes)
                    self.report(f"{w.process.name} could not be restarted: {exc}")
                    continue
                w.restart_at = None
                w.started_at = now
                self.report(f"{w.process.name} restarted (pid {w.process.pid}, "
                            f"restart {w.crashes} in a row)")

    def run(self, stop: threading.Event, period: float = 0.2) -> None:
        """Call `step()` every `period` seconds until `stop` is set."""
        while not stop.wait(period):
            self.step()


def _exit_code(process: Restartable) -> int | None:
    popen = getattr(process, "popen", None)
    return None if popen is None else popen.returncode
