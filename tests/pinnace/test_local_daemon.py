"""NotifiedProcess: a child gated on the READY=1 it sends to a notify socket of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pinnace.local.daemon import NotifiedProcess, PinnaceDaemon
from pinnace.local.process import ComponentError

# Says READY=1 on its first run only (a marker file remembers), then waits for SIGTERM.
CHILD = """
import os, signal, sys, time
from controlplane.api import sdnotify
marker = sys.argv[1]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if not os.path.exists(marker):
    open(marker, "w").close()
    sdnotify.notify("READY=1", "STATUS=leading; caches synced")
print("started", os.environ.get("EXTRA"), flush=True)
time.sleep(60)
"""


def child(tmp_path: Path, name: str = "child") -> NotifiedProcess:
    return NotifiedProcess(name, [sys.executable, "-c", CHILD, str(tmp_path / "marker")],
                           tmp_path / "logs" / f"{name}.log", env={"EXTRA": "kept"})


def test_ready_when_the_child_says_so_and_the_socket_goes_with_the_stop(tmp_path: Path) -> None:
    proc = child(tmp_path)
    try:
        proc.start()
        assert proc.wait_notified(10) == "leading; caches synced"
        assert proc.ready and proc.notify is not None
        socket_path = proc.notify.path
        assert socket_path == tmp_path / "logs" / "child.notify" and socket_path.exists()
    finally:
        proc.stop()
    assert not socket_path.exists()
    assert proc.status == "leading; caches synced"  # still readable after the stop
    assert "started kept" in proc.log_path.read_text()  # its own env beside NOTIFY_SOCKET


def test_a_restart_waits_for_a_new_ready(tmp_path: Path) -> None:
    proc = child(tmp_path)
    try:
        proc.start()
        proc.wait_notified(10)
        proc.stop()
        proc.start()  # the marker exists: this run never says READY=1
        assert not proc.ready
        with pytest.raises(ComponentError, match="not ready after 1s"):
            proc.wait_notified(1)
    finally:
        proc.stop()


def test_a_child_that_exits_first_fails_with_its_log(tmp_path: Path) -> None:
    proc = NotifiedProcess("quitter", [sys.executable, "-c", "print('bad flag'); exit(2)"],
                           tmp_path / "quitter.log")
    try:
        proc.start()
        with pytest.raises(ComponentError, match="exited with code 2(.|\n)*bad flag"):
            proc.wait_notified(10)
    finally:
        proc.stop()


def test_a_socket_path_too_long_goes_to_the_temp_directory(tmp_path: Path) -> None:
    proc = NotifiedProcess("deep", ["true"], tmp_path / ("d" * 100) / "deep.log")
    assert proc.notify_path().name.endswith("-deep.notify")
    assert len(str(proc.notify_path())) < 108


def test_a_pinnace_daemon_runs_this_checkouts_module(tmp_path: Path) -> None:
    proc = PinnaceDaemon("scheduler", ["--leader-elect=false"], tmp_path / "s.log",
                         name="sched-1", python=["py", "-m", "cProfile"])
    assert proc.argv == ["py", "-m", "cProfile", "-m", "pinnace", "scheduler",
                         "--leader-elect=false"]
    assert proc.name == "sched-1"
    assert PinnaceDaemon("agent", [], tmp_path / "a.log").argv[:4] == [
        sys.executable, "-m", "pinnace", "agent"]


def test_a_status_prefix_is_waited_for_beyond_ready(tmp_path: Path) -> None:
    proc = child(tmp_path)
    try:
        proc.start()
        assert proc.wait_notified(10, status="leading") == "leading; caches synced"
        with pytest.raises(ComponentError, match="not ready after 1s"):
            proc.wait_notified(1, status="standby")
    finally:
        proc.stop()
