"""A local single-member etcd on loopback with its own data directory and free ports."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from pinnace.local.process import Process, free_port


class Etcd:
    """etcd listening on 127.0.0.1 (client and peer ports chosen free unless given)."""

    def __init__(self, base: Path, *, name: str = "etcd", client_port: int = 0,
                 peer_port: int = 0) -> None:
        self.base = base
        self.name = name
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        client = self.endpoint
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = Process(name, [
            "etcd", "--name", name, "--data-dir", str(base / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn", "--logger", "zap",
        ], base / "logs" / f"{name}.log")

    def __repr__(self) -> str:
        return f"<Etcd {self.endpoint} {self.process!r}>"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0) -> None:
        self.process.start()
        self.process.wait_ready(self._healthy, timeout)

    def _healthy(self) -> bool:
        with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as response:
            return bool(json.load(response).get("health") == "true")

    def stop(self) -> None:
        self.process.stop()
