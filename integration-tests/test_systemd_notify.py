"""The server's daemons as their systemd units run them: flags from systemd/env/*.env (paths
pointed at a `pinnace certs` bundle), `$NOTIFY_SOCKET` handed over as systemd does for
Type=notify, and READY=1 heard once each is serving or synced; a second controller-manager
reports READY as a standby. SIGTERM sends STOPPING=1 and exits 0 (Restart=on-failure stays
quiet). The node daemons' READY is exercised by `pinnace up` (integration-tests/test_up.py).
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinnace import certs
from pinnace.local.etcd import Etcd
from pinnace.local.notify import NotifySocket
from pinnace.local.process import free_port

TOP = Path(__file__).resolve().parents[1]


class Unit:
    """One daemon started like its systemd unit: `pinnace <daemon> $PINNACE_ARGS`."""

    def __init__(self, daemon: str, args: list[str], run: Path, name: str = "") -> None:
        self.name = name or daemon
        self.notify = NotifySocket(run / f"{self.name}.notify")
        self.log = run / f"{self.name}.log"
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen([sys.executable, "-m", "pinnace", daemon, *args],
                                          stdout=out, stderr=subprocess.STDOUT,
                                          env={"NOTIFY_SOCKET": str(self.notify.path),
                                               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})

    def wait_ready(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while not self.notify.ready:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no READY=1 (exit {self.popen.poll()}):\n"
                                     f"{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return self.notify.status

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self.notify.close()
        return code


def env_args(daemon: str, etc: Path, **replace: str) -> list[str]:
    """The unit's PINNACE_ARGS with /etc/pinnace pointed at `etc` and other values replaced."""
    line = next(ln for ln in (TOP / "systemd" / "env" / f"{daemon}.env").read_text().splitlines()
                if ln.startswith("PINNACE_ARGS="))
    text = line.removeprefix("PINNACE_ARGS=").replace("/etc/pinnace", str(etc))
    for old, new in replace.items():
        text = text.replace(old, new)
    return shlex.split(text)


@pytest.fixture
def server_etc(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A server's /etc/pinnace made by `pinnace certs`, and the port its apiserver will use."""
    port = free_port()
    bundle = tmp_path / "certs"
    certs.ensure(bundle, f"https://127.0.0.1:{port}", [], [])
    yield bundle / "server", port


def test_server_daemons_notify_systemd(server_etc: tuple[Path, int], workdir: Path,
                                       tmp_path: Path) -> None:
    etc, port = server_etc
    store = Etcd(tmp_path / "etcd")
    store.start()
    run = tmp_path / "run"
    run.mkdir()
    units: list[Unit] = []
    try:
        api = Unit("apiserver", env_args(
            "apiserver", etc, **{"http://127.0.0.1:2379": store.endpoint,
                                 "--secure-port=6443": f"--secure-port={port}",
                                 "--bind-address=0.0.0.0": "--bind-address=127.0.0.1",
                                 "@SERVER_IP@": "127.0.0.1"}), run)
        units.append(api)
        assert api.wait_ready().startswith(f"serving on https://127.0.0.1:{port}")
        lease = ["--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s",
                 "--leader-elect-retry-period=0.5s"]
        leader = Unit("controller-manager", env_args("controller-manager", etc) + lease, run)
        units.append(leader)
        assert leader.wait_ready() == "leading; caches synced"
        standby = Unit("controller-manager", env_args("controller-manager", etc) + lease, run,
                       name="controller-manager-2")
        units.append(standby)
        assert standby.wait_ready().startswith("standby; ")
        cloud_config = tmp_path / "cloud.yaml"
        cloud_config.write_text((TOP / "systemd" / "env" / "cloud.yaml").read_text())
        ccm = Unit("cloud-controller-manager",
                   env_args("cloud-controller-manager", etc,
                            **{f"{etc}/cloud.yaml": str(cloud_config)}), run)
        units.append(ccm)
        assert ccm.wait_ready() == "leading; caches synced"
        scheduler = Unit("scheduler", env_args("scheduler", etc), run)
        units.append(scheduler)
        scheduler.wait_ready()
        assert leader.stop() == 0 and leader.notify.stopping
    finally:
        codes = {u.name: u.stop() for u in reversed(units)}
        store.stop()
    assert set(codes.values()) == {0}, codes
