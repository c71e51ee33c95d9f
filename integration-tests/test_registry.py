"""Push to a real local registry over its HTTP API, then CRI PullImage of what was pushed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Pods, pinnace

from agent.images import layout
from agent.images import registry as push_api
from cri import errors
from cri.runtime import RuntimeClient
from pinnace.local.registry import Registry


@pytest.fixture
def readonly_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry in maintenance read-only mode: it refuses every push."""
    server = Registry(tmp_path, name="registry-readonly", readonly=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_push_then_cri_pull(registry: Registry, images: dict[str, Path],
                                  cri: RuntimeClient, pods: Pods) -> None:
    ref = f"{registry.host}/pinnace/busybox:pushed"
    result = pinnace("images", "push", str(images["busybox"]), ref)
    assert result.returncode == 0, result.stderr
    digest = layout.read_archive(images["busybox"]).images[0].manifest_digest
    assert result.stdout.strip() == f"{ref}\t{digest}"
    # Pushing again finds every blob present and only re-puts the manifest.
    assert pinnace("images", "push", str(images["busybox"]), ref).returncode == 0

    image_ref = await cri.pull_image(ref)
    assert image_ref.startswith("sha256:")
    image = await cri.image_status(ref)
    assert image is not None and ref in image.repo_tags
    assert f"{registry.host}/pinnace/busybox@{digest}" in image.repo_digests

    config = pods.sandbox_config("pulled")
    sandbox_id = await cri.run_pod_sandbox(config)
    container_id = await cri.create_container(
        sandbox_id, pods.container_config("c", ref, ["sleep", "30"]), config)
    await cri.start_container(container_id)
    result_exec = await cri.exec_sync(container_id, ["echo", "pulled"], 10)
    assert result_exec.stdout == b"pulled\n"
    await cri.remove_image(ref)
    assert await cri.image_status(ref) is None


async def test_pull_of_unknown_image_names_it(registry: Registry, cri: RuntimeClient) -> None:
    ref = f"{registry.host}/pinnace/absent:1"
    with pytest.raises(errors.CRIError) as caught:
        await cri.pull_image(ref, timeout=30)
    assert "PullImage" in str(caught.value) and "absent" in str(caught.value)


async def test_refused_push_reports_status_and_message(readonly_registry: Registry,
                                                       images: dict[str, Path]) -> None:
    ref = f"{readonly_registry.host}/pinnace/busybox:1"
    result = pinnace("images", "push", str(images["busybox"]), ref)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("pinnace images push: ") and "\n" not in line
    assert "HTTP 405 Method Not Allowed: Method not allowed" in line, line


async def test_push_to_nothing_names_the_registry(images: dict[str, Path]) -> None:
    from pinnace.local.process import free_port

    archive = layout.read_archive(images["busybox"])
    with pytest.raises(push_api.RegistryError, match="registry 127.0.0.1:"):
        await push_api.push(archive, f"127.0.0.1:{free_port()}/x:1")
