from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.envvars import ConfigError
from agent.volumes import VolumeError, VolumeManager
from agent.volumes.mounts import is_mount_point, mounts_under
from cri.v1 import api_pb2 as api

Object = dict[str, Any]
UID = "5d1e-uid"
CONFIGMAPS = {("ns", "cfg"): {"data": {"level": "info", "app.conf": "x=1"}}}
SECRETS = {("ns", "creds"): {"data": {"pass": "aHVudGVyMg=="}}}
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting tmpfs needs root")


def manager(pods_dir: Path, **kwargs: Any) -> VolumeManager:
    kwargs.setdefault("secrets_in_memory", False)
    return VolumeManager(pods_dir, configmap=lambda ns, n: CONFIGMAPS.get((ns, n)),
                         secret=lambda ns, n: SECRETS.get((ns, n)), node_name="n1",
                         pod_info=None, **kwargs)


def make_pod(*volumes: Object, containers: list[Object] | None = None) -> Object:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": UID},
            "spec": {"containers": containers or [{"name": "main"}], "volumes": list(volumes)}}


# -- container mounts ----------------------------------------------------------------------------


async def test_mounts_follow_volume_mounts_and_content_volumes_are_read_only(
        tmp_path: Path) -> None:
    volumes = make_pod({"name": "scratch", "emptyDir": {}},
                       {"name": "config", "configMap": {"name": "cfg"}},
                       {"name": "host", "hostPath": {"path": str(tmp_path)}})
    vm = manager(tmp_path / "pods")
    paths = await vm.setup(volumes)
    container = {"name": "main", "volumeMounts": [
        {"name": "scratch", "mountPath": "/scratch", "mountPropagation": "HostToContainer"},
        {"name": "config", "mountPath": "/etc/config"},
        {"name": "host", "mountPath": "host", "readOnly": True,
         "mountPropagation": "Bidirectional"},
    ]}
    mounts = vm.container_mounts(volumes, container, paths)
    assert [(m.container_path, m.host_path, m.readonly, m.propagation, m.selinux_relabel)
            for m in mounts] == [
        ("/scratch", str(paths["scratch"]), False, api.PROPAGATION_HOST_TO_CONTAINER, True),
        ("/etc/config", str(paths["config"]), True, api.PROPAGATION_PRIVATE, True),
        ("/host", str(tmp_path), True, api.PROPAGATION_BIDIRECTIONAL, False),
    ]
    assert vm.container_mounts(volumes, {"name": "main"}, paths) == []


async def test_sub_path_is_created_with_the_volume_mode_and_resolved(tmp_path: Path) -> None:
    pod = make_pod({"name": "scratch", "emptyDir": {}},
                   {"name": "config", "configMap": {"name": "cfg"}})
    vm = manager(tmp_path)
    paths = await vm.setup(pod)
    container = {"name": "main", "volumeMounts": [
        {"name": "scratch", "mountPath": "/data", "subPath": "a/b"},
        {"name": "config", "mountPath": "/etc/level", "subPath": "level"}]}
    data, level = vm.container_mounts(pod, container, paths)
    assert data.host_path == str(paths["scratch"] / "a" / "b")
    assert stat.S_IMODE(os.stat(data.host_path).st_mode) == 0o777
    target = Path(level.host_path)
    assert target.parent.name == os.readlink(paths["config"] / "..data")  # the file, not a link
    assert target.read_text() == "info"
    # A subPath is bound to the file it resolved to: an update does not reach it (as Kubernetes).
    CONFIGMAPS[("ns", "cfg")] = {"data": {"level": "debug"}}
    try:
        assert await vm.refresh(pod)
    finally:
        CONFIGMAPS[("ns", "cfg")] = {"data": {"level": "info", "app.conf": "x=1"}}
    assert (paths["config"] / "level").read_text() == "debug"
    assert not target.exists()


async def test_sub_path_expr_expands_the_container_environment(tmp_path: Path) -> None:
    pod = make_pod({"name": "logs", "emptyDir": {}})
    vm = manager(tmp_path)
    paths = await vm.setup(pod)
    container = {"name": "main", "volumeMounts": [
        {"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)/$$x"}]}
    [mount] = vm.container_mounts(pod, container, paths, env=[("POD_NAME", "web-0")])
    assert mount.host_path == str(paths["logs"] / "web-0" / "$x")
    with pytest.raises(ConfigError, match="^missing value for POD_NAME$"):
        vm.container_mounts(pod, container, paths, env=[("POD_NAME", "")])


@pytest.mark.parametrize(("mount", "message"), [
    ({"name": "ghost", "mountPath": "/x"}, 'cannot find volume "ghost" to mount into container '
                                           '"main"'),
    ({"name": "scratch", "mountPath": "/x", "subPath": "/etc"},
     "error SubPath `/etc` must not be an absolute path"),
    ({"name": "scratch", "mountPath": "/x", "subPath": "a/../../etc"},
     "unable to provision SubPath `a/../../etc`: must not contain '..'"),
    ({"name": "scratch", "mountPath": "/x", "mountPropagation": "Sideways"},
     'invalid MountPropagation mode: "Sideways"'),
    ({"name": "scratch", "mountPath": "/x", "subPath": "escape/etc"},
     'failed to prepare subPath for volumeMount "scratch" of container "main"'),
], ids=["no-volume", "absolute", "backsteps", "propagation", "symlink-escape"])
async def test_bad_mounts_are_config_errors(tmp_path: Path, mount: Object, message: str) -> None:
    pod = make_pod({"name": "scratch", "emptyDir": {}})
    vm = manager(tmp_path / "pods")
    paths = await vm.setup(pod)
    os.symlink("/", paths["scratch"] / "escape")  # planted by another container
    with pytest.raises(ConfigError) as info:
        vm.container_mounts(pod, {"name": "main", "volumeMounts": [mount]}, paths)
    assert str(info.value) == message


# -- hostPath ------------------------------------------------------------------------------------


async def host_path(tmp_path: Path, path: Path, kind: str | None) -> Path:
    source: Object = {"path": str(path)} | ({"type": kind} if kind is not None else {})
    vm = manager(tmp_path / "pods")
    return (await vm.setup(make_pod({"name": "h", "hostPath": source})))["h"]


async def test_host_path_or_create_types_create_what_is_missing(tmp_path: Path) -> None:
    directory = tmp_path / "made" / "deep"
    assert await host_path(tmp_path, directory, "DirectoryOrCreate") == directory
    assert directory.is_dir() and stat.S_IMODE(directory.stat().st_mode) == 0o755
    file = tmp_path / "made" / "file"
    assert await host_path(tmp_path, file, "FileOrCreate") == file
    assert file.is_file() and file.read_bytes() == b""
    assert await host_path(tmp_path, tmp_path / "nowhere", "") == tmp_path / "nowhere"
    assert await host_path(tmp_path, tmp_path / "nowhere", None) == tmp_path / "nowhere"
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(VolumeError, match=r"open .*/absent/file: no such file or directory"):
        await host_path(tmp_path, tmp_path / "absent" / "file", "FileOrCreate")


async def test_host_path_types_are_checked(tmp_path: Path) -> None:
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        assert await host_path(tmp_path, sock_path, "Socket") == sock_path
    finally:
        sock.close()
    assert await host_path(tmp_path, Path("/dev/null"), "CharDevice") == Path("/dev/null")
    (tmp_path / "f").write_text("x")
    assert await host_path(tmp_path, tmp_path / "f", "File") == tmp_path / "f"
    assert await host_path(tmp_path, tmp_path, "Directory") == tmp_path
    failures = {
        ("Directory", tmp_path / "f"): "is not a directory",
        ("File", tmp_path): "is not a file",
        ("FileOrCreate", tmp_path): "is not a file",
        ("DirectoryOrCreate", tmp_path / "f"): "is not a directory",
        ("Socket", tmp_path / "f"): "is not a socket file",
        ("CharDevice", tmp_path / "f"): "is not a character device",
        ("BlockDevice", Path("/dev/null")): "is not a block device",
        ("Directory", tmp_path / "missing"): "is not a directory",
    }
    for (kind, path), what in failures.items():
        with pytest.raises(VolumeError) as info:
            await host_path(tmp_path, path, kind)
        assert info.value.message == f"hostPath type check failed: {path} {what}", kind
    with pytest.raises(VolumeError) as info:
        await host_path(tmp_path, tmp_path, "Pipe")
    assert info.value.message == "Pipe is an invalid volume type"


# -- tmpfs ---------------------------------------------------------------------------------------


@needs_root
async def test_memory_empty_dir_is_a_sized_tmpfs_that_teardown_unmounts(tmp_path: Path) -> None:
    vm = manager(tmp_path, node_allocatable=lambda: {"memory": "1Gi"})
    pod = make_pod({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                   {"name": "mem", "emptyDir": {"medium": "Memory"}},
                   containers=[{"name": "main", "resources": {"limits": {"memory": "64Mi"}}}])
    try:
        paths = await vm.setup(pod)
        assert is_mount_point(paths["shm"]) and is_mount_point(paths["mem"])
        assert os.statvfs(paths["shm"]).f_blocks * os.statvfs(paths["shm"]).f_frsize == 16 << 20
        assert os.statvfs(paths["mem"]).f_blocks * os.statvfs(paths["mem"]).f_frsize == 64 << 20
        (paths["shm"] / "f").write_text("in memory")
        assert await vm.setup(pod) == paths  # not mounted twice
        assert len(mounts_under(tmp_path / UID)) == 2
    finally:
        await vm.teardown(UID)
    assert mounts_under(tmp_path) == [] and not (tmp_path / UID).exists()


@needs_root
async def test_secrets_live_in_memory_when_asked(tmp_path: Path) -> None:
    vm = manager(tmp_path, secrets_in_memory=True)
    pod = make_pod({"name": "s", "secret": {"secretName": "creds"}},
                   {"name": "c", "configMap": {"name": "cfg"}})
    try:
        paths = await vm.setup(pod)
        assert is_mount_point(paths["s"]) and not is_mount_point(paths["c"])
        assert (paths["s"] / "pass").read_text() == "hunter2"
    finally:
        await vm.teardown(UID)
    assert mounts_under(tmp_path) == []
