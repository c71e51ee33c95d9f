"""A local OCI registry (Debian's docker-registry) serving a storage directory over plain http.

Several processes may serve one storage directory: a node's network namespace has its own
loopback, so a node gets its own registry process on its own 127.0.0.1, over the same images.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from pinnace.local.process import Process, free_port


def render_config(storage: Path, addr: str, *, readonly: bool = False) -> str:
    """Return the registry's YAML config: filesystem storage, http on `addr`, no auth.

    `readonly` puts it in maintenance mode: pulls work, pushes are refused.
    """
    return f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    readonly:
      enabled: {"true" if readonly else "false"}
http:
  addr: {addr}
"""


class Registry:
    """docker-registry on ADDRESS:PORT (127.0.0.1 of `netns` when given), storing under
    `storage`."""

    def __init__(self, base: Path, *, storage: Path | None = None, name: str = "registry",
                 netns: str | None = None, port: int = 0, readonly: bool = False,
                 address: str = "127.0.0.1") -> None:
        self.base = base
        self.address = address
        self.name = name
        self.netns = netns
        self.readonly = readonly
        self.storage = storage or base / "registry"
        # inside a fresh namespace every port is free; probe only our own namespace's ports
        self.port = port or free_port()
        self.config = base / f"{name}.yml"
        self.process = Process(name, ["docker-registry", "serve", str(self.config)],
                               base / "logs" / f"{name}.log", netns=netns)

    def __repr__(self) -> str:
        return f"<Registry {self.host} netns={self.netns} {self.process!r}>"

    @property
    def host(self) -> str:
        """`ADDRESS:PORT`, the registry part of image references it serves."""
        return f"{self.address}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(render_config(self.storage, self.host, readonly=self.readonly))
        self.process.start()
        if self.netns is None:
            self.process.wait_ready(self._answers, timeout)
        else:
            self.process.wait_ready(self._answers_in_netns, timeout)

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as response:
            return bool(response.status == 200)

    def _answers_in_netns(self) -> bool:
        import subprocess

        from pinnace.local.process import netns_prefix

        probe = [*netns_prefix(self.netns), "busybox", "wget", "-q", "-O", "/dev/null",
                 f"http://{self.host}/v2/"]
        return subprocess.run(probe, capture_output=True, timeout=5).returncode == 0

    def stop(self) -> None:
        self.process.stop()
