"""Build the built-in images (`pause`, `busybox`) as OCI image-layout tars from busybox-static.

The output is deterministic: every tar entry has mtime 0, uid/gid 0 and a sorted order, the gzip
header carries no name or time, and the config has no creation date. Same busybox binary in,
same digests out, so nodes that build their own images agree with the registry's copy.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.images import layout

BUSYBOX = "/bin/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PAUSE_IMAGE = "localhost/pause:1"
BUSYBOX_IMAGE = "localhost/busybox:1"

# The sandbox's pid 1: sleeps until SIGTERM/SIGINT, then exits 0 (a bare `sleep` as pid 1 would
# ignore SIGTERM, since pid 1 has no default signal actions).
PAUSE_ENTRYPOINT = [
    "/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
]


@dataclass(frozen=True)
class BuiltImage:
    """One image written by `build_all`: where, under which names, with which manifest digest."""

    path: Path
    names: tuple[str, ...]
    digest: str


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    """Every applet path busybox offers (`bin/sh`, `usr/bin/wget`, ...), sorted."""
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True)
    return sorted({line.strip() for line in out.stdout.splitlines() if line.strip()})


def _tarinfo(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def rootfs_layer(busybox: str, applets: list[str], files: dict[str, bytes]) -> bytes:
    """Return an uncompressed layer tar: busybox at /bin/busybox, one symlink per applet, files."""
    dirs = {"bin", "dev", "etc", "proc", "root", "sys", "tmp", "var", "usr", "usr/bin", "sbin"}
    dirs |= {"usr/sbin", "var/www"}
    for path in [*applets, *files]:
        parent = path.rpartition("/")[0]
        while parent:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    for d in dirs:
        entries[d] = (_tarinfo(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755), None)
    binary = Path(busybox).read_bytes()
    info = _tarinfo("bin/busybox", tarfile.REGTYPE, 0o755)
    info.size = len(binary)
    entries["bin/busybox"] = (info, binary)
    for applet in applets:
        if applet == "bin/busybox":
            continue
        link = _tarinfo(applet, tarfile.SYMTYPE, 0o777)
        link.linkname = "/bin/busybox"
        entries[applet] = (link, None)
    for path, content in files.items():
        info = _tarinfo(path, tarfile.REGTYPE, 0o644)
        info.size = len(content)
        entries[path] = (info, content)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info, data = entries[name]
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_layout(layer_tar: bytes, config: Mapping[str, object],
                 names: list[str]) -> layout.Archive:
    """Assemble an OCI image (gzip layer, config, manifest) named `names` as an Archive."""
    layer = _gzip(layer_tar)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [_sha256(layer_tar)]},
        "history": [{"created_by": "pinnace images build (busybox-static)"}],
    }
    config_blob = _json(image_config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": layout.OCI_MANIFEST,
        "config": {
            "mediaType": layout.OCI_CONFIG,
            "digest": _sha256(config_blob),
            "size": len(config_blob),
        },
        "layers": [
            {"mediaType": layout.OCI_LAYER_GZIP, "digest": _sha256(layer), "size": len(layer)}
        ],
    }
    manifest_blob = _json(manifest)
    blobs = {_sha256(b): b for b in (layer, config_blob, manifest_blob)}
    image = layout.Image(
        names=tuple(names),
        manifest_digest=_sha256(manifest_blob),
        manifest_media_type=layout.OCI_MANIFEST,
        manifest_size=len(manifest_blob),
    )
    return layout.Archive(images=[image], blobs=blobs)


def build_all(out_dir: Path, busybox: str = BUSYBOX) -> list[BuiltImage]:
    """Write `pause.tar` and `busybox.tar` (OCI image layouts) into `out_dir`."""
    if shutil.which(busybox) is None and not Path(busybox).is_file():
        raise FileNotFoundError(f"{busybox} not found: install Debian's busybox-static")
    applets = busybox_applets(busybox)
    etc = {
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"
                      b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }
    layer = rootfs_layer(busybox, applets, etc)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for filename, names, config in (
        ("pause.tar", [PAUSE_IMAGE], {"Entrypoint": PAUSE_ENTRYPOINT, "Env": [PATH_ENV]}),
        ("busybox.tar", [BUSYBOX_IMAGE], {"Cmd": ["sh"], "Env": [PATH_ENV]}),
    ):
        archive = image_layout(layer, config, names)
        path = out_dir / filename
        layout.write_oci_tar(archive, path)
        results.append(BuiltImage(path, tuple(names), archive.images[0].manifest_digest))
    return results
