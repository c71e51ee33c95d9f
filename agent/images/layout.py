"""Image archives: read an OCI image-layout or docker-archive tar, validate it whole, write one.

An `Archive` is what both formats mean: named images (each a manifest or index digest) and the
blobs they reference, digest -> bytes. `read_archive` checks every referenced blob's presence,
size and sha256 before it returns, so an importer never writes half of a corrupt tar. Archives are
held in memory: fine for the small images a node imports here (busybox is about 1 MB).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_LAYOUT_VERSION = "1.0.0"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"


# [registry[:port]/]path[:tag][@sha256:hex], path components lowercase (the distribution grammar).
_REFERENCE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)


class ImageArchiveError(Exception):
    """The archive is not a readable, complete, uncorrupted image archive."""


@dataclass(frozen=True)
class Image:
    """One image in an archive: its names and the descriptor of its manifest (or index)."""

    names: tuple[str, ...]
    manifest_digest: str
    manifest_media_type: str
    manifest_size: int


@dataclass
class Archive:
    """Images and every blob they reference (digest -> content), already validated."""

    images: list[Image]
    blobs: dict[str, bytes] = field(default_factory=dict)

    def manifest(self, image: Image) -> dict[str, Any]:
        """Return the parsed manifest (or index) of `image`."""
        parsed: dict[str, Any] = json.loads(self.blobs[image.manifest_digest])
        return parsed


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def normalize_reference(ref: str) -> str:
    """Return the fully qualified form of an image reference, as containerd and the CRI use it.

    `busybox` -> `docker.io/library/busybox:latest`; `localhost/pause:1` stays as it is.
    """
    if not _REFERENCE.fullmatch(ref):
        raise ImageArchiveError(f"invalid image reference {ref!r}")
    first, _, rest = ref.partition("/")
    if first != first.lower() and ("." not in first and ":" not in first or not rest):
        raise ImageArchiveError(f"invalid image reference {ref!r}: repository names are lowercase")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        ref = "docker.io/" + ("library/" + ref if not rest else ref)
    last = ref.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        ref += ":latest"
    return ref


def _read_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageArchiveError(f"{what} is not valid JSON: {exc}") from None


def _members(path: Path) -> dict[str, bytes]:
    """Return every regular file of the tar (names without a leading './'), or raise clearly."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            files: dict[str, bytes] = {}
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    files[member.name.removeprefix("./")] = extracted.read()
            return files
    except FileNotFoundError:
        raise ImageArchiveError(f"{path}: no such file") from None
    except tarfile.ReadError:
        raise ImageArchiveError(f"{path}: not a readable tar archive") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageArchiveError(f"{path}: not a readable tar archive ({reason})") from None


def read_archive(path: Path) -> Archive:
    """Read an OCI image-layout or docker-archive tar and validate every referenced blob."""
    files = _members(path)
    if "index.json" in files:
        archive = _read_oci(files)
    elif "manifest.json" in files:
        archive = _read_docker(files)
    else:
        raise ImageArchiveError(
            f"{path}: not an image archive (neither an OCI layout with index.json "
            "nor a docker archive with manifest.json)"
        )
    if not archive.images:
        raise ImageArchiveError(f"{path}: the archive names no image")
    return archive


def _checked_blob(files: dict[str, bytes], desc: dict[str, Any], what: str) -> bytes:
    digest = desc.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ImageArchiveError(f"{what}: unsupported or missing digest {digest!r}")
    data = files.get("blobs/sha256/" + digest.removeprefix("sha256:"))
    if data is None:
        raise ImageArchiveError(f"{what}: blob {digest} is missing from the archive")
    actual = sha256_digest(data)
    if actual != digest:
        raise ImageArchiveError(f"{what}: blob {digest} is corrupt (its content is {actual})")
    if desc.get("size") is not None and desc["size"] != len(data):
        raise ImageArchiveError(
            f"{what}: blob {digest} has {len(data)} bytes, its descriptor says {desc['size']}"
        )
    return data


def _collect(files: dict[str, bytes], desc: dict[str, Any], blobs: dict[str, bytes], what: str,
             depth: int = 0) -> None:
    """Validate `desc` and, for an index or manifest, everything it references."""
    if depth > 4:
        raise ImageArchiveError(f"{what}: indexes nested too deeply")
    data = _checked_blob(files, desc, what)
    blobs[desc["digest"]] = data
    media_type = desc.get("mediaType")
    if media_type in INDEX_TYPES:
        index = _read_json(data, f"{what}: index {desc['digest']}")
        for i, child in enumerate(index.get("manifests") or []):
            platform = child.get("platform") or {}
            wanted = ("linux", "amd64")
            if platform and (platform.get("os"), platform.get("architecture")) != wanted:
                continue  # other platforms' content need not be in an archive for this node
            _collect(files, child, blobs, f"{what}: manifests[{i}]", depth + 1)
    elif media_type in MANIFEST_TYPES:
        manifest = _read_json(data, f"{what}: manifest {desc['digest']}")
        config = manifest.get("config")
        if not isinstance(config, dict):
            raise ImageArchiveError(f"{what}: manifest {desc['digest']} has no config")
        blobs[config["digest"]] = _checked_blob(files, config, f"{what}: config")
        _read_json(blobs[config["digest"]], f"{what}: config {config['digest']}")
        for i, layer in enumerate(manifest.get("layers") or []):
            blobs[layer["digest"]] = _checked_blob(files, layer, f"{what}: layers[{i}]")
    else:
        raise ImageArchiveError(f"{what}: unsupported media type {media_type!r}")


def _read_oci(files: dict[str, bytes]) -> Archive:
    layout_file = files.get("oci-layout")
    if layout_file is not None:
        version = _read_json(layout_file, "oci-layout").get("imageLayoutVersion")
        if version != OCI_LAYOUT_VERSION:
            raise ImageArchiveError(f"oci-layout: unsupported imageLayoutVersion {version!r}")
    index = _read_json(files["index.json"], "index.json")
    blobs: dict[str, bytes] = {}
    by_digest: dict[str, list[str]] = {}
    descs: dict[str, dict[str, Any]] = {}
    for i, desc in enumerate(index.get("manifests") or []):
        if not isinstance(desc, dict):
            raise ImageArchiveError(f"index.json: manifests[{i}] is not a descriptor")
        _collect(files, desc, blobs, f"index.json manifests[{i}]")
        annotations = desc.get("annotations") or {}
        name = annotations.get(CONTAINERD_NAME) or annotations.get(OCI_REF_NAME)
        names = by_digest.setdefault(desc["digest"], [])
        descs[desc["digest"]] = desc
        if name:
            normalized = normalize_reference(name)
            if normalized not in names:
                names.append(normalized)
    images = [
        Image(tuple(names), digest, descs[digest]["mediaType"], len(blobs[digest]))
        for digest, names in by_digest.items()
    ]
    return Archive(images=images, blobs=blobs)


def _read_docker(files: dict[str, bytes]) -> Archive:
    entries = _read_json(files["manifest.json"], "manifest.json")
    if not isinstance(entries, list):
        raise ImageArchiveError("manifest.json: expected a list of images")
    blobs: dict[str, bytes] = {}
    images = []
    for i, entry in enumerate(entries):
        what = f"manifest.json [{i}]"
        config_name = entry.get("Config")
        if config_name not in files:
            raise ImageArchiveError(f"{what}: config {config_name!r} is missing from the archive")
        config_blob = files[config_name]
        config = _read_json(config_blob, f"{what}: config")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layer_names = entry.get("Layers") or []
        if len(diff_ids) != len(layer_names):
            raise ImageArchiveError(
                f"{what}: {len(layer_names)} layers but the config lists {len(diff_ids)} diff_ids"
            )
        layers = []
        for j, (layer_name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
            if layer_name not in files:
                raise ImageArchiveError(f"{what}: layer {layer_name!r} is missing from the archive")
            data = files[layer_name]
            compressed = data[:2] == b"\x1f\x8b"
            try:
                uncompressed = gzip.decompress(data) if compressed else data
            except (OSError, EOFError, zlib.error) as exc:
                raise ImageArchiveError(
                    f"{what}: layer {layer_name!r} is corrupt ({exc})") from None
            if sha256_digest(uncompressed) != diff_id:
                raise ImageArchiveError(
                    f"{what}: layer {j} ({layer_name}) does not match diff_id {diff_id}"
                )
            digest = sha256_digest(data)
            blobs[digest] = data
            media_type = DOCKER_LAYER_GZIP if compressed else DOCKER_LAYER
            layers.append({"mediaType": media_type, "digest": digest, "size": len(data)})
        config_digest = sha256_digest(config_blob)
        blobs[config_digest] = config_blob
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest,
                       "size": len(config_blob)},
            "layers": layers,
        }
        manifest_blob = json.dumps(manifest, separators=(",", ":")).encode()
        digest = sha256_digest(manifest_blob)
        blobs[digest] = manifest_blob
        names = tuple(normalize_reference(t) for t in entry.get("RepoTags") or [])
        images.append(Image(names, digest, DOCKER_MANIFEST, len(manifest_blob)))
    return Archive(images=images, blobs=blobs)


def write_oci_tar(archive: Archive, path: Path) -> None:
    """Write `archive` as a deterministic OCI image-layout tar (sorted, mtime 0, root-owned)."""
    manifests = []
    for image in archive.images:
        for name in image.names:
            manifests.append({
                "mediaType": image.manifest_media_type,
                "digest": image.manifest_digest,
                "size": image.manifest_size,
                "annotations": {CONTAINERD_NAME: name, OCI_REF_NAME: name},
            })
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode(),
        "index.json": json.dumps(index, sort_keys=True, separators=(",", ":")).encode(),
    }
    for digest, data in archive.blobs.items():
        files["blobs/sha256/" + digest.removeprefix("sha256:")] = data
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            tar.addfile(_entry(directory, tarfile.DIRTYPE, 0o755))
        for name in sorted(files):
            info = _entry(name, tarfile.REGTYPE, 0o644)
            info.size = len(files[name])
            tar.addfile(info, io.BytesIO(files[name]))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
