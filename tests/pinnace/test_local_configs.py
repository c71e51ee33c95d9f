"""Rendered configs of the local components (pure functions; the real processes are tested in
integration-tests/)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from pinnace.local import containerd, registry


def test_containerd_config_keeps_everything_under_its_directory() -> None:
    conf = tomllib.loads(containerd.render_config(Path("/tmp/n1")))
    assert conf["version"] == 2
    assert conf["root"] == "/tmp/n1/containerd/root"
    assert conf["state"] == "/tmp/n1/containerd/state"
    assert conf["grpc"]["address"] == "/tmp/n1/containerd/containerd.sock"
    assert conf["ttrpc"]["address"] == "/tmp/n1/containerd/containerd.sock.ttrpc"
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "localhost/pause:1"
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here (PLATFORM.md)
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["cni"]["conf_dir"] == "/tmp/n1/cni/net.d"
    assert cri["registry"]["config_path"] == "/tmp/n1/certs.d"


def test_registry_config_serves_storage_on_the_address() -> None:
    conf = yaml.safe_load(registry.render_config(Path("/srv/reg"), "127.0.0.1:5000"))
    assert conf["http"]["addr"] == "127.0.0.1:5000"
    assert conf["storage"]["filesystem"]["rootdirectory"] == "/srv/reg"
    assert conf["storage"]["maintenance"]["readonly"]["enabled"] is False
    readonly = yaml.safe_load(registry.render_config(Path("/r"), "127.0.0.1:1", readonly=True))
    assert readonly["storage"]["maintenance"]["readonly"]["enabled"] is True
