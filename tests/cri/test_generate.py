"""The committed stubs are exactly what the committed .proto files generate."""

from __future__ import annotations

from pathlib import Path

from cri import generate


def test_regenerating_the_stubs_yields_no_diff(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert produced, "protoc produced nothing"
    committed = sorted(
        p.relative_to(generate.REPO_ROOT) for p in (generate.REPO_ROOT / "cri").rglob("*_pb2*")
        if p.suffix in (".py", ".pyi")
    )
    assert produced == committed
    for rel in produced:
        assert (tmp_path / rel).read_bytes() == (generate.REPO_ROOT / rel).read_bytes(), rel


def test_every_proto_names_its_upstream_package() -> None:
    packages = {
        "cri/v1/api.proto": "runtime.v1",
        "cri/containerd/events.proto": "containerd.services.events.v1",
        "cri/containerd/content.proto": "containerd.services.content.v1",
        "cri/containerd/images.proto": "containerd.services.images.v1",
        "cri/containerd/leases.proto": "containerd.services.leases.v1",
        "cri/containerd/task_events.proto": "containerd.events",
    }
    for path, package in packages.items():
        text = (generate.REPO_ROOT / path).read_text()
        assert f"package {package};" in text, path
