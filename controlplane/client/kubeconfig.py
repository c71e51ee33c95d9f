"""Read a kubeconfig (the file kubectl uses) into what a client needs: server URL, TLS, identity.

Supports the fields our clusters write: certificate-authority(-data), client-certificate(-data),
client-key(-data), token(-file), insecure-skip-tls-verify, and the current context.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(Exception):
    """The kubeconfig is missing, unreadable or incomplete; the message names the file."""


@dataclass(frozen=True)
class ClientConfig:
    server: str
    ca_data: bytes | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    insecure: bool = False
    source: str = ""

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The client TLS context (False for plain http)."""
        if not self.server.startswith("https://"):
            return False
        context = ssl.create_default_context(
            cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_data and self.key_data:
            # ssl can only load a certificate chain from files: use a private temporary dir.
            with tempfile.TemporaryDirectory(prefix="pinnace-client-") as tmp:
                cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
                cert.write_bytes(self.cert_data)
                fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(self.key_data)
                context.load_cert_chain(cert, key)
        return context

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def _data(entry: dict[str, Any], name: str, base: Path) -> bytes | None:
    if entry.get(f"{name}-data"):
        return base64.b64decode(entry[f"{name}-data"])
    if entry.get(name):
        path = Path(entry[name])
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def _named(items: list[dict[str, Any]], name: str, what: str, source: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            body: dict[str, Any] = item.get(what) or {}
            return body
    raise KubeconfigError(f"{source}: no {what} named {name!r}")


def load(path: str | Path, *, context: str | None = None) -> ClientConfig:
    """Load `path` (the current context unless `context` is given)."""
    source = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise KubeconfigError(f"{source}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{source}: not a kubeconfig")
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError(f"{source}: no current-context")
    ctx = _named(doc.get("contexts") or [], name, "context", source)
    cluster = _named(doc.get("clusters") or [], ctx.get("cluster", ""), "cluster", source)
    user = _named(doc.get("users") or [], ctx.get("user", ""), "user", source) if ctx.get(
        "user") else {}
    base = Path(path).resolve().parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    if not cluster.get("server"):
        raise KubeconfigError(f"{source}: cluster {ctx.get('cluster')!r} has no server")
    return ClientConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_data=_data(cluster, "certificate-authority", base),
        cert_data=_data(user, "client-certificate", base),
        key_data=_data(user, "client-key", base),
        token=token, insecure=bool(cluster.get("insecure-skip-tls-verify")), source=source,
    )
