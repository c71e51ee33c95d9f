"""`pinnace apiserver` as a child process on loopback, with its PKI under its own directory.

Ready when `/readyz` answers 200 over TLS (which needs etcd and every watch cache).
"""

from __future__ import annotations

import ssl
import sys
import urllib.request
from pathlib import Path

from pinnace.local.process import Process, free_port


class APIServerProcess:
    """One apiserver on 127.0.0.1:PORT over `etcd_servers`; kubeconfig at `kubeconfig`."""

    def __init__(self, base: Path, etcd_servers: str, *, name: str = "apiserver",
                 port: int = 0, cert_dir: Path | None = None, extra: tuple[str, ...] = ()):
        self.base = base
        self.name = name
        self.port = port or free_port()
        self.cert_dir = cert_dir or base / "pki"
        self.process = Process(name, [
            sys.executable, "-m", "pinnace", "apiserver", "--etcd-servers", etcd_servers,
            "--bind-address", "127.0.0.1", "--secure-port", str(self.port),
            "--cert-dir", str(self.cert_dir), *extra,
        ], base / "logs" / f"{name}.log")

    def __repr__(self) -> str:
        return f"<APIServerProcess {self.url} {self.process!r}>"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.cert_dir / "admin.kubeconfig"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the cluster CA and presenting the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        context.load_cert_chain(self.cert_dir / "admin.crt", self.cert_dir / "admin.key")
        return context

    def start(self, timeout: float = 30.0) -> None:
        self.process.start()
        self.process.wait_ready(self._ready, timeout)

    def _ready(self) -> bool:
        if not (self.cert_dir / "ca.crt").exists():
            return False
        request = urllib.request.Request(self.url + "/readyz")
        with urllib.request.urlopen(request, timeout=2, context=self.ssl_context()) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        self.process.stop()
