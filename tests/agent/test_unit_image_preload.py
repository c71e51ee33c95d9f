"""Registry mirrors as containerd's hosts.toml, and the images directory imported at agent start."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grpc
import pytest

from agent.images import importer, layout, main, mirrors, preload
from agent.images.importer import ImportedImage
from controlplane.client.events import FakeRecorders
from cri import errors
from pinnace.local.containerd import Containerd, render_config

# -- mirrors ---------------------------------------------------------------------------------


def test_docker_io_mirror_falls_back_to_docker_hub_with_capabilities() -> None:
    doc = tomllib.loads(mirrors.render_hosts("docker.io", ["http://10.0.0.10:5000"]))
    assert doc["server"] == "https://registry-1.docker.io"
    # containerd 1.6.20 rejects a host table without capabilities (PLATFORM.md)
    assert doc["host"] == {"http://10.0.0.10:5000": {"capabilities": ["pull", "resolve"]}}


def test_mirrors_keep_their_order_and_other_registries_their_own_server() -> None:
    text = mirrors.render_hosts("quay.io", ["http://127.0.0.1:5000", "https://m.example/"])
    assert text.index("127.0.0.1") < text.index("m.example")
    doc = tomllib.loads(text)
    assert doc["server"] == "https://quay.io"
    assert list(doc["host"]) == ["http://127.0.0.1:5000", "https://m.example"]


@pytest.mark.parametrize(("given", "url"), [
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("localhost:5000", "http://localhost:5000"),
    ("registry.example:5000", "https://registry.example:5000"),
    ("http://10.0.0.1:5000/", "http://10.0.0.1:5000"),
])
def test_mirror_without_scheme_is_http_only_on_loopback(given: str, url: str) -> None:
    assert mirrors.mirror_url(given) == url


@pytest.mark.parametrize("bad", ["ftp://x", "http://", "http://a b", 'http://x"]'])
def test_bad_mirrors_are_refused(bad: str) -> None:
    with pytest.raises(mirrors.MirrorError, match="invalid mirror"):
        mirrors.mirror_url(bad)


def test_bad_registry_names_are_refused() -> None:
    with pytest.raises(mirrors.MirrorError, match="invalid registry name"):
        mirrors.render_hosts("../etc", ["http://127.0.0.1:5000"])


def test_parse_mirror_flags() -> None:
    parsed = mirrors.parse_mirrors(["docker.io=http://a:1", "docker.io=127.0.0.1:2",
                                    "quay.io=https://q"])
    assert parsed == {"docker.io": ["http://a:1", "http://127.0.0.1:2"], "quay.io": ["https://q"]}
    with pytest.raises(mirrors.MirrorError, match="REGISTRY=MIRROR_URL"):
        mirrors.parse_mirrors(["docker.io"])


def test_write_and_remove_hosts(tmp_path: Path) -> None:
    written = mirrors.write_hosts(tmp_path, {"docker.io": ["http://127.0.0.1:5000"]})
    assert written == [tmp_path / "docker.io" / "hosts.toml"]
    assert not list(tmp_path.rglob("*.tmp"))
    mirrors.remove_hosts(tmp_path, ["docker.io", "never-written.io"])
    assert not (tmp_path / "docker.io").exists()


def test_local_containerd_writes_its_mirrors_under_config_path(tmp_path: Path) -> None:
    daemon = Containerd(tmp_path, mirrors={"docker.io": ["http://127.0.0.1:5000"]})
    daemon.set_mirrors("quay.io", ["http://127.0.0.1:5001"])
    quay = tomllib.loads((daemon.certs_d / "quay.io" / "hosts.toml").read_text())
    assert "http://127.0.0.1:5001" in quay["host"]
    assert daemon.mirrors == {"docker.io": ["http://127.0.0.1:5000"],
                              "quay.io": ["http://127.0.0.1:5001"]}
    daemon.set_mirrors("quay.io", [])
    assert not (daemon.certs_d / "quay.io").exists()
    assert f'config_path = "{daemon.certs_d}"' in render_config(tmp_path)


def test_images_mirror_command_writes_hosts_toml(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["mirror", "docker.io", "http://10.0.0.10:5000", "--config-dir",
                      str(tmp_path)]) == 0
    path = tmp_path / "docker.io" / "hosts.toml"
    assert capsys.readouterr().out.strip() == str(path)
    assert "http://10.0.0.10:5000" in tomllib.loads(path.read_text())["host"]
    assert main.main(["mirror", "docker.io", "ftp://x", "--config-dir", str(tmp_path)]) == 1
    assert "invalid mirror 'ftp://x'" in capsys.readouterr().err


# -- the images directory ----------------------------------------------------------------------


@pytest.fixture
def fake_import(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """importer.import_archive stand-in: names the image after the file; some files fail."""
    seen: list[Path] = []

    async def import_archive(path: Path, socket: str) -> list[ImportedImage]:
        seen.append(path)
        if path.name.startswith("bad"):
            raise layout.ImageArchiveError(f"{path}: not a readable tar archive")
        if path.name.startswith("refused"):
            raise errors.InvalidArgument(socket, "images.v1.Images/Create",
                                         grpc.StatusCode.INVALID_ARGUMENT, "no")
        if path.name.startswith("odd"):
            raise KeyError("digest")
        return [ImportedImage(f"localhost/{path.name.split('.')[0]}:1", "sha256:ab")]

    monkeypatch.setattr(importer, "import_archive", import_archive)
    return seen


async def test_every_archive_imported_in_name_order_failures_skipped(
        tmp_path: Path, fake_import: list[Path]) -> None:
    for name in ("b.tar", "a.tar.gz", "bad.tar", "refused.tgz", "odd.tar", ".hidden.tar",
                 "notes.txt", "c.tar.tmp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.tar").mkdir()
    result = await preload.import_directory(tmp_path, "sock")
    assert [p.name for p in fake_import] == ["a.tar.gz", "b.tar", "bad.tar", "odd.tar",
                                             "refused.tgz"]
    assert result.imported == ["localhost/a:1", "localhost/b:1"]
    failed = {p.name: why for p, why in result.failed}
    assert failed["bad.tar"] == f"{tmp_path / 'bad.tar'}: not a readable tar archive"
    assert failed["refused.tgz"].startswith(f"{tmp_path / 'refused.tgz'}: containerd refused")
    assert "malformed image archive (KeyError" in failed["odd.tar"]


async def test_no_or_missing_directory_imports_nothing(tmp_path: Path,
                                                       fake_import: list[Path]) -> None:
    assert await preload.import_directory(None, "sock") == preload.PreloadResult()
    assert await preload.import_directory(tmp_path / "absent", "sock") == preload.PreloadResult()
    assert fake_import == []


def test_failures_become_warning_events_on_the_node() -> None:
    recorders = FakeRecorders()
    result = preload.PreloadResult(failed=[(Path("/i/x.tar"), "/i/x.tar: not a readable tar")])
    preload.report(result, recorders.recorder("kubelet"), "n1")
    [event] = recorders.events
    assert (event.kind, event.name, event.type, event.reason) == (
        "Node", "n1", "Warning", "ImageImportFailed")
    assert event.message == "Failed to import image archive /i/x.tar: not a readable tar"
