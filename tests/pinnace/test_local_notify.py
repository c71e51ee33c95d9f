"""NotifySocket: what `up` hears from a daemon started as systemd would (Type=notify)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controlplane.api import sdnotify
from pinnace.local.notify import NotifySocket


def wait(check: object, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_a_daemons_readiness_reaches_the_socket(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "run" / "scheduler.notify")
    try:
        readiness_env = sock.env
        assert sdnotify.notify("STATUS=listing", environ=readiness_env)
        assert wait(lambda: sock.status == "listing") and not sock.ready
        assert sdnotify.notify("READY=1", "STATUS=leading; caches synced", environ=readiness_env)
        assert wait(lambda: sock.ready)
        assert sock.status == "leading; caches synced"
    finally:
        sock.close()
    assert not sock.path.exists()


def test_fields_are_parsed_one_per_line(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "x.notify")
    try:
        sock.handle(b"STOPPING=1\nSTATUS=bye\nREADY=0")
        assert sock.stopping and sock.status == "bye" and not sock.ready
    finally:
        sock.close()


def test_a_path_too_long_for_af_unix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long"):
        NotifySocket(tmp_path / ("x" * 120))
