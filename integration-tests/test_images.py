"""Image import into a real containerd (OCI layout, docker archive); bad tars refused whole."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from harness import Pods, pinnace

from agent.images import importer, layout
from cri import errors
from cri.containerd_client import ContainerdClient
from cri.runtime import RuntimeClient
from pinnace.local.containerd import Containerd


def docker_archive(oci_tar: Path, out: Path, tag: str) -> Path:
    """Re-pack an OCI layout as a `docker save` style archive (uncompressed layer)."""
    archive = layout.read_archive(oci_tar)
    manifest = archive.manifest(archive.images[0])
    config = archive.blobs[manifest["config"]["digest"]]
    layer = gzip.decompress(archive.blobs[manifest["layers"][0]["digest"]])
    files = {
        "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                      "Layers": ["layer0/layer.tar"]}]).encode(),
        "config.json": config,
        "layer0/layer.tar": layer,
    }
    with tarfile.open(out, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


async def containerd_state(socket: str) -> tuple[set[str], set[str]]:
    async with ContainerdClient(socket) as ctd:
        names = {image.name for image in await ctd.list_images()}
        blobs = {info.digest for info in await ctd.list_blobs()}
    return names, blobs


async def test_import_cli_names_the_image(containerd: Containerd, images: dict[str, Path],
                                          cri: RuntimeClient) -> None:
    result = pinnace("images", "import", str(images["busybox"]), "--containerd",
                     containerd.socket, "--name", "localhost/imported:2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("localhost/imported:2\tsha256:")
    image = await cri.image_status("localhost/imported:2")
    assert image is not None and "localhost/imported:2" in image.repo_tags
    assert image.size > 500_000


async def test_docker_archive_import_runs(containerd: Containerd, images: dict[str, Path],
                                          cri: RuntimeClient, pods: Pods,
                                          tmp_path: Path) -> None:
    tar = docker_archive(images["busybox"], tmp_path / "docker.tar", "dockersaved:1")
    imported = await importer.import_archive(tar, containerd.socket)
    assert [i.name for i in imported] == ["docker.io/library/dockersaved:1"]
    config = pods.sandbox_config("docker-archive")
    sandbox_id = await cri.run_pod_sandbox(config)
    container_id = await cri.create_container(
        sandbox_id,
        pods.container_config("c", "docker.io/library/dockersaved:1", ["sleep", "30"]), config)
    await cri.start_container(container_id)
    result = await cri.exec_sync(container_id, ["busybox", "echo", "from-docker-archive"], 10)
    assert result.stdout == b"from-docker-archive\n"


@pytest.mark.parametrize("damage", ["not-a-tar", "no-index", "corrupt-blob", "missing-blob"])
async def test_bad_tar_is_refused_whole(containerd: Containerd, images: dict[str, Path],
                                        tmp_path: Path, damage: str) -> None:
    bad = tmp_path / f"{damage}.tar"
    if damage == "not-a-tar":
        bad.write_bytes(b"this is not a tar archive\n" * 100)
    else:
        with tarfile.open(images["busybox"]) as src, tarfile.open(bad, "w") as dst:
            for member in src:
                data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
                if damage == "no-index" and member.name == "index.json":
                    continue
                if data and member.name.startswith("blobs/") and member.size > 100_000:
                    if damage == "missing-blob":
                        continue
                    data = data[:-10] + b"x" * 10  # corrupt-blob: same size, other content
                dst.addfile(member, io.BytesIO(data) if data is not None else None)
    before = await containerd_state(containerd.socket)
    result = pinnace("images", "import", str(bad), "--containerd", containerd.socket,
                     "--name", f"localhost/{damage}:1")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pinnace images import: "), result.stderr
    expected = {"not-a-tar": "not a readable tar", "no-index": "not an image archive",
                "corrupt-blob": "is corrupt", "missing-blob": "is missing"}[damage]
    assert expected in lines[0]
    assert await containerd_state(containerd.socket) == before


async def test_failure_after_blobs_were_written_leaves_nothing(
        containerd: Containerd, images: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh image (other content than any imported so far) whose naming step fails.
    archive = layout.read_archive(images["busybox"])
    manifest = archive.manifest(archive.images[0])
    config_digest = manifest["config"]["digest"]
    config = json.loads(archive.blobs.pop(config_digest))
    config["config"]["Env"].append("UNIQUE=failure-test")
    new_config = json.dumps(config).encode()
    manifest["config"].update(digest=layout.sha256_digest(new_config), size=len(new_config))
    new_manifest = json.dumps(manifest).encode()
    del archive.blobs[archive.images[0].manifest_digest]
    archive.blobs[layout.sha256_digest(new_config)] = new_config
    archive.blobs[layout.sha256_digest(new_manifest)] = new_manifest
    archive.images = [layout.Image(("localhost/half:1",), layout.sha256_digest(new_manifest),
                                   layout.OCI_MANIFEST, len(new_manifest))]
    tar = tmp_path / "fresh.tar"
    layout.write_oci_tar(archive, tar)

    before = await containerd_state(containerd.socket)

    async def refuse(*args: object, **kwargs: object) -> None:
        raise errors.FailedPrecondition(containerd.socket, "Images/Create", None, "injected")

    monkeypatch.setattr(ContainerdClient, "put_image", refuse)
    with pytest.raises(errors.FailedPrecondition, match="injected"):
        await importer.import_archive(tar, containerd.socket)
    assert await containerd_state(containerd.socket) == before
