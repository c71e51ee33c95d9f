"""Our CRI client against a real containerd + runc + CNI: the pod lifecycle and exit events."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from harness import Pods

from cri.containerd_client import ContainerdClient, Event
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local.containerd import Containerd

BUSYBOX = "localhost/busybox:1"


async def wait_state(rt: RuntimeClient, cid: str, state: int,
                     timeout: float = 10) -> api.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await rt.container_status(cid)
        if status.state == state or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def test_version_and_status(cri: RuntimeClient) -> None:
    version = await cri.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    status = await cri.status()
    conditions = {c.type: c.status for c in status.status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    assert (await cri.image_fs_info()).image_filesystems


async def test_pod_lifecycle(cri: RuntimeClient, pods: Pods) -> None:
    config = pods.sandbox_config("lifecycle")
    sandbox_id = await cri.run_pod_sandbox(config)
    sandbox = await cri.pod_sandbox_status(sandbox_id)
    assert sandbox.status.state == api.SANDBOX_READY
    assert sandbox.status.network.ip.startswith("10.253.1.")

    command = ["sh", "-c", "trap 'echo terminated; exit 0' TERM;"
               " echo to-stdout; echo to-stderr >&2; sleep 300 & wait"]
    container_id = await cri.create_container(
        sandbox_id, pods.container_config("main", BUSYBOX, command), config)
    await cri.start_container(container_id)
    status = await wait_state(cri, container_id, api.CONTAINER_RUNNING)
    assert status.state == api.CONTAINER_RUNNING
    assert status.image.image == BUSYBOX

    # The container's log, in the CRI log format: "<RFC3339Nano> <stream> <tag> <line>".
    log_path = Path(config.log_directory) / "main.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "to-stderr" not in log_path.read_text():
        await asyncio.sleep(0.05)
    lines = [line.split(" ", 3) for line in log_path.read_text().splitlines()]
    assert sorted((stream, tag, text) for _, stream, tag, text in lines) == [
        ("stderr", "F", "to-stderr"), ("stdout", "F", "to-stdout")]

    result = await cri.exec_sync(container_id, ["sh", "-c", "echo $((6*7)); hostname"], 10)
    assert result.exit_code == 0
    assert result.stdout.decode().split() == ["42", "lifecycle"]
    failed = await cri.exec_sync(container_id, ["sh", "-c", "echo oops >&2; exit 3"], 10)
    assert (failed.exit_code, failed.stderr) == (3, b"oops\n")

    # StopContainer sends SIGTERM: the shell's trap runs and it exits 0 within the grace period.
    await cri.stop_container(container_id, 10)
    status = await cri.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (api.CONTAINER_EXITED, 0, "Completed")
    assert "terminated" in log_path.read_text()

    await cri.remove_container(container_id)
    assert not await cri.list_containers(api.ContainerFilter(pod_sandbox_id=sandbox_id))
    await cri.stop_pod_sandbox(sandbox_id)
    await cri.remove_pod_sandbox(sandbox_id)
    assert sandbox_id not in {s.id for s in await cri.list_pod_sandbox()}


async def test_exit_seen_through_events_within_100ms(
        cri: RuntimeClient, containerd: Containerd, pods: Pods) -> None:
    config = pods.sandbox_config("exits")
    sandbox_id = await cri.run_pod_sandbox(config)
    async with ContainerdClient(containerd.socket) as ctd:
        received: asyncio.Queue[tuple[float, Event]] = asyncio.Queue()

        async def watch() -> None:
            async for event in ctd.subscribe(['topic=="/tasks/exit"']):
                await received.put((time.time(), event))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)  # the subscription is in place
        container_id = await cri.create_container(
            sandbox_id, pods.container_config("exits", BUSYBOX, ["sh", "-c", "sleep 0.3; exit 7"]),
            config)
        await cri.start_container(container_id)
        try:
            while True:
                seen_at, event = await asyncio.wait_for(received.get(), 10)
                if event.payload.container_id == container_id:
                    break
        finally:
            watcher.cancel()
    assert event.topic == "/tasks/exit"
    assert event.payload.exit_status == 7
    status = await wait_state(cri, container_id, api.CONTAINER_EXITED)
    assert (status.exit_code, status.reason) == (7, "Error")
    exited_at = status.finished_at / 1e9
    assert 0 <= seen_at - exited_at < 0.1, f"exit seen {seen_at - exited_at:.3f}s after it happened"
