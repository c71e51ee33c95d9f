"""Image archives: deterministic builds, validation before any write, reference normalisation."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from agent.images import build, importer, layout


@pytest.fixture
def fake_busybox(tmp_path: Path) -> str:
    """A stand-in busybox: a script answering --list-full, so builds need no real binary."""
    script = tmp_path / "busybox"
    script.write_text("#!/bin/sh\nprintf 'bin/sh\\nbin/busybox\\nusr/bin/wget\\nsbin/ip\\n'\n")
    script.chmod(0o755)
    return str(script)


def test_build_is_deterministic(tmp_path: Path, fake_busybox: str) -> None:
    first = build.build_all(tmp_path / "a", fake_busybox)
    second = build.build_all(tmp_path / "b", fake_busybox)
    assert [i.digest for i in first] == [i.digest for i in second]
    for a, b in zip(first, second, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
    assert [i.names for i in first] == [("localhost/pause:1",), ("localhost/busybox:1",)]


def test_built_layer_links_every_applet(tmp_path: Path, fake_busybox: str) -> None:
    built = build.build_all(tmp_path, fake_busybox)
    archive = layout.read_archive(built[1].path)
    manifest = archive.manifest(archive.images[0])
    layer = gzip.decompress(archive.blobs[manifest["layers"][0]["digest"]])
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    for applet in ("bin/sh", "usr/bin/wget", "sbin/ip"):
        assert members[applet].issym() and members[applet].linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
    config = json.loads(archive.blobs[manifest["config"]["digest"]])
    assert config["config"]["Cmd"] == ["sh"]
    assert config["rootfs"]["diff_ids"] == [layout.sha256_digest(layer)]


def test_oci_roundtrip_keeps_names_and_blobs(tmp_path: Path, fake_busybox: str) -> None:
    built = build.build_all(tmp_path, fake_busybox)
    archive = layout.read_archive(built[0].path)
    assert archive.images[0].names == ("localhost/pause:1",)
    archive.images[0] = layout.Image(("localhost/pause:1", "docker.io/library/pause:x"),
                                     archive.images[0].manifest_digest,
                                     archive.images[0].manifest_media_type,
                                     archive.images[0].manifest_size)
    layout.write_oci_tar(archive, tmp_path / "copy.tar")
    copy = layout.read_archive(tmp_path / "copy.tar")
    assert copy.images == archive.images
    assert copy.blobs == archive.blobs


@pytest.mark.parametrize("ref,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("someone/app:2", "docker.io/someone/app:2"),
    ("localhost/pause:1", "localhost/pause:1"),
    ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
    ("127.0.0.1:5000/x:y", "127.0.0.1:5000/x:y"),
    ("quay.io/org/img@sha256:" + "ab" * 32, "quay.io/org/img@sha256:" + "ab" * 32),
])
def test_references_are_normalised_like_containerd(ref: str, expected: str) -> None:
    assert layout.normalize_reference(ref) == expected


@pytest.mark.parametrize("ref", ["", "Busybox", "bad name", "a//b", "x:"])
def test_invalid_references_are_refused(ref: str) -> None:
    with pytest.raises(layout.ImageArchiveError, match="invalid image reference|lowercase"):
        layout.normalize_reference(ref)


def test_gc_labels_link_manifest_to_config_and_layers(tmp_path: Path, fake_busybox: str) -> None:
    archive = layout.read_archive(build.build_all(tmp_path, fake_busybox)[1].path)
    image = archive.images[0]
    manifest = archive.manifest(image)
    labels = importer.gc_labels(archive, image.manifest_digest)
    assert labels == {
        "containerd.io/gc.ref.content.config": manifest["config"]["digest"],
        "containerd.io/gc.ref.content.l.0": manifest["layers"][0]["digest"],
    }
    assert importer.gc_labels(archive, manifest["layers"][0]["digest"]) == {}


def test_names_apply_to_a_single_image_only(tmp_path: Path, fake_busybox: str) -> None:
    archive = layout.read_archive(build.build_all(tmp_path, fake_busybox)[1].path)
    named = importer.name_images(archive, ["busybox:mine"])
    assert named[0].names == ("docker.io/library/busybox:mine",)
    two = layout.Archive(images=archive.images * 2, blobs=archive.blobs)
    with pytest.raises(layout.ImageArchiveError, match="holds 2 images"):
        importer.name_images(two, ["x:1"])
    unnamed = layout.Archive(images=[layout.Image((), "sha256:" + "0" * 64, "t", 1)], blobs={})
    with pytest.raises(layout.ImageArchiveError, match="has no name"):
        importer.name_images(unnamed, [])


def test_docker_archive_with_wrong_diff_id_is_refused(tmp_path: Path) -> None:
    layer = b"not really a tar but bytes"
    files = {
        "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["x:1"],
                                      "Layers": ["l/layer.tar"]}]).encode(),
        "c.json": json.dumps({"rootfs": {"type": "layers",
                                         "diff_ids": ["sha256:" + "0" * 64]}}).encode(),
        "l/layer.tar": layer,
    }
    path = tmp_path / "d.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(layout.ImageArchiveError, match="does not match diff_id"):
        layout.read_archive(path)
