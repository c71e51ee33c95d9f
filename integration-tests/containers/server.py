"""The container tier's control plane, on the host: etcd, apiserver, scheduler, controller-manager.

Provisioned as a systemd server is: `pinnace certs` makes the PKI and kubeconfigs (the server's
and each node's), `scripts/install-systemd.sh server --root R` lays out R/etc/pinnace with the
units' EnvironmentFiles, and each component runs with its unit's PINNACE_ARGS, paths moved
from /etc/pinnace to R/etc/pinnace and only these changed: the etcd endpoint (our own etcd, on
loopback), the apiserver bound to the bridge address the node containers reach (not 0.0.0.0)
on a free port, and the controller-manager's node grace period shortened so a lost node is
noticed in seconds (`EXTRA`). The cloud-controller-manager is not needed by the scenario.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from pinnace.local.etcd import Etcd
from pinnace.local.process import Process

TOP = Path(__file__).resolve().parents[2]
INSTALL = TOP / "scripts" / "install-systemd.sh"
COMPONENTS = ("apiserver", "scheduler", "controller-manager")
# The agent renews its Lease every 10 s: the grace period must stay above that.
EXTRA = {"controller-manager": ["--node-monitor-grace-period=15s"]}


def env_args(env_file: Path) -> list[str]:
    """PINNACE_ARGS of a unit's EnvironmentFile, split on whitespace as systemd's $VAR is."""
    for line in env_file.read_text().splitlines():
        if line.startswith("PINNACE_ARGS="):
            return line.removeprefix("PINNACE_ARGS=").split()
    raise ValueError(f"{env_file}: no PINNACE_ARGS line")


def override(args: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """`args` with each `--flag=value` of `values`' flags replaced (added when absent)."""
    out = [a for a in args if a.split("=", 1)[0] not in values]
    return out + [f"{flag}={value}" for flag, value in values.items()]


def install(role: str, root: Path, certs: Path, *extra: str) -> None:
    """scripts/install-systemd.sh ROLE --root ROOT: the host's /etc/pinnace etc., under ROOT."""
    result = subprocess.run(["bash", str(INSTALL), role, "--root", str(root), "--certs",
                             str(certs), *extra], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"install-systemd.sh {role} failed: {result.stdout}{result.stderr}")


class ControlPlane:
    """The server side, under `base`; the apiserver listens on `address`:`port`."""

    def __init__(self, base: Path, address: str, port: int) -> None:
        self.base = base
        self.address = address
        self.port = port
        self.certs = base / "certs"
        self.root = base / "server"
        self.etcd = Etcd(base / "etcd")
        self.processes: list[Process] = []

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.certs / "admin.kubeconfig"

    def make_certs(self, nodes: Mapping[str, str]) -> None:
        """`pinnace certs` for the server and each node (name -> address)."""
        node_args = [a for name, ip in nodes.items() for a in ("--node", f"{name}={ip}")]
        result = subprocess.run(
            [sys.executable, "-m", "pinnace", "certs", "--dir", str(self.certs),
             "--server-url", self.url, *node_args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"pinnace certs failed: {result.stderr}")
        install("server", self.root, self.certs, "--server-ip", self.address)

    def argv(self, component: str) -> list[str]:
        etc = self.root / "etc" / "pinnace"
        args = [a.replace("/etc/pinnace/", f"{etc}/")
                for a in env_args(etc / f"{component}.env")]
        if component == "apiserver":
            args = override(args, {"--etcd-servers": self.etcd.endpoint,
                                   "--bind-address": self.address,
                                   "--secure-port": str(self.port)})
        return [sys.executable, "-m", "pinnace", component, *args, *EXTRA.get(component, [])]

    def start(self) -> None:
        self.etcd.start()
        for component in COMPONENTS:
            process = Process(component, self.argv(component),
                              self.base / "logs" / f"{component}.log")
            self.processes.append(process)
            process.start()
            if component == "apiserver":
                process.wait_ready(self._ready, 30)

    def _ready(self) -> bool:
        pki = self.root / "etc" / "pinnace" / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(self.certs / "server" / "pki" / "admin.crt",
                                self.certs / "server" / "pki" / "admin.key")
        with urllib.request.urlopen(self.url + "/readyz", timeout=2, context=context) as r:
            return bool(r.status == 200)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.etcd.stop()
