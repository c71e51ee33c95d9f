"""The node image of the container tier, assembled offline: no registry, no internet, ~20 KB.

Why not a tar of the binaries: the interpreter alone (pyenv) is ~1 GB and the venv ~400 MB;
copying and `docker import`ing that takes tens of seconds and goes stale with every change of
the checkout. So the image is only a root skeleton, and the host's software is bind-mounted
read-only into each container (`host_mounts`): /usr (containerd, containerd-shim-runc-v2, runc,
ctr, CNI plugins in /usr/lib/cni, iptables, iproute2, busybox, util-linux and every library they
need), the Python installation the tests run with, its venv and this checkout. The skeleton
holds what those need from the root: the merged-/usr links (/bin -> usr/bin, ...), a few /etc
files (passwd, nsswitch.conf, ld.so.cache, protocols, the /etc/alternatives links that
Debian's `iptables` resolves through), and the entrypoint (entrypoint.sh). `docker import`
of it takes ~0.1 s; a container starts with containerd ready in about a second.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOP = HERE.parents[1]
REPOSITORY = "localhost/pinnace-node"
ENTRYPOINT = "/pinnace-node"
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_FILES = ("passwd", "group", "nsswitch.conf", "protocols", "services", "ethertypes",
             "ld.so.cache", "ld.so.conf")
ETC_DIRS = ("ld.so.conf.d", "alternatives")
DIRS = ("dev", "etc", "proc", "root", "run", "sys", "tmp", "usr", "var", "var/lib", "var/log",
        "etc/cni", "etc/cni/net.d")


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 0
    info.uid = info.gid = 0
    return info


def _file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    tar.addfile(info)


def skeleton(etc: Path = Path("/etc"), root: Path = Path("/")) -> bytes:
    """The image's root filesystem as an uncompressed tar (deterministic for the same host)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in DIRS:
            tar.addfile(_info(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755))
        for name in ROOT_LINKS:
            if (root / name).is_symlink():
                _link(tar, name, os.readlink(root / name))
        _link(tar, "var/run", "../run")
        _link(tar, "etc/mtab", "/proc/self/mounts")
        for name in ETC_FILES:
            if (etc / name).is_file():
                _file(tar, f"etc/{name}", (etc / name).read_bytes())
        for d in ETC_DIRS:
            if not (etc / d).is_dir():
                continue
            tar.addfile(_info(f"etc/{d}", tarfile.DIRTYPE, 0o755))
            for entry in sorted((etc / d).iterdir()):
                if entry.is_symlink():
                    _link(tar, f"etc/{d}/{entry.name}", os.readlink(entry))
                elif entry.is_file():
                    _file(tar, f"etc/{d}/{entry.name}", entry.read_bytes())
        _file(tar, ENTRYPOINT.lstrip("/"), (HERE / "entrypoint.sh").read_bytes(), 0o755)
    return out.getvalue()


def write(path: Path) -> str:
    """Write the skeleton tar to `path`; return the image reference to import it as."""
    data = skeleton()
    path.write_bytes(data)
    return f"{REPOSITORY}:{hashlib.sha256(data).hexdigest()[:12]}"


class NodeImage:
    """The skeleton imported into a daemon; `remove()` is safe to call twice, and after the
    daemon is gone (its stop removes its data anyway)."""

    def __init__(self, client: Any, ref: str) -> None:
        self.client = client  # a docker SDK client of that daemon
        self.ref = ref
        self.removed = False

    @classmethod
    def build(cls, client: Any, tar: Path) -> NodeImage:
        """Write the skeleton to `tar` and `docker import` it."""
        ref = write(tar)
        repository, tag = ref.rsplit(":", 1)
        client.api.import_image_from_file(str(tar), repository=repository, tag=tag)
        return cls(client, ref)

    def remove(self) -> None:
        if not self.removed:
            self.removed = True
            try:
                self.client.images.remove(self.ref, force=True)
            except Exception as exc:  # noqa: BLE001 - reported; dockerd's stop removes it
                print(f"removing image {self.ref}: {exc}")


def host_mounts() -> list[str]:
    """Host directories every node container gets read-only, at the same paths: /usr, any root
    directory that is not a link into /usr, the Python installation and venv, the checkout."""
    paths = [Path("/usr")]
    paths += [Path("/", name) for name in ROOT_LINKS
              if Path("/", name).is_dir() and not Path("/", name).is_symlink()]
    for prefix in (Path(sys.base_prefix), Path(sys.prefix), TOP):
        prefix = prefix.resolve()
        if not any(prefix == p or p in prefix.parents for p in paths):
            paths = [p for p in paths if prefix not in p.parents] + [prefix]
    return [str(p) for p in paths]
