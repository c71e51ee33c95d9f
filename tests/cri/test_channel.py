"""Failures reach callers as our exceptions naming the socket and the call, within the deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cri import errors
from cri.containerd_client import ContainerdClient
from cri.runtime import RuntimeClient


@pytest.fixture
def short_dir() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pn-", dir="/tmp") as d:
        yield Path(d)


async def test_missing_socket_fails_at_once_naming_it(short_dir: Path) -> None:
    path = str(short_dir / "absent.sock")
    started = time.monotonic()
    async with RuntimeClient(path) as rt:
        with pytest.raises(errors.Unavailable) as caught:
            await rt.version()
    assert time.monotonic() - started < 1
    assert str(caught.value) == (
        f"containerd at {path}: RuntimeService/Version: UNAVAILABLE: "
        "no such socket (is containerd running?)")


async def test_dead_socket_fails_within_the_deadline(short_dir: Path) -> None:
    path = str(short_dir / "dead.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)  # a socket file nobody listens on: connections are refused
    try:
        started = time.monotonic()
        async with RuntimeClient(path, timeout=2) as rt:
            with pytest.raises(errors.Unavailable) as caught:
                await rt.list_pod_sandbox()
        assert time.monotonic() - started < 2.5
        assert str(caught.value).startswith(
            f"containerd at {path}: RuntimeService/ListPodSandbox: UNAVAILABLE")
    finally:
        dead.close()


async def test_silent_socket_hits_the_per_call_deadline(short_dir: Path) -> None:
    path = str(short_dir / "silent.sock")
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(path)
    silent.listen(8)  # accepts connections (in the backlog) and never speaks HTTP/2
    try:
        started = time.monotonic()
        async with ContainerdClient(path, timeout=30) as ctd:
            with pytest.raises(errors.CRIError) as caught:
                await ctd._channel.unary(  # a per-call deadline below the client default
                    "/containerd.services.images.v1.Images/List", _Request(), _Parser(),
                    timeout=0.5)
        elapsed = time.monotonic() - started
        assert elapsed < 2, elapsed
        assert isinstance(caught.value, (errors.DeadlineExceeded, errors.Unavailable))
        assert f"containerd at {path}: Images/List:" in str(caught.value)
    finally:
        silent.close()


def test_status_codes_map_to_our_exceptions() -> None:
    class Failed(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode, details: str) -> None:
            self._code, self._details = code, details

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return self._details

    mapped = errors.from_rpc_error(Failed(grpc.StatusCode.NOT_FOUND, "sandbox x not found"),
                                   "/run/c.sock", "PodSandboxStatus")
    assert isinstance(mapped, errors.NotFound)
    assert str(mapped) == (
        "containerd at /run/c.sock: PodSandboxStatus: NOT_FOUND: sandbox x not found")
    other = errors.from_rpc_error(Failed(grpc.StatusCode.INTERNAL, "boom"), "s", "M")
    assert type(other) is errors.CRIError


class _Request:
    def SerializeToString(self) -> bytes:
        return b""


class _Parser:
    def FromString(self, s: bytes) -> None:
        return None
