"""The rest of the CRI surface on a real containerd: streaming URLs, stats, resources, logs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from harness import Pods

from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api

BUSYBOX = "localhost/busybox:1"


async def running_pod(cri: RuntimeClient, pods: Pods, name: str,
                      script: str = "echo started; sleep 300") -> tuple[str, str, Path]:
    config = pods.sandbox_config(name)
    sandbox_id = await cri.run_pod_sandbox(config)
    container_id = await cri.create_container(
        sandbox_id, pods.container_config("c", BUSYBOX, ["sh", "-c", script]), config)
    await cri.start_container(container_id)
    return sandbox_id, container_id, Path(config.log_directory) / "c.log"


async def stream(url: str, stdin: bytes | None = None) -> dict[int, bytes]:
    """Speak v4.channel.k8s.io to containerd's streaming server; return bytes per channel."""
    channels: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=("v4.channel.k8s.io",)) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            if stdin is not None:
                await ws.send_bytes(b"\x00" + stdin)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY and message.data:
                    channel = message.data[0]
                    channels[channel] = channels.get(channel, b"") + message.data[1:]
    return channels


async def test_exec_url_streams_output_and_status(cri: RuntimeClient, pods: Pods) -> None:
    _, container_id, _ = await running_pod(cri, pods, "exec-stream")
    url = await cri.exec(api.ExecRequest(container_id=container_id,
                                         cmd=["sh", "-c", "echo out; echo err >&2; exit 4"],
                                         stdout=True, stderr=True))
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    channels = await asyncio.wait_for(stream(url), 20)
    assert channels[1] == b"out\n"
    assert channels[2] == b"err\n"
    status = json.loads(channels[3])
    assert status["status"] == "Failure"
    assert status["details"]["causes"][0] == {"reason": "ExitCode", "message": "4"}


async def test_attach_and_port_forward_return_urls(cri: RuntimeClient, pods: Pods) -> None:
    sandbox_id, container_id, _ = await running_pod(cri, pods, "attach-pf")
    attach = await cri.attach(api.AttachRequest(container_id=container_id, stdout=True))
    assert "/attach/" in attach
    forward = await cri.port_forward(sandbox_id, [8080])
    assert "/portforward/" in forward


async def test_stats_resources_and_log_reopen(cri: RuntimeClient, pods: Pods) -> None:
    _, container_id, log_path = await running_pod(
        cri, pods, "stats", "echo started; while :; do sleep 0.1; echo tick; done")
    stats = await cri.container_stats(container_id)
    assert stats.attributes.id == container_id
    assert stats.memory.working_set_bytes.value > 0
    listed = await cri.list_container_stats(api.ContainerStatsFilter(id=container_id))
    assert [s.attributes.id for s in listed] == [container_id]

    await cri.update_container_resources(
        container_id, api.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=64 << 20))
    status = await cri.container_status(container_id)
    assert status.resources.linux.cpu_shares == 512
    assert status.resources.linux.memory_limit_in_bytes == 64 << 20

    # Log rotation: move the file away, reopen, and new output lands in a fresh file.
    for _ in range(50):
        if log_path.exists() and log_path.read_text():
            break
        await asyncio.sleep(0.05)
    log_path.rename(log_path.with_suffix(".1"))
    await cri.reopen_container_log(container_id)
    assert log_path.exists()
    for _ in range(50):
        if "tick" in log_path.read_text():
            break
        await asyncio.sleep(0.05)
    assert "tick" in log_path.read_text()
    assert "started" not in log_path.read_text()
    assert "started" in log_path.with_suffix(".1").read_text()
