"""Fixtures of the container tier: a private dockerd, the node image, and a cluster on them.

Session-scoped, in the session workdir's short ct/ directory: `dockerd` starts a daemon of our own
(skipped with the reason when it cannot run: not root, no docker.io, no cgroups, or the daemon
failing to start), `node_image` imports the offline node image (nodeimage.py says why it is a
skeleton plus read-only host mounts), `container_cluster` runs the control plane on the host and
two node containers joined to it. Each fixture's teardown is idempotent and always runs: the
containers removed, the image removed, the daemon stopped by PID, our links, mounts and
cgroups gone. The last test of test_cluster.py runs that teardown itself and checks it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import nodeimage
from containers.cluster import ContainerCluster
from containers.dockerd import PrivateDockerd, unmet
from harness import Kubectl

SUFFIX = f"{os.getpid() % 0x10000:04x}"


@pytest.fixture(scope="session")
def ct_base(workdir: Path) -> Path:
    """The tier's short directory inside the session's workdir (removed with it)."""
    base = workdir / "ct"
    base.mkdir()
    return base


@pytest.fixture(scope="session")
def dockerd(ct_base: Path) -> Iterator[PrivateDockerd]:
    """A private dockerd; DOCKER_HOST points testcontainers at it, with Ryuk off (its image
    cannot be pulled offline, and our teardown removes what we start)."""
    reason = unmet()
    if reason:
        pytest.skip(reason)
    daemon = PrivateDockerd(ct_base / "docker", cgroup_parent=f"pn-ct-{SUFFIX}")
    patch = pytest.MonkeyPatch()
    try:
        try:
            daemon.start()
        except (OSError, RuntimeError) as exc:
            pytest.skip(f"dockerd cannot run on this machine: {exc}")
        patch.setenv("DOCKER_HOST", daemon.host)
        patch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.core.config import testcontainers_config
        patch.setattr(testcontainers_config, "ryuk_disabled", True)
        yield daemon
    finally:
        daemon.stop()
        patch.undo()


@pytest.fixture(scope="session")
def node_image(dockerd: PrivateDockerd, ct_base: Path) -> Iterator[nodeimage.NodeImage]:
    from testcontainers.core.docker_client import DockerClient

    image = nodeimage.NodeImage.build(DockerClient().client, ct_base / "node-image.tar")
    try:
        yield image
    finally:
        image.remove()


@pytest.fixture(scope="session")
def container_cluster(node_image: nodeimage.NodeImage, ct_base: Path) -> Iterator[ContainerCluster]:
    cluster = ContainerCluster(ct_base / "c", image=node_image.ref, suffix=SUFFIX,
                               host_mounts=nodeimage.host_mounts())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ct_kubectl(container_cluster: ContainerCluster, tmp_path: Path) -> Kubectl:
    """The real kubectl as the cluster's admin (the apiserver at the bridge address)."""
    return Kubectl(container_cluster.kubeconfig, tmp_path / "kube-cache")
