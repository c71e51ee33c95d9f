"""agent.probes: probe workers against a real HTTP server and TCP port on 127.0.0.1 and exec
results from FakeRuntime.

The manager runs on a clock 100 times faster than real time (its clock and sleep are injected),
so probe specs keep realistic values (periodSeconds: 1 is 10 ms here); the I/O timeouts are real.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.probes import (
    ProbeManager,
    dial_error,
    join_host_port,
    probe_url,
    resolve_port,
    url_text,
)
from cri import errors
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api

SCALE = 100.0
UID = "uid-1"
Result = tuple[str, str, bool, str]  # container, kind, result, message


@dataclass
class Server:
    """A tiny HTTP app whose answers a test changes: `codes[path]`, hit counts, headers seen."""

    port: int
    codes: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(port=0)

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        state.hits[path] = state.hits.get(path, 0) + 1
        state.headers[path] = dict(request.headers)
        if path == "/slow":
            await asyncio.sleep(1)
        if path == "/elsewhere":
            raise web.HTTPFound("http://127.0.0.2:1/ok", text="moved away")
        if path == "/here":
            raise web.HTTPFound("/ok")
        if path == "/loop":
            raise web.HTTPFound("/loop")
        return web.Response(status=state.codes.get(path, 200), text=f"body of {path}")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    yield state
    await runner.cleanup()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Harness:
    manager: ProbeManager
    runtime: FakeRuntime
    results: list[Result]
    events: list[tuple[str, str, str]]
    container_id: str

    def add(self, pod: dict[str, Any], container_id: str | None = None) -> None:
        cid = self.container_id if container_id is None else container_id
        self.manager.add_pod(pod, {"app": cid} if cid else {}, "127.0.0.1")

    def kinds(self, kind: str) -> list[tuple[bool, str]]:
        return [(r[2], r[3]) for r in self.results if r[1] == kind]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    runtime = FakeRuntime(images=["localhost/pause:1", "busybox:1.36"])
    config = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="web", uid=UID))
    sandbox = await runtime.run_pod_sandbox(config)
    cid = await runtime.create_container(sandbox, api.ContainerConfig(
        metadata=api.ContainerMetadata(name="app"), image=api.ImageSpec(image="busybox:1.36")),
        config)
    await runtime.start_container(cid)
    results: list[Result] = []
    events: list[tuple[str, str, str]] = []

    def on_result(uid: str, name: str, kind: str, result: bool, message: str) -> None:
        assert uid == UID
        results.append((name, kind, result, message))

    def on_event(uid: str, name: str, reason: str, message: str) -> None:
        events.append((name, reason, message))

    manager = ProbeManager(runtime, on_result=on_result, on_event=on_event,
                           clock=lambda: time.monotonic() * SCALE,
                           sleep=lambda seconds: asyncio.sleep(seconds / SCALE))
    yield Harness(manager, runtime, results, events, cid)
    await manager.close()


def pod(**probes: dict[str, Any]) -> dict[str, Any]:
    app: dict[str, Any] = {"name": "app", "image": "busybox:1.36",
                           "ports": [{"name": "http", "containerPort": 0}], **probes}
    return {"metadata": {"name": "web", "namespace": "default", "uid": UID},
            "spec": {"containers": [app]}}


def http(path: str, port: int | str, **extra: Any) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": 1, **extra}


def execute(*command: str, **extra: Any) -> dict[str, Any]:
    return {"exec": {"command": list(command)}, "periodSeconds": 1, **extra}


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def more_hits(server: Server, path: str, than: int) -> bool:
    return server.hits.get(path, 0) > than


async def settle(seconds: float = 0.2) -> None:
    await asyncio.sleep(seconds)


# -- readiness, liveness, thresholds ---------------------------------------------------------

async def test_readiness_starts_false_then_follows_http(harness: Harness, server: Server) -> None:
    harness.add(pod(readinessProbe=http("/ready", server.port)))
    assert harness.manager.ready(UID, "app") is False
    assert harness.manager.ready(UID, "other") is True  # no probe, no veto
    await until(lambda: harness.manager.ready(UID, "app"))
    assert harness.kinds("readiness") == [(True, "")]
    server.codes["/ready"] = 500
    await until(lambda: not harness.manager.ready(UID, "app"))
    assert harness.kinds("readiness")[-1] == (
        False, "Readiness probe failed: HTTP probe failed with statuscode: 500")
    assert harness.results.count(harness.results[-1]) == 1  # reported once, on the change


async def test_liveness_counts_consecutive_failures_then_holds(harness: Harness,
                                                               server: Server) -> None:
    server.codes["/live"] = 503
    harness.add(pod(livenessProbe=http("/live", server.port, failureThreshold=3)))
    await until(lambda: bool(harness.kinds("liveness")))
    message = "Liveness probe failed: HTTP probe failed with statuscode: 503"
    assert harness.kinds("liveness") == [(False, message)]
    assert harness.events == [("app", "Unhealthy", message)] * 3  # one event per failed probe
    hits = server.hits["/live"]
    await settle()
    assert server.hits["/live"] == hits  # on hold until the container is replaced
    server.codes["/live"] = 200
    harness.add(pod(livenessProbe=http("/live", server.port, failureThreshold=3)), "new-id")
    await until(lambda: server.hits["/live"] > hits)
    assert harness.kinds("liveness")[-1] == (True, "")


async def test_a_success_resets_the_failure_count(harness: Harness, server: Server) -> None:
    flips = iter([500, 500, 200, 500, 500, 200] * 20)

    async def flip() -> None:
        while True:
            server.codes["/live"] = next(flips)
            await until(functools.partial(more_hits, server, "/live",
                                          server.hits.get("/live", 0)))

    flipper = asyncio.create_task(flip())
    harness.add(pod(livenessProbe=http("/live", server.port, failureThreshold=3)))
    await until(lambda: server.hits.get("/live", 0) >= 15)
    flipper.cancel()
    assert harness.kinds("liveness") == []


async def test_success_threshold_needs_consecutive_successes(harness: Harness,
                                                            server: Server) -> None:
    harness.add(pod(readinessProbe=http("/ready", server.port, successThreshold=3)))
    await until(lambda: server.hits.get("/ready", 0) >= 1)
    assert harness.manager.ready(UID, "app") is False
    await until(lambda: harness.manager.ready(UID, "app"))
    assert server.hits["/ready"] >= 3


async def test_initial_delay_holds_the_first_probe(harness: Harness, server: Server) -> None:
    harness.add(pod(readinessProbe=http("/ready", server.port, initialDelaySeconds=40)))
    await asyncio.sleep(0.2)  # 20 s on the manager's clock
    assert server.hits.get("/ready", 0) == 0
    await until(lambda: harness.manager.ready(UID, "app"))


async def test_no_container_means_not_ready(harness: Harness, server: Server) -> None:
    spec = pod(readinessProbe=http("/ready", server.port))
    harness.add(spec)
    await until(lambda: harness.manager.ready(UID, "app"))
    harness.add(spec, "")  # the container exited
    await until(lambda: not harness.manager.ready(UID, "app"))
    assert harness.kinds("readiness") == [(True, ""), (False, "")]


# -- startup gating --------------------------------------------------------------------------

async def test_startup_gates_liveness_and_readiness(harness: Harness, server: Server) -> None:
    cmd = ("cat", "/tmp/started")
    harness.runtime.exec_results[("*", cmd)] = api.ExecSyncResponse(
        exit_code=1, stderr=b"cat: can't open '/tmp/started'")
    spec = pod(startupProbe=execute(*cmd, failureThreshold=1000),
               readinessProbe=http("/ready", server.port), livenessProbe=http("/live", server.port))
    harness.add(spec)
    await until(lambda: len(harness.runtime.called("exec_sync")) >= 5)
    assert not server.hits and harness.manager.started(UID, "app") is False
    assert harness.events[0] == ("app", "Unhealthy",
                                 "Startup probe failed: cat: can't open '/tmp/started'")
    harness.runtime.exec_results[("*", cmd)] = api.ExecSyncResponse(exit_code=0)
    await until(lambda: harness.manager.ready(UID, "app"))
    assert harness.manager.started(UID, "app") is True
    assert harness.kinds("startup") == [(True, "")]
    calls = len(harness.runtime.called("exec_sync"))
    await until(lambda: server.hits.get("/live", 0) >= 3)
    assert len(harness.runtime.called("exec_sync")) == calls  # startup stops once passed


async def test_startup_failure_is_reported_and_held(harness: Harness) -> None:
    harness.runtime.exec_results[("*", ("false",))] = api.ExecSyncResponse(exit_code=1)
    harness.add(pod(startupProbe=execute("false", failureThreshold=2)))
    await until(lambda: bool(harness.kinds("startup")))
    assert harness.kinds("startup") == [(False, "Startup probe failed: ")]
    calls = len(harness.runtime.called("exec_sync"))
    await settle()
    assert len(harness.runtime.called("exec_sync")) == calls


# -- exec, tcp and http details --------------------------------------------------------------

async def test_exec_output_and_timeout(harness: Harness) -> None:
    cmd = ("sh", "-c", "check")
    harness.runtime.exec_results[(harness.container_id, cmd)] = api.ExecSyncResponse(
        exit_code=2, stdout=b"not ok\n", stderr=b"disk full")
    spec = pod(livenessProbe=execute(*cmd, failureThreshold=1))
    harness.add(spec)
    await until(lambda: bool(harness.kinds("liveness")))
    assert harness.kinds("liveness") == [(False, "Liveness probe failed: not ok\ndisk full")]
    assert harness.runtime.called("exec_sync")[0] == (harness.container_id, cmd)

    harness.runtime.fail_next("exec_sync", errors.DeadlineExceeded(
        "fake", "RuntimeService/ExecSync", None, "timeout 1s exceeded"))
    harness.add(spec, harness.container_id + "-restarted")  # the fake answers for any id
    await until(lambda: len(harness.kinds("liveness")) == 3)
    assert harness.kinds("liveness")[1:] == [
        (True, ""), (False, 'Liveness probe failed: command "sh -c check" timed out')]


async def test_exec_runtime_errors_are_retried_then_thrown_away(harness: Harness) -> None:
    for _ in range(2 + 3):  # two absorbed by the retries of one run, then a run that errors
        harness.runtime.fail_next("exec_sync", errors.NotFound(
            "fake", "RuntimeService/ExecSync", None, "container not found"))
    harness.runtime.exec_results[("*", ("true",))] = api.ExecSyncResponse(exit_code=0)
    harness.add(pod(readinessProbe=execute("true", successThreshold=2)))
    await until(lambda: harness.manager.ready(UID, "app"))
    assert harness.events == [("app", "Unhealthy", "Readiness probe errored and resulted in "
                               "unknown state: containerd at fake: RuntimeService/ExecSync: "
                               "ERROR: container not found")]
    assert harness.kinds("readiness") == [(True, "")]
    assert len(harness.runtime.called("exec_sync")) >= 2 + 3 + 2


async def test_tcp_socket_open_and_refused(harness: Harness, server: Server,
                                           closed_port: int) -> None:
    harness.add(pod(readinessProbe={"tcpSocket": {"port": server.port}, "periodSeconds": 1}))
    await until(lambda: harness.manager.ready(UID, "app"))
    await harness.manager.close()
    harness.events.clear()
    harness.add(pod(readinessProbe={"tcpSocket": {"port": closed_port}, "periodSeconds": 1}))
    await until(lambda: bool(harness.events))
    assert harness.events[0] == ("app", "Unhealthy", "Readiness probe failed: dial tcp "
                                 f"127.0.0.1:{closed_port}: connect: connection refused")


async def test_http_connection_refused_is_worded_as_go(harness: Harness,
                                                       closed_port: int) -> None:
    harness.add(pod(readinessProbe=http("/healthz", closed_port)))
    await until(lambda: bool(harness.events))
    assert harness.events[0][2] == (
        f'Readiness probe failed: Get "http://127.0.0.1:{closed_port}/healthz": '
        f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused")


async def test_http_timeout(harness: Harness, server: Server) -> None:
    harness.add(pod(readinessProbe=http("/slow", server.port, timeoutSeconds=0.2)))
    await until(lambda: bool(harness.events))
    assert harness.events[0][2] == (
        f'Readiness probe failed: Get "http://127.0.0.1:{server.port}/slow": context deadline '
        "exceeded (Client.Timeout exceeded while awaiting headers)")


async def test_http_named_port_headers_and_host(harness: Harness, server: Server) -> None:
    spec = pod(readinessProbe={"httpGet": {"path": "/hdr", "port": "http", "httpHeaders": [
        {"name": "X-Probe", "value": "yes"}, {"name": "Host", "value": "example.test"}]},
        "periodSeconds": 1})
    spec["spec"]["containers"][0]["ports"][0]["containerPort"] = server.port
    harness.add(spec)
    await until(lambda: harness.manager.ready(UID, "app"))
    seen = server.headers["/hdr"]
    assert seen["X-Probe"] == "yes" and seen["Host"] == "example.test"
    assert seen["User-Agent"] == "kube-probe/1.32" and seen["Accept"] == "*/*"


async def test_missing_named_port_errors_without_a_result(harness: Harness) -> None:
    harness.add(pod(readinessProbe=http("/", "metrics")))
    await until(lambda: bool(harness.events))
    assert harness.events[0] == ("app", "Unhealthy", 'Readiness probe errored and resulted in '
                                 'unknown state: port "metrics" not found')
    assert harness.results == [] and harness.manager.ready(UID, "app") is False


async def test_redirects(harness: Harness, server: Server) -> None:
    harness.add(pod(readinessProbe=http("/here", server.port)))
    await until(lambda: harness.manager.ready(UID, "app"))
    assert server.hits["/ok"] >= 1 and harness.events == []  # same host: followed
    harness.manager.remove_pod(UID)
    harness.add(pod(readinessProbe=http("/elsewhere", server.port)))
    await until(lambda: harness.manager.ready(UID, "app"))
    assert harness.events[0] == ("app", "ProbeWarning", "Readiness probe warning: Probe "
                                 "terminated redirects, Response body: moved away")
    harness.manager.remove_pod(UID)
    harness.events.clear()
    harness.add(pod(readinessProbe=http("/loop", server.port)))
    await until(lambda: bool(harness.events))
    assert harness.events[0][2] == (f'Readiness probe failed: Get "http://127.0.0.1:'
                                    f'{server.port}/loop": stopped after 10 redirects')


async def test_https_with_a_self_signed_certificate(harness: Harness, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    app = web.Application()

    async def secure(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/secure", secure)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    try:
        harness.add(pod(readinessProbe={"httpGet": {"scheme": "HTTPS", "port": port,
                                                    "path": "/secure"}, "periodSeconds": 1}))
        await until(lambda: harness.manager.ready(UID, "app"))
        assert harness.events == []
    finally:
        await runner.cleanup()


async def test_https_against_plain_http(harness: Harness, server: Server) -> None:
    harness.add(pod(readinessProbe={"httpGet": {"scheme": "HTTPS", "port": server.port,
                                                "path": "/"}, "periodSeconds": 1}))
    await until(lambda: bool(harness.events))  # no certificate check: the handshake is tried
    assert harness.events[0][2] == (f'Readiness probe failed: Get "https://127.0.0.1:{server.port}'
                                    '/": http: server gave HTTP response to HTTPS client')


# -- lifecycle -------------------------------------------------------------------------------

async def test_remove_pod_stops_probing(harness: Harness, server: Server) -> None:
    harness.add(pod(readinessProbe=http("/ready", server.port)))
    await until(lambda: harness.manager.ready(UID, "app"))
    harness.manager.remove_pod(UID)
    hits = server.hits["/ready"]
    await settle()
    assert server.hits["/ready"] == hits
    assert harness.manager.ready(UID, "app") is True  # forgotten: no probe, no veto
    assert "workers=0" in repr(harness.manager)


async def test_terminating_pod_keeps_liveness_quiet(harness: Harness, server: Server) -> None:
    server.codes["/live"] = 500
    spec = pod(livenessProbe=http("/live", server.port, failureThreshold=1))
    spec["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    harness.add(spec)
    await settle()
    assert harness.kinds("liveness") == [] and not server.hits


# -- helpers ---------------------------------------------------------------------------------

def test_ports_urls_and_errors() -> None:
    container = {"ports": [{"name": "web", "containerPort": 8080}]}
    assert resolve_port("web", container) == 8080
    assert resolve_port(80, container) == 80
    with pytest.raises(ValueError, match="invalid port number: 70000"):
        resolve_port(70000, container)
    assert url_text(probe_url({"path": "healthz?full=1"}, "10.0.0.5", 80)) == \
        "http://10.0.0.5:80/healthz?full=1"
    assert url_text(probe_url({"scheme": "HTTPS"}, "fd00::1", 443)) == "https://[fd00::1]:443/"
    assert join_host_port("fd00::1", 80) == "[fd00::1]:80"
    assert dial_error("10.0.0.5:80", ConnectionRefusedError(111, "x")) == \
        "dial tcp 10.0.0.5:80: connect: connection refused"
    assert dial_error("10.0.0.5:80", OSError(113, "x")) == \
        "dial tcp 10.0.0.5:80: connect: no route to host"


async def test_close_is_idempotent_and_closes_the_http_client(harness: Harness,
                                                              server: Server) -> None:
    harness.add(pod(readinessProbe=http("/ready", server.port)))
    await until(lambda: harness.manager.ready(UID, "app"))
    await harness.manager.close()
    await harness.manager.close()
