"""sd_notify: datagrams to $NOTIFY_SOCKET (path and abstract), READY once, no-op without systemd."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.api import sdnotify


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_fields_are_one_datagram(listener: socket.socket) -> None:
    assert sdnotify.notify("READY=1", "STATUS=serving")
    assert listener.recv(4096) == b"READY=1\nSTATUS=serving"


def test_abstract_socket_name() -> None:
    name = f"pinnace-test-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "gone")}
    assert sdnotify.notify("READY=1", environ=env) is False


def test_ready_is_sent_once_then_only_status(listener: socket.socket) -> None:
    readiness = sdnotify.Readiness("scheduler")
    readiness.ready("standby")
    readiness.ready("leading")
    readiness.stopping()
    assert listener.recv(4096) == b"READY=1\nSTATUS=standby"
    assert listener.recv(4096) == b"STATUS=leading"
    assert listener.recv(4096) == b"STOPPING=1\nSTATUS=scheduler stopping"
