"""Unit tests of the agent's HTTP server over the fake CRI and log files in a temp directory:
CRI log parsing, tail, since, limitBytes, timestamps, previous, following (through a rotation,
until the container exits), the error Statuses, exec and attach bridging with a fake streaming
session (the streams asked for; a container that exits while connecting is not found), and
the SPDY header dictionary."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent import labels
from agent.server import app as server_app
from agent.server.app import AgentServer
from agent.server.containers import will_restart
from agent.server.logs import LogOptions, LogRecord, go_rfc3339nano, stream_log, tail_offset
from agent.server.spdy import DICTIONARY, HandshakeError
from agent.server.upstream import StreamOptions
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api

IMAGE = "localhost/busybox:1"
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
           "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}  # a plain GET that asks to upgrade
NS, POD, UID = "default", "web", "uid-1"


def line(second: int, text: str, *, tag: str = "F", stream: str = "stdout") -> str:
    return f"2025-01-01T00:00:{second:02d}.{second * 1_000_000:09d}Z {stream} {tag} {text}\n"


LOG = line(1, "one") + line(2, "tw", tag="P") + line(3, "o") + line(4, "oops", stream="stderr") \
    + line(5, "three")


class Pod:
    """A sandbox and its containers in the fake runtime, with log files under `root`."""

    def __init__(self, runtime: FakeRuntime, root: Path, name: str = POD, uid: str = UID):
        self.runtime, self.root, self.name, self.uid = runtime, root, name, uid
        self.config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, namespace=NS, uid=uid),
            log_directory=str(root / f"{NS}_{name}_{uid}"),
            labels={labels.POD_NAME: name, labels.POD_NAMESPACE: NS, labels.POD_UID: uid})
        self.sandbox = ""

    async def container(self, name: str, log: str, *, restarts: int = 0,
                        running: bool = True) -> str:
        if not self.sandbox:
            self.sandbox = await self.runtime.run_pod_sandbox(self.config)
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name, attempt=restarts),
            image=api.ImageSpec(image=IMAGE), log_path=labels.container_log_path(name, restarts),
            labels={**self.config.labels, labels.CONTAINER_NAME: name},
            annotations={labels.RESTART_COUNT: str(restarts)})
        path = Path(self.config.log_directory) / config.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(log)
        container_id = await self.runtime.create_container(self.sandbox, config, self.config)
        await self.runtime.start_container(container_id)
        if not running:
            self.runtime.exit_container(container_id, 1)
        return container_id

    def log_path(self, name: str, restarts: int = 0) -> Path:
        return Path(self.config.log_directory) / labels.container_log_path(name, restarts)


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime(images=[IMAGE])


@pytest.fixture
async def client(runtime: FakeRuntime, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    pods = [{"metadata": {"name": POD, "namespace": NS, "uid": UID}}]
    server = AgentServer(runtime, node_name="node-1", log_root=tmp_path, pods=lambda: pods)
    async with TestClient(TestServer(server.app())) as test_client:
        yield test_client


async def logs(client: TestClient[Any, Any], query: str = "", container: str = "c") -> str:
    response = await client.get(f"/containerLogs/{NS}/{POD}/{container}?{query}")
    assert response.status == 200, await response.text()
    return await response.text()


# -- the CRI log format ------------------------------------------------------------------------

def test_records_parse_and_partial_lines_join() -> None:
    record = LogRecord.parse(b"2025-01-01T00:00:01.5Z stderr P half")
    assert record == LogRecord("2025-01-01T00:00:01.5Z", "stderr", True, b"half")
    assert LogRecord.parse(b"2025-01-01T00:00:01Z stdout F ") == LogRecord(
        "2025-01-01T00:00:01Z", "stdout", False, b"")
    assert LogRecord.parse(b"not a cri line") is None
    assert go_rfc3339nano("2025-01-01T00:00:01.500000000Z") == "2025-01-01T00:00:01.5Z"
    assert go_rfc3339nano("2025-01-01T00:00:01.000000000+02:00") == "2025-01-01T00:00:01+02:00"


def test_tail_counts_logical_lines() -> None:
    data = LOG.encode()
    assert data[tail_offset(io.BytesIO(data), 2):] == (line(4, "oops", stream="stderr")
                                                       + line(5, "three")).encode()
    # The partial record belongs to the line it starts.
    assert data[tail_offset(io.BytesIO(data), 3):].startswith(line(2, "tw", tag="P").encode())
    assert tail_offset(io.BytesIO(data), 10) == 0
    assert tail_offset(io.BytesIO(data), 0) == len(data)


async def test_logs_plain_tail_timestamps_and_limit(runtime: FakeRuntime, tmp_path: Path,
                                                    client: TestClient[Any, Any]) -> None:
    await Pod(runtime, tmp_path).container("c", LOG)
    assert await logs(client) == "one\ntwo\noops\nthree\n"
    assert await logs(client, "tailLines=2") == "oops\nthree\n"
    assert await logs(client, "timestamps=true&tailLines=3") == (
        "2025-01-01T00:00:02.002Z two\n2025-01-01T00:00:04.004Z oops\n"
        "2025-01-01T00:00:05.005Z three\n")
    assert await logs(client, "limitBytes=6") == "one\ntw"
    assert await logs(client, "sinceTime=2025-01-01T00:00:04Z") == "oops\nthree\n"


async def test_since_seconds_is_relative_to_now() -> None:
    now = datetime.datetime(2025, 1, 1, 0, 0, 10, tzinfo=datetime.UTC)
    options = LogOptions.from_query({"sinceSeconds": "6"}, now=now)
    assert options.since == datetime.datetime(2025, 1, 1, 0, 0, 4, tzinfo=datetime.UTC)
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    async def running() -> bool:
        return False

    path = Path("/nonexistent/never.log")
    await stream_log(path, options, write, running)
    assert out == []


async def test_previous_is_the_instance_before(runtime: FakeRuntime, tmp_path: Path,
                                               client: TestClient[Any, Any]) -> None:
    pod = Pod(runtime, tmp_path)
    await pod.container("c", line(1, "first run"), running=False)
    response = await client.get(f"/containerLogs/{NS}/{POD}/c?previous=true")
    assert response.status == 400
    assert (await response.json())["message"] == (
        f'previous terminated container "c" in pod "{POD}" not found')
    await pod.container("c", line(2, "second run"), restarts=1)
    assert await logs(client) == "second run\n"
    assert await logs(client, "previous=true") == "first run\n"


@pytest.mark.parametrize(("policy", "exit_code", "expected"), [
    ("Always", 0, "second run\n"), ("OnFailure", 1, "second run\n"),
    ("OnFailure", 0, "first run\n"), ("Never", 1, "first run\n")])
async def test_previous_in_crash_loop_back_off_is_the_last_run(
        runtime: FakeRuntime, tmp_path: Path, policy: str, exit_code: int, expected: str) -> None:
    """As the kubelet: while the newest instance waits to be restarted its exit is the
    container's lastState, so --previous (and the plain logs) show the last run."""
    spec = {"restartPolicy": policy, "containers": [{"name": "c", "image": IMAGE}]}
    known = [{"metadata": {"name": POD, "namespace": NS, "uid": UID}, "spec": spec}]
    server = AgentServer(runtime, node_name="node-1", log_root=tmp_path, pods=lambda: known)
    pod = Pod(runtime, tmp_path)
    await pod.container("c", line(1, "first run"), running=False)
    second = await pod.container("c", line(2, "second run"), restarts=1)
    runtime.exit_container(second, exit_code)
    async with TestClient(TestServer(server.app())) as client:
        assert await logs(client, "previous=true") == expected
        assert await logs(client) == "second run\n"
        await pod.container("c", line(3, "third run"), restarts=2)  # restarted: it runs
        assert await logs(client, "previous=true") == "second run\n"
        assert await logs(client) == "third run\n"


async def test_previous_of_a_single_exited_instance(runtime: FakeRuntime,
                                                    tmp_path: Path) -> None:
    spec: dict[str, Any] = {"restartPolicy": "Always", "containers": [{"name": "c"}]}
    known = [{"metadata": {"name": POD, "namespace": NS, "uid": UID}, "spec": spec}]
    server = AgentServer(runtime, node_name="node-1", log_root=tmp_path, pods=lambda: known)
    await Pod(runtime, tmp_path).container("c", line(1, "only run"), running=False)
    async with TestClient(TestServer(server.app())) as client:
        # the only dead instance is kept by container GC: --previous finds it
        assert await logs(client, "previous=true") == "only run\n"
        known[0]["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
        response = await client.get(f"/containerLogs/{NS}/{POD}/c?previous=true")
        assert response.status == 400  # terminating: not restarted, no lastState


def test_will_restart_follows_the_restart_policy() -> None:
    def pod(policy: str, **extra: Any) -> dict[str, Any]:
        return {"metadata": {}, "spec": {"restartPolicy": policy, "containers": [{"name": "c"}],
                                         **extra}}

    assert not will_restart(None, "c", 1) and not will_restart({"metadata": {}}, "c", 1)
    assert will_restart({"spec": {"containers": [{"name": "c"}]}}, "c", 0)  # Always default
    assert will_restart(pod("OnFailure"), "c", 2) and not will_restart(pod("OnFailure"), "c", 0)
    assert not will_restart(pod("Never"), "c", 1)
    init = pod("Always", initContainers=[{"name": "i"}, {"name": "s", "restartPolicy": "Always"}])
    assert will_restart(init, "i", 1) and not will_restart(init, "i", 0)
    assert will_restart(init, "s", 0)  # a sidecar
    assert not will_restart(pod("Never", initContainers=[{"name": "i"}]), "i", 1)


async def test_unknown_pod_and_container_are_404_statuses(
        runtime: FakeRuntime, tmp_path: Path, client: TestClient[Any, Any]) -> None:
    await Pod(runtime, tmp_path).container("c", LOG)
    response = await client.get(f"/containerLogs/{NS}/nope/c")
    assert response.status == 404
    status = await response.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
    assert "nope" in status["message"]
    response = await client.get(f"/containerLogs/{NS}/{POD}/other")
    assert response.status == 404
    assert (await response.json())["message"] == (
        f'container "other" in pod "{POD}" is not available')
    response = await client.get(f"/containerLogs/{NS}/{POD}/c?tailLines=x")
    assert response.status == 400


async def test_a_container_not_created_yet_is_waiting(runtime: FakeRuntime,
                                                      tmp_path: Path) -> None:
    pod = {"metadata": {"name": POD, "namespace": NS, "uid": UID},
           "spec": {"containers": [{"name": "c"}, {"name": "d"}]},
           "status": {"containerStatuses": [
               {"name": "d", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    server = AgentServer(runtime, node_name="node-1", log_root=tmp_path, pods=lambda: [pod])
    async with TestClient(TestServer(server.app())) as client:
        response = await client.get(f"/containerLogs/{NS}/{POD}/d")
        assert response.status == 400
        assert (await response.json())["message"] == (
            f'container "d" in pod "{POD}" is waiting to start: ImagePullBackOff')
        response = await client.get(f"/containerLogs/{NS}/{POD}/c")
        assert (await response.json())["message"].endswith("waiting to start: ContainerCreating")
        response = await client.get(f"/exec/{NS}/{POD}/d?command=true&stdout=1")
        assert (response.status, (await response.json())["message"]) == (
            400, 'container not found ("d")')


async def test_follow_through_rotation_until_exit(runtime: FakeRuntime, tmp_path: Path,
                                                  client: TestClient[Any, Any]) -> None:
    pod = Pod(runtime, tmp_path)
    container_id = await pod.container("c", line(1, "before"))
    path = pod.log_path("c")
    response = await client.get(f"/containerLogs/{NS}/{POD}/c?follow=true")
    assert response.status == 200
    assert await asyncio.wait_for(response.content.readline(), 5) == b"before\n"
    with path.open("a") as f:
        f.write(line(2, "appended"))
    assert await asyncio.wait_for(response.content.readline(), 5) == b"appended\n"
    path.rename(path.with_suffix(".log.1"))
    path.write_text(line(3, "rotated"))
    assert await asyncio.wait_for(response.content.readline(), 5) == b"rotated\n"
    with path.open("a") as f:
        f.write(line(4, "last words"))
    runtime.exit_container(container_id, 0)
    assert await asyncio.wait_for(response.content.read(), 5) == b"last words\n"


async def test_exec_errors(runtime: FakeRuntime, tmp_path: Path,
                           client: TestClient[Any, Any]) -> None:
    pod = Pod(runtime, tmp_path)
    await pod.container("c", LOG, running=False)
    response = await client.get(f"/exec/{NS}/{POD}/c?command=true&output=1")
    assert response.status == 400
    assert (await response.json())["message"] == 'container not found ("c")'
    await pod.container("c", LOG, restarts=1)
    response = await client.get(f"/exec/{NS}/{POD}/c?command=true")
    assert (await response.json())["message"] == (
        "you must specify at least 1 of stdin, stdout, stderr")
    response = await client.post(f"/exec/{NS}/{POD}/c?command=true&stdout=true",
                                 headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade"})
    assert response.status == 400
    assert "Upgrade request required" in (await response.json())["message"]
    response = await client.get(f"/exec/{NS}/nope/c?command=true&stdout=true")
    assert response.status == 404


class FakeSession:
    """Stands for containerd's streaming server: echoes stdin until it is closed."""

    def __init__(self) -> None:
        self.stdin = b""
        self.closed_stdin = asyncio.Event()
        self.resizes: list[bytes] = []

    async def send(self, channel: int, data: bytes) -> None:
        if channel == 0:
            self.stdin += data
        else:
            self.resizes.append(data)

    async def close_stdin(self) -> None:
        self.closed_stdin.set()

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        await self.closed_stdin.wait()
        yield 1, self.stdin
        yield 3, json.dumps({"status": "Failure", "reason": "NonZeroExitCode", "details": {
            "causes": [{"reason": "ExitCode", "message": "3"}]}}).encode()

    async def close(self) -> None:
        pass


async def test_exec_bridges_v5_with_stdin_close(runtime: FakeRuntime, tmp_path: Path,
                                                client: TestClient[Any, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    await Pod(runtime, tmp_path).container("c", LOG)
    session = FakeSession()
    opened: list[StreamOptions] = []

    async def fake_open(url: str, options: StreamOptions) -> FakeSession:
        opened.append(options)
        return session

    monkeypatch.setattr(server_app, "open_session", fake_open)
    ws = await client.ws_connect(
        f"/exec/{NS}/{POD}/c?command=cat&stdin=true&stdout=true&stderr=true",
        protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
    assert ws.protocol == "v5.channel.k8s.io"
    await ws.send_bytes(b"\x00hello")
    await ws.send_bytes(b"\x04{\"Width\":80,\"Height\":24}")
    await ws.send_bytes(b"\xff\x00")
    received: dict[int, bytes] = {}
    async for message in ws:
        if message.type == aiohttp.WSMsgType.BINARY:
            received[message.data[0]] = received.get(message.data[0], b"") + message.data[1:]
    assert received[1] == b"hello"
    assert json.loads(received[3])["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert session.resizes == [b'{"Width":80,"Height":24}']
    assert opened == [StreamOptions(stdin=True, stdout=True, stderr=True, tty=False)]
    assert runtime.called("exec")[-1][1] == ("cat",)


async def test_attach_asks_only_for_the_streams_requested(
        runtime: FakeRuntime, tmp_path: Path, client: TestClient[Any, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    await Pod(runtime, tmp_path).container("c", LOG)
    opened: list[StreamOptions] = []

    async def fake_open(url: str, options: StreamOptions) -> FakeSession:
        opened.append(options)
        session = FakeSession()
        session.closed_stdin.set()
        return session

    requests: list[api.AttachRequest] = []
    real_attach = runtime.attach

    async def attach(request: api.AttachRequest, *, timeout: float | None = None) -> str:
        requests.append(request)
        return await real_attach(request, timeout=timeout)

    monkeypatch.setattr(server_app, "open_session", fake_open)
    monkeypatch.setattr(runtime, "attach", attach)
    for query in ("output=1&error=1", "input=1&output=1&tty=1"):
        ws = await client.ws_connect(f"/attach/{NS}/{POD}/c?{query}",
                                     protocols=("v5.channel.k8s.io",))
        async for _ in ws:
            pass
    assert opened == [StreamOptions(stdin=False, stdout=True, stderr=True, tty=False),
                      StreamOptions(stdin=True, stdout=True, stderr=False, tty=True)]
    assert [(r.stdin, r.stderr, r.tty) for r in requests] == [(False, True, False),
                                                              (True, False, True)]


async def test_a_container_that_exits_while_connecting_is_not_found(
        runtime: FakeRuntime, tmp_path: Path, client: TestClient[Any, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pod = Pod(runtime, tmp_path)
    container_id = await pod.container("c", LOG)
    exits = True

    async def refused(url: str, options: StreamOptions) -> FakeSession:
        if exits:
            runtime.exit_container(container_id, 0)
            raise HandshakeError(500, b"container is in CONTAINER_EXITED state")
        raise HandshakeError(500, b"stream server refused")

    monkeypatch.setattr(server_app, "open_session", refused)
    response = await client.get(f"/attach/{NS}/{POD}/c?output=1",
                                headers=UPGRADE)
    assert response.status == 400
    assert (await response.json())["message"] == 'container not found ("c")'
    exits = False
    await pod.container("c", LOG, restarts=1)
    response = await client.get(f"/exec/{NS}/{POD}/c?command=true&output=1",
                                headers=UPGRADE)
    assert response.status == 500
    assert "error executing command in container" in (await response.json())["message"]

    async def exited(url: str, options: StreamOptions) -> FakeSession:
        raise HandshakeError(500, b"container is in CONTAINER_EXITED state")

    # containerd refuses so while its status still says RUNNING (for some ms): not found too
    monkeypatch.setattr(server_app, "open_session", exited)
    response = await client.get(f"/attach/{NS}/{POD}/c?output=1", headers=UPGRADE)
    assert response.status == 400


async def test_healthz_pods_and_metrics(client: TestClient[Any, Any]) -> None:
    assert await (await client.get("/healthz")).text() == "ok"
    pods = await (await client.get("/pods")).json()
    assert pods["kind"] == "PodList" and pods["items"][0]["metadata"]["name"] == POD
    metrics = await (await client.get("/metrics")).text()
    assert "pinnace_agent_running_pods 1.0" in metrics
    assert 'pinnace_agent_server_requests_total{code="200",endpoint="healthz"} 1.0' in metrics


def test_spdy_dictionary_is_spdy3s() -> None:
    # The zlib dictionary of SPDY/3 header blocks (moby/spdystream spdy/dictionary.go).
    assert len(DICTIONARY) == 1423
    assert zlib.adler32(DICTIONARY) == 3821447106
