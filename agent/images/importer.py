"""Import an image archive into containerd (namespace k8s.io) through its content and images APIs.

The archive is read and validated whole first (`layout.read_archive`); only then is anything
written, under a lease, so that a failure part-way leaves nothing behind: the lease's deletion
lets containerd collect every blob no image references. Blobs carry containerd's GC reference
labels (manifest -> config and layers, index -> manifests), as `ctr import` sets them, so the
image keeps its content after the lease is gone. The CRI unpacks an imported image on first use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.images import layout
from cri import errors
from cri.containerd_client import ContainerdClient

log = logging.getLogger(__name__)
GC_REF = "containerd.io/gc.ref.content"


@dataclass(frozen=True)
class ImportedImage:
    name: str
    digest: str


def gc_labels(archive: layout.Archive, digest: str) -> dict[str, str]:
    """Return the GC reference labels blob `digest` needs to keep its children alive."""
    data = archive.blobs[digest]
    if not data.startswith(b"{"):
        return {}
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(doc, dict):
        return {}
    labels: dict[str, str] = {}
    if isinstance(doc.get("config"), dict) and isinstance(doc.get("layers"), list):
        labels[f"{GC_REF}.config"] = doc["config"]["digest"]
        for i, layer in enumerate(doc["layers"]):
            labels[f"{GC_REF}.l.{i}"] = layer["digest"]
    elif isinstance(doc.get("manifests"), list):
        for i, child in enumerate(doc["manifests"]):
            if child.get("digest") in archive.blobs:
                labels[f"{GC_REF}.m.{i}"] = child["digest"]
    return labels


def name_images(archive: layout.Archive, names: Sequence[str]) -> list[layout.Image]:
    """Return the archive's images with `names` applied (only for a one-image archive)."""
    images = archive.images
    if names:
        if len(images) != 1:
            raise layout.ImageArchiveError(
                f"the archive holds {len(images)} images; names can be given for one image only"
            )
        images = [replace(images[0], names=tuple(layout.normalize_reference(n) for n in names))]
    for image in images:
        if not image.names:
            raise layout.ImageArchiveError(
                f"image {image.manifest_digest} has no name in the archive; give one with --name"
            )
    return images


async def import_archive(path: Path, socket: str, names: Sequence[str] = (), *,
                         timeout: float = 60.0) -> list[ImportedImage]:
    """Import the archive at `path` into the containerd at `socket`; return what was named."""
    archive = layout.read_archive(path)
    images = name_images(archive, names)
    async with ContainerdClient(socket, timeout=timeout) as ctd:
        expire = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lease = await ctd.create_lease({"containerd.io/gc.expire": expire})
        created: list[str] = []
        done = False
        try:
            for digest, data in archive.blobs.items():
                await ctd.write_blob(digest, data, labels=gc_labels(archive, digest),
                                     lease_id=lease)
            imported = []
            for image in images:
                for name in image.names:
                    if await ctd.get_image(name) is None:
                        created.append(name)
                    await ctd.put_image(name, image.manifest_media_type, image.manifest_digest,
                                        image.manifest_size)
                    imported.append(ImportedImage(name, image.manifest_digest))
            created.clear()
            done = True
            return imported
        finally:
            for name in created:  # a failure while naming: take back the names we added
                try:
                    await ctd.delete_image(name)
                except errors.CRIError as exc:
                    log.warning("could not remove half-imported image name=%s: %s", name, exc)
            # After a failure, wait for the collection so that nothing of ours is left on return.
            await ctd.delete_lease(lease, sync=not done)
