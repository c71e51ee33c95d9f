"""The container tier's own logic, without a daemon: env files, flag overrides, the image
skeleton, the host mounts and where dockerd puts our cgroups."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

from containers import nodeimage
from containers.dockerd import own_cgroups
from containers.server import env_args, override

TOP = Path(__file__).resolve().parents[2]


def test_env_args_are_the_units_flags() -> None:
    args = env_args(TOP / "systemd" / "env" / "agent.env")
    assert "--cluster-dns=@NODE_IP@" in args
    assert all(a.startswith("-") for a in args)


def test_override_replaces_and_adds_flags() -> None:
    args = ["--etcd-servers=http://127.0.0.1:2379", "--secure-port=6443", "-v=1"]
    assert override(args, {"--secure-port": "7000", "--bind-address": "10.0.0.1"}) == [
        "--etcd-servers=http://127.0.0.1:2379", "-v=1", "--secure-port=7000",
        "--bind-address=10.0.0.1"]


def test_skeleton_holds_links_etc_and_the_entrypoint(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "alternatives").mkdir(parents=True)
    (etc / "alternatives" / "iptables").symlink_to("/usr/sbin/iptables-nft")
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "bin").symlink_to("usr/bin")
    data = nodeimage.skeleton(etc, root)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert members["etc/alternatives/iptables"].linkname == "/usr/sbin/iptables-nft"
    assert members["etc/passwd"].isfile()
    assert members["pinnace-node"].mode == 0o755
    assert "sbin" not in members  # not a link on that "host"
    assert nodeimage.skeleton(etc, root) == data  # deterministic: same tag for the same host


def test_host_mounts_cover_the_interpreter_and_the_checkout() -> None:
    mounts = [Path(m) for m in nodeimage.host_mounts()]
    for needed in (Path(sys.executable).resolve(), Path(sys.prefix), TOP / "pinnace"):
        assert any(m == needed or m in needed.parents for m in mounts), needed
    assert not any(a != b and a in b.parents for a in mounts for b in mounts)


def test_own_cgroups_follow_each_hierarchy_and_its_mount_root() -> None:
    proc = "4:memory:/limit/abc\n1:cpu,cpuacct:/\n0::/init.scope\n"
    mountinfo = (
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "37 31 0:34 /init.scope /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "38 31 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n")
    assert own_cgroups(proc, mountinfo) == [
        Path("/sys/fs/cgroup/memory/limit/abc"), Path("/sys/fs/cgroup/cpu,cpuacct"),
        Path("/sys/fs/cgroup/unified")]
