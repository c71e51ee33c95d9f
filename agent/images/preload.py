"""Air-gapped nodes: import every image tar of the agent's `--images-dir` before pods start.

As k3s' `agent/images` directory: each `*.tar` (also `.tar.gz`, `.tgz`) there, an OCI layout or
a docker archive (`docker save`), is imported into containerd's k8s.io namespace in name order,
so pods with `imagePullPolicy: Never` or `IfNotPresent` find their images without a registry.
A tar that cannot be imported (corrupt, truncated, not an image archive, unnamed image) is
skipped, nothing of it is left in containerd (`importer`), the failure is logged and reported
as a Warning event `ImageImportFailed` on the Node, and the agent goes on with the others.
A containerd refusing an archive is reported the same way (the agent still starts; pods
needing the image then wait with ErrImageNeverPull or pull it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.images import importer, layout
from controlplane.client.events import Recorder
from cri import errors

log = logging.getLogger(__name__)
SUFFIXES = (".tar", ".tar.gz", ".tgz")
FAILED_REASON = "ImageImportFailed"


@dataclass
class PreloadResult:
    """What one pass over the directory did: image names imported, and (file, why) failures."""

    imported: list[str] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def archives_in(directory: Path) -> list[Path]:
    """The image archives of `directory`, sorted by name (hidden and partial files skipped)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name.endswith(SUFFIXES))


async def import_directory(directory: Path | None, socket: str) -> PreloadResult:
    """Import every archive of `directory` into the containerd at `socket`."""
    result = PreloadResult()
    if directory is None:
        return result
    if not directory.is_dir():
        log.warning("images directory %s does not exist: nothing imported", directory)
        return result
    for path in archives_in(directory):
        started = time.monotonic()
        try:
            imported = await importer.import_archive(path, socket)
        except layout.ImageArchiveError as exc:
            why = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        except errors.CRIError as exc:
            why = f"{path}: containerd refused it: {exc}"
        except Exception as exc:  # noqa: BLE001 - one malformed tar must not stop the agent
            log.debug("importing %s", path, exc_info=True)
            why = f"{path}: malformed image archive ({type(exc).__name__}: {exc})"
        else:
            for image in imported:
                log.info("imported image %s (%s) from %s in %.2fs", image.name, image.digest,
                         path, time.monotonic() - started)
                result.imported.append(image.name)
            continue
        log.warning("image archive not imported: %s", why)
        result.failed.append((path, why))
    return result


def node_reference(node_name: str) -> dict[str, object]:
    """The object events about this node are recorded against (the kubelet's node ref)."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name,
                                                              "uid": node_name}}


def report(result: PreloadResult, recorder: Recorder, node_name: str) -> None:
    """Record a Warning event on the Node for each archive that could not be imported."""
    node = node_reference(node_name)
    for _path, why in result.failed:
        recorder.event(node, "Warning", FAILED_REASON, f"Failed to import image archive {why}")
