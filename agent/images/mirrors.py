"""Registry mirrors for containerd: `<config_path>/<registry>/hosts.toml`, rendered and written.

Where the mirror configuration lives: in containerd's own `certs.d` directory (the CRI plugin's
`[plugins."io.containerd.grpc.v1.cri".registry] config_path`), not in the agent. It is containerd
that pulls (the agent only asks it to through the CRI, as the kubelet does), containerd reads
these files again on every pull (no restart needed), and they then hold for every client of that
containerd (`ctr`, `crictl`, an agent restarting). Whoever sets up a node's containerd writes them:
- `pinnace up`: its registry as docker.io's mirror on every node (pinnace/up/plan.py);
- `pinnace.local.containerd.Containerd(mirrors=...)`: tests and benchmarks;
- on Vagrant VMs and systemd hosts the provisioner, through
  `pinnace images mirror docker.io http://SERVER:5000 --config-dir /etc/containerd/certs.d`
  (with `config_path = "/etc/containerd/certs.d"` in /etc/containerd/config.toml).

A mirror is tried first for `pull` and `resolve`; the registry's own `server` (docker.io's is
registry-1.docker.io) is the fallback. containerd 1.6.20 needs the `capabilities` of each host
table (a file with only `server` is rejected; see PLATFORM.md). A mirror given without a scheme
is plain http on a loopback address and https elsewhere, as `registry.default_scheme` decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from agent.images.registry import default_scheme

# The registry's own endpoint, used when every mirror fails (and by `server` in hosts.toml).
UPSTREAM = {"docker.io": "https://registry-1.docker.io"}
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?|\[[0-9A-Fa-f:]+\](?::[0-9]+)?")


class MirrorError(ValueError):
    """A registry name or mirror URL that cannot go into hosts.toml."""


def mirror_url(mirror: str) -> str:
    """`127.0.0.1:5000` -> `http://127.0.0.1:5000`; a URL with a scheme is kept (no trailing /)."""
    scheme, sep, rest = mirror.partition("://")
    if not sep:
        scheme, rest = default_scheme(mirror.split("/", 1)[0]), mirror
    host = rest.split("/", 1)[0]
    if scheme not in ("http", "https") or not _HOST.fullmatch(host):
        raise MirrorError(f"invalid mirror {mirror!r}: want [http[s]://]HOST[:PORT][/PATH]")
    return f"{scheme}://{rest.rstrip('/')}"


def render_hosts(registry: str, mirrors: Sequence[str]) -> str:
    """Return the hosts.toml text of `registry` (e.g. `docker.io`) pulling through `mirrors`."""
    if not _HOST.fullmatch(registry):
        raise MirrorError(f"invalid registry name {registry!r}: want HOST[:PORT]")
    server = UPSTREAM.get(registry) or f"{default_scheme(registry)}://{registry}"
    lines = [f'server = "{server}"']
    for mirror in mirrors:
        lines += ["", f'[host."{mirror_url(mirror)}"]', '  capabilities = ["pull", "resolve"]']
    return "\n".join(lines) + "\n"


def parse_mirrors(specs: Iterable[str]) -> dict[str, list[str]]:
    """`["docker.io=http://10.0.0.1:5000", ...]` -> {registry: [mirror, ...]} (order kept)."""
    result: dict[str, list[str]] = {}
    for spec in specs:
        registry, sep, mirror = spec.partition("=")
        if not sep or not registry or not mirror:
            raise MirrorError(f"invalid mirror {spec!r}: want REGISTRY=MIRROR_URL")
        result.setdefault(registry.strip(), []).append(mirror_url(mirror.strip()))
    return result


def write_hosts(config_dir: Path, mirrors: Mapping[str, Sequence[str]]) -> list[Path]:
    """Write `<config_dir>/<registry>/hosts.toml` for each registry (atomically); return paths."""
    written = []
    for registry, urls in mirrors.items():
        text = render_hosts(registry, urls)
        path = config_dir / registry / "hosts.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


def remove_hosts(config_dir: Path, registries: Iterable[str]) -> None:
    """Remove the hosts.toml of each registry (absent ones are fine)."""
    for registry in registries:
        path = config_dir / registry / "hosts.toml"
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # not empty (certificates) or already gone
