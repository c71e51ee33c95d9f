"""`AgentServer`: the node's HTTPS server, what the kubelet serves on port 10250.

Endpoints: `/containerLogs/{ns}/{pod}/{container}` (plain text, optionally followed), `/exec/...`
and `/attach/...` (WebSocket, bridged to containerd's streaming server), `/healthz`, `/pods`
(the pods this agent runs, from the callable it is given) and `/metrics`. Containers are found
in the runtime by their CRI labels, so the server works before, and without, the pod workers.
Clients must present a certificate signed by the given CA (the apiserver's kubelet client
certificate); there is no further authorization. Errors are Kubernetes Statuses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from agent.server import streaming
from agent.server.containers import ContainerLookup, PodLister, Runtime
from agent.server.logs import LogOptions, stream_log
from agent.server.spdy import HandshakeError
from agent.server.upstream import open_session
from controlplane.api import errors
from cri.errors import CRIError
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status(error: errors.APIError) -> web.Response:
    return web.Response(body=json.dumps(error.status()).encode(), status=error.code,
                        content_type="application/json")


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+ with `cert`/`key`, requiring a client certificate signed by `client_ca`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Metrics:
    def __init__(self, pods: PodLister) -> None:
        self.registry = CollectorRegistry()
        self.pods = Gauge("pinnace_agent_running_pods", "Pods this agent runs",
                          registry=self.registry)
        self.pods.set_function(lambda: float(sum(1 for _ in pods())))
        self.streams = Gauge("pinnace_agent_active_streams", "Open log, exec and attach streams",
                             ["kind"], registry=self.registry)
        self.requests = Counter("pinnace_agent_server_requests_total", "Requests served",
                                ["endpoint", "code"], registry=self.registry)


class AgentServer:
    """The node's HTTPS server over one runtime; `start` it, `stop` it."""

    def __init__(self, runtime: Runtime, *, node_name: str, log_root: Path,
                 pods: PodLister | None = None) -> None:
        self.runtime = runtime
        self.node_name = node_name
        self.log_root = log_root  # relative log paths in container statuses are under it
        self.pods: PodLister = pods or (lambda: ())
        self.lookup = ContainerLookup(runtime, node_name=node_name, pods=self.pods)
        self.metrics = Metrics(self.pods)
        self.port = 0  # the bound port once started
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"<AgentServer node={self.node_name} port={self.port}>"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/pods", self.list_pods)
        app.router.add_get("/metrics", self.serve_metrics)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        for kind in ("exec", "attach"):
            for method in ("GET", "POST"):
                app.router.add_route(method, f"/{kind}/{{namespace}}/{{pod}}/{{container}}",
                                     self.exec if kind == "exec" else self.attach)
        return app

    async def start(self, *, cert: Path, key: Path, client_ca: Path, host: str = "0.0.0.0",
                    port: int = 10250) -> int:
        """Serve on host:port (0: any free port) over TLS; return the bound port."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port,
                           ssl_context=server_context(cert, key, client_ca))
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("serving node=%s on %s:%s", self.node_name, host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = request.path.split("/")[1] if "/" in request.path else request.path
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except errors.APIError as exc:
            code = exc.code
            return _status(exc)
        except web.HTTPException as exc:
            code = exc.status
            if exc.status == 404:
                return _status(errors.NotFound("the server could not find the requested "
                                               "resource"))
            raise
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become 500
            log.exception("internal error on %s %s", request.method, request.path)
            return _status(errors.InternalError(f"Internal error occurred: {exc}"))
        finally:
            self.metrics.requests.labels(endpoint, str(code)).inc()

    # -- endpoints -------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def list_pods(self, request: web.Request) -> web.Response:
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list(self.pods())}
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    async def serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            content_type="text/plain", charset="utf-8")

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        options = LogOptions.from_query(request.query)
        status = await self.lookup.for_logs(ns, pod, name, previous=options.previous)
        if not status.log_path:
            raise errors.BadRequest(f'container "{name}" in pod "{pod}" has no log file')
        path = self.log_root / status.log_path  # an absolute log_path stays as it is
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        gauge = self.metrics.streams.labels("logs")
        gauge.inc()

        async def keep_following() -> bool:
            if request.transport is None or request.transport.is_closing():
                return False  # the reader went away
            return await self.lookup.is_running(status.id)

        try:
            await stream_log(path, options, response.write, keep_following)
            await response.write_eof()
        except ConnectionError:
            log.debug("log reader of %s/%s/%s went away", ns, pod, name)
        finally:
            gauge.dec()
        return response

    async def exec(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, "exec")

    async def attach(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, "attach")

    async def _stream(self, request: web.Request, kind: str) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        options = streaming.stream_options(request.query)
        command = request.query.getall("command", [])
        if kind == "exec" and not command:
            raise errors.BadRequest("you must specify a command to run")
        container = await self.lookup.running(ns, pod, name)
        streaming.negotiate(request)
        try:
            if kind == "exec":
                url = await self.runtime.exec(api.ExecRequest(
                    container_id=container.id, cmd=command, tty=options.tty,
                    stdin=options.stdin, stdout=options.stdout, stderr=options.stderr))
            else:
                url = await self.runtime.attach(api.AttachRequest(
                    container_id=container.id, tty=options.tty, stdin=options.stdin,
                    stdout=options.stdout, stderr=options.stderr))
            session = await open_session(url, options)
        except (CRIError, HandshakeError, OSError) as exc:
            # containerd's status can still say RUNNING for some ms after the exit it refused
            if "CONTAINER_EXITED" in str(exc) or not await self.lookup.is_running(container.id):
                # It exited meanwhile (`kubectl run -i` of a quick command): as found exited.
                raise errors.BadRequest(f'container not found ("{name}")') from exc
            doing = "executing command in" if kind == "exec" else "attaching to"
            raise errors.InternalError(f"error {doing} container: {exc}") from exc
        log.info("%s pod=%s/%s container=%s command=%s", kind, ns, pod, name, command)
        gauge = self.metrics.streams.labels(kind)
        gauge.inc()
        try:
            return await streaming.bridge(request, session)
        finally:
            gauge.dec()
            await session.close()
