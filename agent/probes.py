"""Liveness, readiness and startup probes: one asyncio task per (pod uid, container, kind).

A worker follows the kubelet's prober (pkg/kubelet/prober/worker.go): nothing runs until the
container has an id and initialDelaySeconds have passed since it was first seen; readiness starts
False, liveness True, startup "not started"; liveness and readiness wait for the startup probe to
pass, and startup stops once it has; a result is set only after failureThreshold (or
successThreshold) consecutive equal outcomes; a liveness or startup failure puts the worker on hold
until a new container id appears. A probe that errors (named port missing, runtime error) is thrown
away. `on_result` hears each change of a result; `on_event` hears every failed probe, worded as the
kubelet's Unhealthy and ProbeWarning events. The clock and the sleep are injectable for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from cri import errors
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)

KINDS = ("startup", "readiness", "liveness")
FIELDS = {"startup": "startupProbe", "readiness": "readinessProbe", "liveness": "livenessProbe"}
INITIAL: dict[str, bool | None] = {"startup": None, "readiness": False, "liveness": True}
USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024  # bytes of exec output and response body kept, as the kubelet keeps
MAX_REDIRECTS = 10
MAX_RETRIES = 3  # attempts when a probe errors (not when it fails)

OnResult = Callable[[str, str, str, bool, str], None]  # uid, container, kind, result, message
OnEvent = Callable[[str, str, str, str], None]  # uid, container, reason, message
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class ExecRuntime(Protocol):
    """The part of `cri.runtime.RuntimeClient` (and `cri.fake.FakeRuntime`) probes use."""

    async def exec_sync(self, container_id: str, cmd: Sequence[str], exec_timeout: int = 0, *,
                        timeout: float | None = None) -> api.ExecSyncResponse: ...


@dataclass(frozen=True)
class Probe:
    """A container's probe with Kubernetes' defaults filled in (seconds may be fractions)."""

    handler: Mapping[str, Any]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Probe:
        return cls(handler=spec, initial_delay=float(spec.get("initialDelaySeconds") or 0),
                   period=float(spec.get("periodSeconds") or 10),
                   timeout=float(spec.get("timeoutSeconds") or 1),
                   success_threshold=int(spec.get("successThreshold") or 1),
                   failure_threshold=int(spec.get("failureThreshold") or 3))


@dataclass
class Outcome:
    """One probe run: `result` is success, warning, failure or error; `output` the kubelet's
    text for it (the HTTP body, the exec output, the dial error...)."""

    result: str
    output: str = ""


@dataclass
class _Target:
    """What a container's workers probe; owned by the manager, replaced by `add_pod`."""

    pod: Mapping[str, Any]
    container: Mapping[str, Any]
    container_id: str = ""
    since: float = 0.0  # clock() when this container id was first seen
    pod_ip: str = ""


@dataclass
class _Worker:
    """One probe loop's state; only its own task changes it (and `add_pod` its wakeup)."""

    uid: str
    name: str
    kind: str
    probe: Probe
    value: bool | None  # None: no result yet (a startup probe that has not decided)
    container_id: str = ""  # the container the current value is for
    last: bool | None = None  # the last outcome, and how many times in a row it came
    run: int = 0
    on_hold: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class ProbeManager:
    """Runs the probes of the pods on this node and remembers their latest results."""

    def __init__(self, runtime: ExecRuntime, *, on_result: OnResult,
                 on_event: OnEvent | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._runtime = runtime
        self._on_result = on_result
        self._on_event = on_event
        self._clock = clock
        self._sleep = sleep
        self._targets: dict[tuple[str, str], _Target] = {}  # (uid, container) -> target
        self._workers: dict[tuple[str, str, str], _Worker] = {}  # (uid, container, kind)
        self._session: aiohttp.ClientSession | None = None  # created on the first httpGet

    def __repr__(self) -> str:
        return f"<ProbeManager pods={len({k[0] for k in self._targets})} " \
               f"workers={len(self._workers)}>"

    def add_pod(self, pod: Mapping[str, Any], container_ids: Mapping[str, str],
                pod_ip: str) -> None:
        """Start (or update) the probes of `pod` (containers and sidecars): call it again
        whenever a container starts or stops. `container_ids` names the running containers;
        the others are not probed. A probe's settings are read once, as the kubelet does."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        spec = pod.get("spec") or {}
        for container in list(spec.get("containers") or []) + [
                c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]:
            name = str(container.get("name", ""))
            target = self._targets.setdefault((uid, name), _Target(pod, container))
            changed = container_ids.get(name, "") != target.container_id
            target.pod, target.container, target.pod_ip = pod, container, pod_ip
            if changed:
                target.container_id, target.since = container_ids.get(name, ""), self._clock()
            for kind in KINDS:
                worker = self._workers.get((uid, name, kind))
                if worker is None and isinstance(container.get(FIELDS[kind]), Mapping):
                    worker = _Worker(uid, name, kind, Probe.from_spec(container[FIELDS[kind]]),
                                     INITIAL[kind])
                    self._workers[(uid, name, kind)] = worker
                    worker.task = asyncio.get_running_loop().create_task(
                        self._loop(worker), name=f"probe {kind} {uid}/{name}")
                elif worker is not None and changed:
                    worker.wake.set()

    def remove_pod(self, uid: str) -> None:
        """Stop the pod's probes and forget their results."""
        for key in [k for k in self._workers if k[0] == uid]:
            task = self._workers.pop(key).task
            if task is not None:
                task.cancel()
        for target in [k for k in self._targets if k[0] == uid]:
            del self._targets[target]

    def ready(self, uid: str, name: str) -> bool:
        """Whether the readiness probe passes (True without one)."""
        worker = self._workers.get((uid, name, "readiness"))
        return worker is None or worker.value is True

    def started(self, uid: str, name: str) -> bool:
        """Whether the startup probe has passed (True without one)."""
        worker = self._workers.get((uid, name, "startup"))
        return worker is None or worker.value is True

    async def close(self) -> None:
        """Stop every probe and close the HTTP client."""
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for uid in {k[0] for k in self._workers}:
            self.remove_pod(uid)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the worker ------------------------------------------------------------------------------

    async def _loop(self, worker: _Worker) -> None:
        while True:
            try:
                wait = await self._tick(worker)
            except Exception:  # a probe loop never dies of one bad run
                log.exception("probe failed pod=%s container=%s kind=%s",
                              worker.uid, worker.name, worker.kind)
                wait = worker.probe.period
            if worker.wake.is_set():
                worker.wake.clear()
                continue
            sleeper = asyncio.ensure_future(self._sleep(wait))
            waker = asyncio.ensure_future(worker.wake.wait())
            try:
                await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            worker.wake.clear()

    async def _tick(self, worker: _Worker) -> float:
        """Probe once if the container is due (doProbe); return how long to wait next."""
        target = self._targets.get((worker.uid, worker.name))
        probe = worker.probe
        if target is None or not target.container_id:
            if worker.kind == "readiness":
                self._set(worker, False, "")
            return probe.period
        if target.container_id != worker.container_id:  # a new container: start afresh
            worker.container_id, worker.last, worker.run, worker.on_hold = \
                target.container_id, None, 0, False
            self._set(worker, INITIAL[worker.kind], "")
        if worker.on_hold:
            return probe.period
        if (target.pod.get("metadata") or {}).get("deletionTimestamp") \
                and worker.kind != "readiness":
            self._set(worker, True, "")  # let a terminating pod stop quietly
            return probe.period
        remaining = target.since + probe.initial_delay - self._clock()
        if remaining > 0:
            return remaining
        if self.started(worker.uid, worker.name) == (worker.kind == "startup"):
            return probe.period  # startup is done, or the others wait for it
        outcome = await self._probe(worker, target)
        if self._targets.get((worker.uid, worker.name)) is target \
                and target.container_id == worker.container_id:  # not replaced meanwhile
            self._record(worker, outcome)
        return probe.period

    def _record(self, worker: _Worker, outcome: Outcome) -> None:
        title = worker.kind.capitalize()
        if outcome.result == "error":
            self._event(worker, "Unhealthy",
                        f"{title} probe errored and resulted in unknown state: {outcome.output}")
            return
        if outcome.result == "warning":
            self._event(worker, "ProbeWarning", f"{title} probe warning: {outcome.output}")
        success = outcome.result in ("success", "warning")
        message = "" if success else f"{title} probe failed: {outcome.output}"
        if not success:
            self._event(worker, "Unhealthy", message)
        worker.run = worker.run + 1 if worker.last == success else 1
        worker.last = success
        threshold = worker.probe.success_threshold if success else worker.probe.failure_threshold
        if worker.run < threshold:
            return
        self._set(worker, success, message)
        if not success and worker.kind != "readiness":
            worker.on_hold, worker.run = True, 0  # wait for the container to be replaced
        if success and worker.kind == "startup":
            for kind in ("readiness", "liveness"):
                other = self._workers.get((worker.uid, worker.name, kind))
                if other is not None:
                    other.wake.set()

    def _set(self, worker: _Worker, value: bool | None, message: str) -> None:
        if value != worker.value:
            worker.value = value
            if value is not None:
                self._on_result(worker.uid, worker.name, worker.kind, value, message)

    def _event(self, worker: _Worker, reason: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event(worker.uid, worker.name, reason, message)

    # -- the probes ------------------------------------------------------------------------------

    async def _probe(self, worker: _Worker, target: _Target) -> Outcome:
        outcome = Outcome("error")
        for _ in range(MAX_RETRIES):
            outcome = await self._run(worker.probe, target)
            if outcome.result != "error":
                break
        return outcome

    async def _run(self, probe: Probe, target: _Target) -> Outcome:
        handler, timeout = probe.handler, probe.timeout
        try:
            if isinstance(handler.get("exec"), Mapping):
                command = [str(arg) for arg in handler["exec"].get("command") or []]
                return await self._exec(target.container_id, command, timeout)
            if isinstance(handler.get("httpGet"), Mapping):
                action = handler["httpGet"]
                port = resolve_port(action.get("port"), target.container)
                return await self._http(action, action.get("host") or target.pod_ip, port,
                                        timeout)
            if isinstance(handler.get("tcpSocket"), Mapping):
                action = handler["tcpSocket"]
                port = resolve_port(action.get("port"), target.container)
                return await tcp_probe(action.get("host") or target.pod_ip, port, timeout)
            if isinstance(handler.get("grpc"), Mapping):
                return Outcome("error", "grpc probes are not supported by this node agent")
        except ValueError as exc:
            return Outcome("error", str(exc))
        return Outcome("error", "missing probe handler")

    async def _exec(self, container_id: str, command: list[str], timeout: float) -> Outcome:
        seconds = max(1, math.ceil(timeout))
        try:
            response = await asyncio.wait_for(
                self._runtime.exec_sync(container_id, command, seconds), seconds + 10)
        except (errors.DeadlineExceeded, TimeoutError):
            return Outcome("failure", f'command "{" ".join(command)}" timed out')
        except errors.CRIError as exc:
            return Outcome("error", str(exc))
        output = (response.stdout + response.stderr)[:MAX_OUTPUT].decode(errors="replace")
        return Outcome("success" if response.exit_code == 0 else "failure", output)

    async def _http(self, action: Mapping[str, Any], host: str, port: int,
                    timeout: float) -> Outcome:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False, force_close=True))
        return await http_probe(self._session, probe_url(action, host, port),
                                probe_headers(action), timeout)


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """Return the port number of a probe (a number, or the name of a container port)."""
    if isinstance(port, str):
        found = [p.get("containerPort") for p in container.get("ports") or []
                 if p.get("name") == port]
        if not found:
            raise ValueError(f'port "{port}" not found')
        port = found[0]
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid port number: {port}")
    return port


def probe_url(action: Mapping[str, Any], host: str, port: int) -> URL:
    """The URL of an httpGet probe, built as the kubelet's formatURL builds it."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    path = str(action.get("path") or "")
    base = f"{scheme}://{join_host_port(host, port)}"
    return URL(base + (path if path.startswith("/") or not path else "/" + path), encoded=True)


def url_text(url: URL) -> str:
    """The URL as Go prints it in errors: the port always shown."""
    return f"{url.scheme}://{join_host_port(url.host or '', url.port or 0)}{url.raw_path_qs}"


def probe_headers(action: Mapping[str, Any]) -> CIMultiDict[str]:
    """The request headers: the probe's own, then User-Agent and Accept unless it set them (an
    empty Accept removes it)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for header in action.get("httpHeaders") or []:
        headers.add(str(header.get("name", "")), str(header.get("value", "")))
    headers.setdefault("User-Agent", USER_AGENT)
    if "Accept" not in headers:
        headers["Accept"] = "*/*"
    elif not headers["Accept"]:
        del headers["Accept"]
    return headers


async def http_probe(session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str],
                     timeout: float) -> Outcome:
    """GET `url`: 2xx succeeds, 3xx succeeds with a warning (redirects are followed only on the
    same host, at most 10 times), anything else fails; errors are worded as Go's client's."""
    try:
        async with asyncio.timeout(timeout):
            for _ in range(MAX_REDIRECTS + 1):
                async with session.get(url, headers=headers, allow_redirects=False,
                                       skip_auto_headers=("Accept",)) as response:
                    body = (await response.content.read(MAX_OUTPUT)).decode(errors="replace")
                    location = response.headers.get("Location")
                    status = response.status
                if 300 <= status < 400 and location:
                    target = url.join(URL(location))
                    if target.host == url.host:
                        url = target
                        continue
                if 200 <= status < 300:
                    return Outcome("success", body)
                if 300 <= status < 400:
                    return Outcome("warning", f"Probe terminated redirects, Response body: {body}")
                return Outcome("failure", f"HTTP probe failed with statuscode: {status}")
            return Outcome("failure", f'Get "{url_text(url)}": stopped after {MAX_REDIRECTS} '
                                      "redirects")
    except TimeoutError:
        return Outcome("failure", f'Get "{url_text(url)}": context deadline exceeded '
                                  "(Client.Timeout exceeded while awaiting headers)")
    except aiohttp.ClientConnectorError as exc:
        address = join_host_port(url.host or "", url.port or 0)
        return Outcome("failure", f'Get "{url_text(url)}": {dial_error(address, exc.os_error)}')
    except aiohttp.ClientError as exc:
        return Outcome("failure", f'Get "{url_text(url)}": {exc}')


async def tcp_probe(host: str, port: int, timeout: float) -> Outcome:
    """Open a TCP connection to host:port within `timeout`."""
    address = join_host_port(host, port)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return Outcome("failure", f"dial tcp {address}: i/o timeout")
    except OSError as exc:
        return Outcome("failure", dial_error(address, exc))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Outcome("success")


def dial_error(address: str, exc: OSError) -> str:
    """Word a failed connect as Go's net.Dial does: `dial tcp 10.0.0.5:80: connect: connection
    refused`."""
    if isinstance(exc, ssl.SSLError):  # TLS to a plain HTTP server, or a failed handshake
        if exc.reason == "WRONG_VERSION_NUMBER":
            return "http: server gave HTTP response to HTTPS client"
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {address.rsplit(':', 1)[0]}: no such host"
    if isinstance(exc, TimeoutError):
        return f"dial tcp {address}: i/o timeout"
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"dial tcp {address}: connect: {reason[:1].lower()}{reason[1:]}"


def join_host_port(host: str, port: int) -> str:
    """host:port, with brackets around an IPv6 host (Go's net.JoinHostPort)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
