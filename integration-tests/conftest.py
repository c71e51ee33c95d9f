"""Fixtures that start real components for the integration tests, and always tear them down.

Session-scoped: one etcd, one containerd in this network namespace ("host"), one registry, and
one node (a network namespace of our own with its own containerd and its own registry process
over the same storage), all under a short directory in /tmp (unix socket paths stay well under
108 bytes). Teardown stops every process by PID, unmounts, and removes the namespaces, bridges
and directories it made, also when a test or a start fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import upcluster
from harness import HOST_POD_CIDR, Kubectl, NodeEnv, Pods, remove_sandboxes, started

from agent.images import build
from controlplane.client import kubeconfig
from controlplane.client.rest import RESTClient
from cri.runtime import RuntimeClient
from pinnace.local import cleanup
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.containerd import Containerd
from pinnace.local.etcd import Etcd
from pinnace.local.node import Node
from pinnace.local.registry import Registry

NEEDED = ["etcd", "containerd", "containerd-shim-runc-v2", "runc", "docker-registry", "nsenter",
          "busybox", "umount"]
SUFFIX = f"{os.getpid() % 0x10000:04x}"


def _unmet() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (containerd, network namespaces, mounts)"
    missing = [b for b in NEEDED if shutil.which(b) is None]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        return f"missing {', '.join(missing) or 'CNI plugins'}: run scripts/setup.sh"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = _unmet()
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="pn-it-", dir="/tmp"))
    try:
        yield base
    finally:
        cleanup.unmount_all(base)
        if os.environ.get("PINNACE_KEEP_WORKDIR"):
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def images(workdir: Path) -> dict[str, Path]:
    """The built-in images as OCI tars: {"pause": path, "busybox": path}."""
    built = build.build_all(workdir / "images")
    return {image.path.stem: image.path for image in built}


@pytest.fixture(scope="session")
def etcd(workdir: Path) -> Iterator[Etcd]:
    with started(Etcd(workdir / "etcd")) as server:
        yield server


@pytest.fixture(scope="session")
def containerd(workdir: Path, images: dict[str, Path]) -> Iterator[Containerd]:
    """containerd in this network namespace, with pause and busybox imported."""
    with started(Containerd(workdir / "host", name="containerd-host", bridge=f"pnh{SUFFIX}",
                            pod_cidr=HOST_POD_CIDR)) as daemon:
        daemon.import_images(images["pause"], images["busybox"])
        yield daemon


@pytest.fixture(scope="session")
def registry(workdir: Path) -> Iterator[Registry]:
    with started(Registry(workdir / "registry-host")) as server:
        yield server


@pytest.fixture(scope="session")
def node(workdir: Path, images: dict[str, Path], registry: Registry) -> Iterator[NodeEnv]:
    n = Node(f"it{SUFFIX}", workdir / "node1", pod_cidr="10.253.2.0/24")
    node_registry = Registry(workdir / "node1", storage=registry.storage, name="registry-node1",
                             netns=n.netns.name)
    with started(n):
        n.containerd.import_images(images["pause"], images["busybox"])
        with started(node_registry):
            yield NodeEnv(n, node_registry)


@pytest.fixture
def pods(workdir: Path) -> Pods:
    return Pods(workdir / "pod-logs")


@pytest.fixture
async def cri(containerd: Containerd) -> AsyncIterator[RuntimeClient]:
    """A CRI client of the host containerd; the test's sandboxes are removed afterwards."""
    async with RuntimeClient(containerd.socket) as rt:
        try:
            yield rt
        finally:
            await remove_sandboxes(rt)


@pytest.fixture
async def node_cri(node: NodeEnv) -> AsyncIterator[RuntimeClient]:
    async with RuntimeClient(node.socket) as rt:
        try:
            yield rt
        finally:
            await remove_sandboxes(rt)


@pytest.fixture(scope="session")
def apiserver(workdir: Path, etcd: Etcd) -> Iterator[APIServerProcess]:
    """`pinnace apiserver` over the session's etcd (PKI made on first start)."""
    with started(APIServerProcess(workdir / "apiserver", etcd.endpoint)) as server:
        yield server


@pytest.fixture
async def client(apiserver: APIServerProcess) -> AsyncIterator[RESTClient]:
    """A RESTClient of the session's apiserver, as its admin; closed afterwards."""
    rest = RESTClient(kubeconfig.load(apiserver.kubeconfig))
    try:
        yield rest
    finally:
        await rest.close()


@pytest.fixture
def kubectl(apiserver: APIServerProcess, tmp_path: Path) -> Kubectl:
    """The real kubectl, with the admin kubeconfig and a fresh discovery cache."""
    return Kubectl(apiserver.kubeconfig, tmp_path / "kube-cache")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir for `pinnace up` (skips while another `up` runs on this machine)."""
    yield from upcluster.up_data_dir()
