"""The agent's images on a real node: docker.io pulled through a registry mirror (hosts.toml),
an `--images-dir` of tars imported at start (OCI layout, docker archive; a corrupt one reported
and skipped), and imagePullPolicy Never with a missing image.

The node is a network namespace of its own with a fresh containerd holding only the pause image,
so every other image a pod runs must come from the mirror or the images directory; its registry
process serves the session registry's storage on the node's own loopback. No internet is
involved: docker.io's own server is unreachable here, so only the mirror can serve busybox.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl

from agent.images import layout, registry
from cri.runtime import RuntimeClient
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.node import Node
from pinnace.local.process import Process
from pinnace.local.registry import Registry

SUFFIX = f"{os.getpid() % 0x10000:04x}"
NODE = f"agent-img-{SUFFIX}"
POD_CIDR = "10.253.3.0/24"
OCI_IMAGE = "example.test/airgap/oci:1"
DOCKER_IMAGE = "example.test/airgap/docker:1"
MISSING_IMAGE = "example.test/airgap/missing:1"


@dataclass
class ImageNode:
    node: Node
    registry: Registry
    pushed_digest: str  # what the mirror serves as docker.io/library/busybox:latest
    agent: Process
    airgap: Path


def docker_archive(oci_tar: Path, out: Path, tag: str) -> None:
    """Re-pack an OCI layout as a `docker save` style archive (uncompressed layer)."""
    archive = layout.read_archive(oci_tar)
    manifest = archive.manifest(archive.images[0])
    files = {
        "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                      "Layers": ["layer0/layer.tar"]}]).encode(),
        "config.json": archive.blobs[manifest["config"]["digest"]],
        "layer0/layer.tar": gzip.decompress(archive.blobs[manifest["layers"][0]["digest"]]),
    }
    with tarfile.open(out, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def airgap_dir(base: Path, busybox: Path) -> Path:
    """An images directory: an OCI tar, a docker archive, a truncated tar and a stray file."""
    directory = base / "airgap"
    directory.mkdir(parents=True, exist_ok=True)
    archive = layout.read_archive(busybox)
    archive.images = [replace(archive.images[0], names=(OCI_IMAGE,))]
    layout.write_oci_tar(archive, directory / "10-oci.tar")
    docker_archive(busybox, directory / "20-docker.tar", DOCKER_IMAGE)
    whole = (directory / "10-oci.tar").read_bytes()
    (directory / "05-broken.tar").write_bytes(whole[: len(whole) // 2])
    (directory / "README").write_text("not an image\n")
    return directory


@pytest.fixture(scope="module")
def image_node(workdir: Path, images: dict[str, Path], registry: Registry,
               apiserver: APIServerProcess) -> Iterator[ImageNode]:
    base = workdir / "node-images"
    node = Node(f"im{SUFFIX}", base, pod_cidr=POD_CIDR)
    node_registry = Registry(base, storage=registry.storage, name="registry-images",
                             netns=node.netns.name)
    digest = asyncio.run(registry_push(images["busybox"],
                                       f"{registry.host}/library/busybox:latest"))
    agent: Process | None = None
    try:
        node.start()
        node.containerd.import_images(images["pause"])  # nothing else: pulls or imports only
        node_registry.start()
        node.containerd.set_mirrors("docker.io", [f"http://{node_registry.host}"])
        directory = airgap_dir(base, images["busybox"])
        agent = Process("agent-images", [
            sys.executable, "-m", "pinnace", "agent", "--kubeconfig", str(apiserver.kubeconfig),
            "--node-name", NODE, "--containerd", node.containerd.socket,
            "--root-dir", str(base / "agent"), "--pod-log-dir", str(base / "pod-logs"),
            "--pod-cidr", POD_CIDR, "--cni-conf-dir", str(base / "agent-cni"),
            "--images-dir", str(directory), "--port", "0",
        ], base / "logs" / "agent.log")
        agent.start()
        yield ImageNode(node, node_registry, digest, agent, directory)
    finally:
        if agent is not None:
            agent.stop()
            subprocess.run(["kubectl", "--kubeconfig", str(apiserver.kubeconfig), "delete",
                            "node", NODE, "--wait=false"], capture_output=True, timeout=30)
        node_registry.stop()
        node.stop()


async def registry_push(tar: Path, ref: str) -> str:
    return await registry.push(layout.read_archive(tar), ref)


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"img-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


def apply_pod(kubectl: Kubectl, ns: str, name: str, image: str, policy: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "main", "image": image,
                                         "imagePullPolicy": policy,
                                         "command": ["sleep", "300"]}]}}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))


def get(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    result = kubectl.run("get", *args, "-o", "json")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def wait_pod(kubectl: Kubectl, ns: str, name: str, check: Any, what: str,
             agent: Process, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    pod: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pod = get(kubectl, "pod", name, "-n", ns)
        try:
            if pod and check(pod):
                return pod
        except (KeyError, IndexError):
            pass
        assert agent.alive(), f"the agent died:\n{agent.log_tail(30)}"
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {json.dumps(pod.get('status'))}\n"
                         f"agent log:\n{agent.log_tail(30)}")


def running(pod: dict[str, Any]) -> bool:
    return bool(pod["status"].get("phase") == "Running"
                and pod["status"]["containerStatuses"][0].get("ready"))


def events(kubectl: Kubectl, ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    listed = get(kubectl, "events", "-n", ns, "--field-selector",
                 f"involvedObject.kind={kind},involvedObject.name={name}")
    return list(listed.get("items") or [])


def test_docker_io_image_is_pulled_through_the_mirror(image_node: ImageNode, kubectl: Kubectl,
                                                      ns: str) -> None:
    hosts = (image_node.node.containerd.certs_d / "docker.io" / "hosts.toml").read_text()
    assert f'[host."http://{image_node.registry.host}"]' in hosts
    apply_pod(kubectl, ns, "mirrored", "busybox:latest", "Always")
    pod = wait_pod(kubectl, ns, "mirrored", running, "busybox Running", image_node.agent)
    status = pod["status"]["containerStatuses"][0]
    assert status["image"] == "busybox:latest"
    assert status["imageID"].endswith(image_node.pushed_digest), status["imageID"]
    reasons = {e["reason"]: e["message"] for e in events(kubectl, ns, "Pod", "mirrored")}
    assert reasons["Pulling"] == 'Pulling image "busybox:latest"'
    assert reasons["Pulled"].startswith('Successfully pulled image "busybox:latest" in ')

    async def in_containerd() -> list[str]:
        async with RuntimeClient(image_node.node.containerd.socket) as rt:
            image = await rt.image_status("docker.io/library/busybox:latest")
            assert image is not None
            return list(image.repo_digests)

    digests = asyncio.run(in_containerd())
    assert any(d.endswith(image_node.pushed_digest) for d in digests), digests


def test_images_dir_is_imported_at_start(image_node: ImageNode, kubectl: Kubectl,
                                         ns: str) -> None:
    apply_pod(kubectl, ns, "from-oci", OCI_IMAGE, "Never")
    apply_pod(kubectl, ns, "from-docker", DOCKER_IMAGE, "Never")
    for name in ("from-oci", "from-docker"):
        wait_pod(kubectl, ns, name, running, f"{name} Running", image_node.agent)
    log = image_node.agent.log_path.read_text()
    assert f"imported image {OCI_IMAGE}" in log and f"imported image {DOCKER_IMAGE}" in log
    broken = str(image_node.airgap / "05-broken.tar")
    assert "image archive not imported: " + broken in log
    assert "README" not in log


def test_corrupt_tar_is_reported_on_the_node(image_node: ImageNode, kubectl: Kubectl) -> None:
    broken = str(image_node.airgap / "05-broken.tar")
    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        found = [e for e in events(kubectl, "default", "Node", NODE)
                 if e["reason"] == "ImageImportFailed"]
        time.sleep(0.3)
    assert found, "no ImageImportFailed event on the Node"
    assert found[0]["type"] == "Warning"
    assert found[0]["message"].startswith(f"Failed to import image archive {broken}: ")
    assert "not a readable tar archive" in found[0]["message"]
    assert image_node.agent.alive()


def test_never_pull_of_a_missing_image(image_node: ImageNode, kubectl: Kubectl, ns: str) -> None:
    apply_pod(kubectl, ns, "never", MISSING_IMAGE, "Never")
    message = f'Container image "{MISSING_IMAGE}" is not present with pull policy of Never'
    pod = wait_pod(kubectl, ns, "never", lambda p: p["status"]["containerStatuses"][0][
        "state"]["waiting"].get("reason") == "ErrImageNeverPull", "ErrImageNeverPull",
        image_node.agent)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"] == message
    assert pod["status"]["phase"] == "Pending"
    table = kubectl("get", "pod", "never", "-n", ns).splitlines()[1].split()
    assert table[1:3] == ["0/1", "ErrImageNeverPull"]
    reasons = {(e["type"], e["reason"]): e["message"] for e in events(kubectl, ns, "Pod",
                                                                        "never")}
    assert reasons[("Warning", "ErrImageNeverPull")] == message
