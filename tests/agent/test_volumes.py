from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.volumes import VolumeError, VolumeManager

Object = dict[str, Any]
UID = "0b7c4f3e-uid"


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class Store:
    """The informer caches the manager reads: configMaps, secrets and the pod itself."""

    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], Object] = {
            ("ns", "cfg"): {"data": {"app.conf": "port=80\n", "level": "info"},
                            "binaryData": {"blob.bin": b64(b"\x00\x01\xff")}},
        }
        self.secrets: dict[tuple[str, str], Object] = {
            ("ns", "creds"): {"data": {"user": b64("admin"), "pass": b64("hunter2")}},
        }
        self.pods: dict[str, Object] = {}

    def manager(self, pods_dir: Path, **kwargs: Any) -> VolumeManager:
        kwargs.setdefault("secrets_in_memory", False)
        return VolumeManager(pods_dir, configmap=lambda ns, n: self.configmaps.get((ns, n)),
                             secret=lambda ns, n: self.secrets.get((ns, n)), node_name="n1",
                             pod_info=self.pods.get, **kwargs)


@pytest.fixture
def store() -> Store:
    return Store()


def make_pod(*volumes: Object, **spec: Any) -> Object:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": UID,
                         "labels": {"app": "web"}, "annotations": {"a": "1"}},
            "spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "500m"}}}],
                     "volumes": list(volumes), **spec}}


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def plugin_dir(pods_dir: Path, plugin: str, name: str) -> Path:
    return pods_dir / UID / "volumes" / f"kubernetes.io~{plugin}" / name


# -- emptyDir and layout -------------------------------------------------------------------------


async def test_empty_dir_is_a_0777_directory_in_the_kubelet_layout(tmp_path: Path,
                                                                   store: Store) -> None:
    manager = store.manager(tmp_path)
    paths = await manager.setup(make_pod({"name": "scratch", "emptyDir": {}}, {"name": "bare"}))
    assert paths == {"scratch": plugin_dir(tmp_path, "empty-dir", "scratch"),
                     "bare": plugin_dir(tmp_path, "empty-dir", "bare")}
    assert paths["scratch"].is_dir() and mode(paths["scratch"]) == 0o777


async def test_setup_is_idempotent_and_keeps_what_containers_wrote(tmp_path: Path,
                                                                   store: Store) -> None:
    manager = store.manager(tmp_path)
    pod = make_pod({"name": "scratch", "emptyDir": {}})
    path = (await manager.setup(pod))["scratch"]
    (path / "data").write_text("kept")
    os.chmod(path, 0o700)
    assert await manager.setup(pod) == {"scratch": path}
    # A restarted agent (a new manager) adopts the volume as it is.
    assert await store.manager(tmp_path).setup(pod) == {"scratch": path}
    assert (path / "data").read_text() == "kept" and mode(path) == 0o700


async def test_unsupported_types_and_media_fail_the_volume(tmp_path: Path, store: Store) -> None:
    manager = store.manager(tmp_path)
    with pytest.raises(VolumeError) as info:
        await manager.setup(make_pod({"name": "data", "persistentVolumeClaim": {"claimName": "c"}}))
    assert info.value.volume == "data"
    assert info.value.message.startswith("no volume plugin matched")
    with pytest.raises(VolumeError, match='unknown storage medium "HugePages"'):
        await manager.setup(make_pod({"name": "h", "emptyDir": {"medium": "HugePages"}}))


# -- configMap and secret ------------------------------------------------------------------------


async def test_config_map_volume_projects_every_key_with_default_mode(tmp_path: Path,
                                                                      store: Store) -> None:
    path = (await store.manager(tmp_path).setup(
        make_pod({"name": "config", "configMap": {"name": "cfg"}})))["config"]
    assert path == plugin_dir(tmp_path, "configmap", "config")
    assert (path / "app.conf").read_text() == "port=80\n"
    assert (path / "blob.bin").read_bytes() == b"\x00\x01\xff"
    assert os.readlink(path / "level") == "..data/level"
    assert {mode(path / k) for k in ("app.conf", "level", "blob.bin")} == {0o644}


async def test_items_map_keys_to_paths_with_their_own_modes(tmp_path: Path, store: Store) -> None:
    volume = {"name": "config", "configMap": {"name": "cfg", "defaultMode": 0o440, "items": [
        {"key": "app.conf", "path": "etc/app/app.conf"},
        {"key": "level", "path": "level.txt", "mode": 0o600}]}}
    path = (await store.manager(tmp_path).setup(make_pod(volume)))["config"]
    assert (path / "etc" / "app" / "app.conf").read_text() == "port=80\n"
    assert mode(path / "etc" / "app" / "app.conf") == 0o440
    assert mode(path / "level.txt") == 0o600
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith("..")) == [
        "etc", "level.txt"]


async def test_secret_volume_is_decoded_with_0644_by_default(tmp_path: Path, store: Store) -> None:
    manager = store.manager(tmp_path)
    paths = await manager.setup(make_pod(
        {"name": "s", "secret": {"secretName": "creds"}},
        {"name": "tight", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                     "items": [{"key": "pass", "path": "password"}]}}))
    assert paths["s"] == plugin_dir(tmp_path, "secret", "s")
    assert (paths["s"] / "user").read_text() == "admin"
    assert mode(paths["s"] / "pass") == 0o644
    assert (paths["tight"] / "password").read_text() == "hunter2"
    assert mode(paths["tight"] / "password") == 0o400


@pytest.mark.parametrize(("volume", "message"), [
    ({"configMap": {"name": "nope"}}, 'configmap "nope" not found'),
    ({"secret": {"secretName": "nope"}}, 'secret "nope" not found'),
    ({"configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}},
     "configmap references non-existent config key: k"),
    ({"secret": {"secretName": "creds", "items": [{"key": "k", "path": "k"}]}},
     "references non-existent secret key: k"),
], ids=["configmap", "secret", "configmap-key", "secret-key"])
async def test_missing_sources_fail_with_kubernetes_messages(tmp_path: Path, store: Store,
                                                             volume: Object, message: str) -> None:
    with pytest.raises(VolumeError) as info:
        await store.manager(tmp_path).setup(make_pod({"name": "v", **volume}))
    assert info.value.message == message
    assert str(info.value) == f'MountVolume.SetUp failed for volume "v" : {message}'


async def test_optional_sources_may_be_missing(tmp_path: Path, store: Store) -> None:
    paths = await store.manager(tmp_path).setup(make_pod(
        {"name": "c", "configMap": {"name": "nope", "optional": True}},
        {"name": "s", "secret": {"secretName": "creds", "optional": True,
                                 "items": [{"key": "k", "path": "k"}, {"key": "user",
                                                                        "path": "u"}]}}))
    assert [p.name for p in paths["c"].iterdir()] != [] and not os.path.lexists(paths["c"] / "k")
    assert os.readlink(paths["c"] / "..data").startswith("..")
    assert (paths["s"] / "u").read_text() == "admin" and not os.path.lexists(paths["s"] / "k")


# -- downwardAPI and projected -------------------------------------------------------------------


DOWNWARD_ITEMS = [
    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
    {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
    {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu",
                                         "divisor": "1m"}},
    {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory",
                                         "divisor": "1Mi"}},
]


async def test_downward_api_volume(tmp_path: Path, store: Store) -> None:
    manager = store.manager(tmp_path, node_allocatable=lambda: {"memory": "2Gi"})
    path = (await manager.setup(make_pod({"name": "info", "downwardAPI": {
        "items": DOWNWARD_ITEMS}})))["info"]
    assert path == plugin_dir(tmp_path, "downward-api", "info")
    assert {n: (path / n).read_text() for n in ("labels", "name", "app", "cpu", "mem")} == {
        "labels": 'app="web"', "name": "web", "app": "web", "cpu": "500", "mem": "2048"}
    assert (mode(path / "name"), mode(path / "labels")) == (0o400, 0o644)


async def test_downward_api_errors_are_aggregated(tmp_path: Path, store: Store) -> None:
    volume = {"name": "info", "downwardAPI": {"items": [
        {"path": "a", "fieldRef": {"fieldPath": "spec.nodeName"}},
        {"path": "b", "resourceFieldRef": {"containerName": "x", "resource": "limits.cpu"}}]}}
    with pytest.raises(VolumeError) as info:
        await store.manager(tmp_path).setup(make_pod(volume))
    assert info.value.message == "[unsupported fieldPath: spec.nodeName, container x not found]"


PROJECTED = {"name": "all", "projected": {"defaultMode": 0o640, "sources": [
    {"configMap": {"name": "cfg", "items": [{"key": "level", "path": "cfg/level"}]}},
    {"secret": {"name": "creds", "items": [{"key": "user", "path": "cfg/user", "mode": 0o400}]}},
    {"downwardAPI": {"items": [{"path": "namespace",
                                "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600, "audience": "api"}},
]}}


async def test_projected_volume_merges_its_sources(tmp_path: Path, store: Store) -> None:
    requests: list[tuple[str | None, int]] = []

    async def token(pod: Object, audience: str | None, seconds: int) -> str:
        requests.append((audience, seconds))
        return f"token-{len(requests)}"

    manager = store.manager(tmp_path, token=token)
    path = (await manager.setup(make_pod(PROJECTED)))["all"]
    assert path == plugin_dir(tmp_path, "projected", "all")
    assert (path / "cfg" / "level").read_text() == "info"
    assert (path / "cfg" / "user").read_text() == "admin"
    assert (path / "namespace").read_text() == "ns"
    assert (path / "token").read_text() == "token-1"
    assert requests == [("api", 3600)]
    assert (mode(path / "cfg" / "level"), mode(path / "cfg" / "user"), mode(path / "token")) == (
        0o640, 0o400, 0o640)


async def test_projected_tokens_are_renewed_after_80_percent_of_their_life(
        tmp_path: Path, store: Store) -> None:
    now = [1000.0]
    issued: list[int] = []

    async def token(pod: Object, audience: str | None, seconds: int) -> str:
        issued.append(seconds)
        return f"token-{len(issued)}"

    manager = store.manager(tmp_path, token=token, clock=lambda: now[0])
    pod = make_pod(PROJECTED)
    path = (await manager.setup(pod))["all"]
    now[0] += 0.7 * 3600
    assert not await manager.refresh(pod)
    now[0] += 0.2 * 3600
    assert await manager.refresh(pod)
    assert (path / "token").read_text() == "token-2"


async def test_projected_errors_are_aggregated_and_tokens_need_a_source(tmp_path: Path,
                                                                        store: Store) -> None:
    volume = {"name": "p", "projected": {"sources": [
        {"configMap": {"name": "nope"}}, {"serviceAccountToken": {"path": "token"}}]}}
    with pytest.raises(VolumeError) as info:
        await store.manager(tmp_path).setup(make_pod(volume))
    assert info.value.message.startswith('[configmap "nope" not found, serviceAccountToken')


# -- fsGroup -------------------------------------------------------------------------------------


async def test_fs_group_owns_the_files_and_grants_group_access(tmp_path: Path,
                                                               store: Store) -> None:
    group = 4242 if os.geteuid() == 0 else os.getgid()
    volumes = ({"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400}},
               {"name": "scratch", "emptyDir": {}})
    paths = await store.manager(tmp_path).setup(make_pod(*volumes,
                                                         securityContext={"fsGroup": group}))
    secret_file = paths["s"] / "pass"
    assert secret_file.stat().st_gid == group and mode(secret_file) == 0o440
    scratch = paths["scratch"].stat()
    assert scratch.st_gid == group and scratch.st_mode & stat.S_ISGID


# -- refresh -------------------------------------------------------------------------------------


async def test_refresh_rewrites_changed_sources_atomically(tmp_path: Path, store: Store) -> None:
    manager = store.manager(tmp_path)
    pod = make_pod({"name": "config", "configMap": {"name": "cfg"}},
                   {"name": "info", "downwardAPI": {"items": DOWNWARD_ITEMS[:1]}},
                   {"name": "scratch", "emptyDir": {}})
    paths = await manager.setup(pod)
    old_data = os.readlink(paths["config"] / "..data")
    assert not await manager.refresh(pod)
    assert os.readlink(paths["config"] / "..data") == old_data

    store.configmaps[("ns", "cfg")] = {"data": {"level": "debug", "new": "yes"}}
    assert await manager.refresh(pod)
    config = paths["config"]
    assert (config / "level").read_text() == "debug" and (config / "new").read_text() == "yes"
    assert not os.path.lexists(config / "app.conf")
    assert not (config / old_data).exists()

    store.pods[UID] = make_pod() | {"metadata": {**pod["metadata"], "labels": {"app": "v2"}}}
    assert await manager.refresh(pod)
    assert (paths["info"] / "labels").read_text() == 'app="v2"'


async def test_refresh_keeps_the_last_content_when_a_source_disappears(tmp_path: Path,
                                                                       store: Store) -> None:
    manager = store.manager(tmp_path)
    pod = make_pod({"name": "config", "configMap": {"name": "cfg"}})
    path = (await manager.setup(pod))["config"]
    del store.configmaps[("ns", "cfg")]
    assert not await manager.refresh(pod)
    assert (path / "level").read_text() == "info"


# -- teardown ------------------------------------------------------------------------------------


async def test_teardown_removes_the_pod_dir_but_never_what_links_point_at(
        tmp_path: Path, store: Store) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    pods_dir = tmp_path / "pods"
    manager = store.manager(pods_dir)
    pod = make_pod({"name": "scratch", "emptyDir": {}}, {"name": "config", "configMap": {
        "name": "cfg"}}, {"name": "host", "hostPath": {"path": str(outside)}})
    paths = await manager.setup(pod)
    assert paths["host"] == outside
    os.symlink(outside, paths["scratch"] / "escape")  # what a container could plant
    os.symlink(outside / "precious", paths["scratch"] / "file")
    await manager.teardown(UID)
    assert not (pods_dir / UID).exists()
    assert (outside / "precious").read_text() == "keep"
    await manager.teardown(UID)  # nothing left: no error


async def test_cleanup_orphans_tears_down_pods_no_longer_here(tmp_path: Path,
                                                              store: Store) -> None:
    manager = store.manager(tmp_path)
    await manager.setup(make_pod({"name": "scratch", "emptyDir": {}}))
    (tmp_path / "other-uid").mkdir()
    assert await manager.cleanup_orphans({UID}) == ["other-uid"]
    assert (tmp_path / UID).exists() and not (tmp_path / "other-uid").exists()
    with pytest.raises(ValueError):
        await manager.teardown("../etc")
