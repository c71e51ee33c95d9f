"""Restart with backoff (pinnace.local.supervisor), driven by a fake clock and fake processes."""

from __future__ import annotations

import threading
from pathlib import Path

from pinnace.local.supervisor import Backoff, Supervisor


class FakeProcess:
    def __init__(self, name: str) -> None:
        self.name = name
        self.log_path = Path(f"/logs/{name}.log")
        self.running = True
        self.starts = 0
        self.fail_start = False
        self.code: int | None = None

    @property
    def pid(self) -> int | None:
        return 100 + self.starts

    def alive(self) -> bool:
        return self.running

    def start(self) -> None:
        if self.fail_start:
            raise OSError("exec failed")
        self.starts += 1
        self.running = True

    def crash(self, code: int = 1) -> None:
        self.running = False
        self.code = code


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Supervisor, FakeProcess, Clock, list[str]]:
    clock, proc = Clock(), FakeProcess("agent-node1")
    lines: list[str] = []
    sup = Supervisor(lines.append, backoff=Backoff(initial=0.5, maximum=4.0, stable=60.0),
                     clock=clock, exit_code=lambda p: getattr(p, "code", None))
    sup.watch(proc)
    return sup, proc, clock, lines


def test_backoff_doubles_up_to_its_maximum() -> None:
    b = Backoff(initial=0.5, maximum=4.0)
    assert [b.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_running_process_is_left_alone() -> None:
    sup, proc, clock, lines = make()
    clock.now = 100.0
    sup.step()
    assert proc.starts == 0 and lines == []


def test_a_crash_is_reported_then_restarted_after_the_delay() -> None:
    sup, proc, clock, lines = make()
    clock.now = 2.0
    proc.crash(code=3)
    sup.step()
    assert proc.starts == 0
    assert lines == ["agent-node1 exited (code 3) after 2.0 s; restarting in 0.5 s "
                     "(log /logs/agent-node1.log)"]
    clock.now = 2.4
    sup.step()
    assert proc.starts == 0
    clock.now = 2.5
    sup.step()
    assert proc.starts == 1 and lines[-1] == "agent-node1 restarted (pid 101, restart 1 in a row)"


def test_consecutive_crashes_back_off_and_a_stable_run_resets_the_delay() -> None:
    sup, proc, clock, lines = make()
    delays = []
    for _ in range(4):
        proc.crash()
        sup.step()
        delays.append(float(lines[-1].split("restarting in ")[1].split(" s")[0]))
        clock.now += 10.0
        sup.step()
    assert delays == [0.5, 1.0, 2.0, 4.0] and proc.starts == 4
    clock.now += 61.0
    proc.crash()
    sup.step()
    assert "restarting in 0.5 s" in lines[-1]


def test_a_failed_restart_is_reported_and_retried_later() -> None:
    sup, proc, clock, lines = make()
    proc.crash()
    sup.step()
    proc.fail_start = True
    clock.now = 1.0
    sup.step()
    assert lines[-1] == "agent-node1 could not be restarted: exec failed"
    proc.fail_start = False
    clock.now = 1.5
    sup.step()
    assert proc.starts == 0
    clock.now = 2.0
    sup.step()
    assert proc.starts == 1


def test_run_returns_once_stopped() -> None:
    sup, proc, clock, lines = make()
    stop = threading.Event()
    stop.set()
    sup.run(stop, period=0.01)
    assert "watching=1" in repr(sup)
