"""Health checks as kube-proxy serves them: the proxy's /healthz and /livez, and Services' ports.

Two kinds of HTTP server, both plain aiohttp:
- the proxy's own (`--healthz-bind-address`, default 0.0.0.0:10256): `/healthz` answers 200
  unless a sync is overdue (a change, or a failed sync, waiting longer than the health timeout,
  2 x the sync period) or our Node is being deleted; `/livez` the same without the Node check.
  The body is kube-proxy's: `{"lastUpdated": ..., "currentTime": ..., "nodeEligible": ...}`.
- one per health check node port: a LoadBalancer Service with externalTrafficPolicy Local has
  `spec.healthCheckNodePort` (the apiserver allocates it); every node answers `/` on it with 200
  when it has ready endpoints of that Service and the proxy is healthy, 503 otherwise, so that
  a load balancer sends traffic only to nodes that can serve it locally. Ports open and close
  after each sync, as the Services come and go; local endpoint counts are taken at each sync.
The decisions are the pure functions at the top; the servers only do I/O. A port that cannot
be bound is logged and retried; it never stops the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from controlplane.client.informer import Informer
from netproxy.model import Endpoint, ServicePortName

if TYPE_CHECKING:
    from netproxy.metrics import ProxyMetrics

log = logging.getLogger(__name__)
Object = dict[str, Any]
RETRY_SECONDS = 5.0  # kube-proxy retries a server that cannot listen every 5 s


# -- decisions (pure) ------------------------------------------------------------------------------

def parse_bind_address(text: str) -> tuple[str, int] | None:
    """"host:port" (or "[v6]:port") as (host, port); "" disables the server (None)."""
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid bind address {text!r} (want IP:port, e.g. 0.0.0.0:10256)")
    return host.strip("[]") or "0.0.0.0", int(port)


def _bind_flag(text: str) -> tuple[str, int] | None:
    try:
        return parse_bind_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_flags(p: argparse.ArgumentParser) -> None:
    """kube-proxy's flags for the two servers ("" turns one off)."""
    p.add_argument("--healthz-bind-address", type=_bind_flag, default="0.0.0.0:10256",
                   help="IP:port of /healthz and /livez (default 0.0.0.0:10256; '' for off)")
    p.add_argument("--metrics-bind-address", type=_bind_flag, default="127.0.0.1:10249",
                   help="IP:port of /metrics (default 127.0.0.1:10249; '' for off)")


def config_of(args: argparse.Namespace) -> HealthConfig:
    """The servers' settings; a sync is overdue after 2 x --iptables-sync-period."""
    return HealthConfig(args.healthz_bind_address, args.metrics_bind_address,
                        health_timeout=2 * args.iptables_sync_period)


def proxy_healthy(now: float, oldest_pending: float | None, timeout: float) -> bool:
    """kube-proxy's rule: healthy unless a sync has been owed for `timeout` seconds or more."""
    return oldest_pending is None or now - oldest_pending < timeout


def node_eligible(node: Object | None) -> bool:
    """A node being deleted stops taking load-balancer traffic (its /healthz says 503)."""
    return not ((node or {}).get("metadata") or {}).get("deletionTimestamp")


def health_check_node_port(service: Object) -> int:
    """The Service's health check node port, or 0 when it has none we should serve."""
    spec = service.get("spec") or {}
    port = spec.get("healthCheckNodePort")
    if spec.get("type") != "LoadBalancer" or spec.get("externalTrafficPolicy") != "Local":
        return 0
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= 65535:
        if port:
            meta = service.get("metadata") or {}
            log.warning("service %s/%s: healthCheckNodePort %r is out of range; not serving it",
                        meta.get("namespace"), meta.get("name"), port)
        return 0
    return port


def local_ready_endpoints(endpoints: Mapping[ServicePortName, tuple[Endpoint, ...]],
                          node_name: str) -> dict[str, int]:
    """Ready endpoints on this node per Service (namespace/name); the busiest port counts."""
    counts: dict[str, int] = {}
    for spn, eps in endpoints.items():
        n = sum(1 for e in eps if e.ready and e.node_name == node_name)
        if n:
            counts[spn.service] = max(n, counts.get(spn.service, 0))
    return counts


def service_health(service: str, local_endpoints: int, healthy: bool) -> tuple[int, Object]:
    """The status and body a health check node port answers for `service` (namespace/name)."""
    namespace, _, name = service.partition("/")
    body = {"service": {"namespace": namespace, "name": name},
            "localEndpoints": local_endpoints, "serviceProxyHealthy": healthy}
    return (200 if local_endpoints > 0 and healthy else 503), body


def ports_to_serve(wanted: Mapping[str, int]) -> dict[int, str]:
    """Port -> Service; two Services claiming one port (never from our apiserver): first wins."""
    by_port: dict[int, str] = {}
    for service in sorted(wanted):
        port = wanted[service]
        if port in by_port:
            log.warning("service %s: healthCheckNodePort %d is %s's already; not serving it",
                        service, port, by_port[port])
        elif port:
            by_port[port] = service
    return by_port


def go_time(wall: float | None) -> str:
    """A wall-clock time as Go's time.Time prints it (kube-proxy's /healthz body)."""
    if wall is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")


# -- the proxy's own health ------------------------------------------------------------------------

class SyncState(Protocol):
    """What the health server reads from the proxier (clock times from `clock`)."""

    last_synced: float | None
    oldest_pending: float | None
    clock: Callable[[], float]


@dataclass(frozen=True)
class HealthConfig:
    """Where the servers listen (None: off) and how long a sync may be owed."""

    healthz: tuple[str, int] | None = ("0.0.0.0", 10256)
    metrics: tuple[str, int] | None = ("127.0.0.1", 10249)
    health_timeout: float = 60.0  # kube-proxy: 2 x the sync period
    node_port_host: str = "0.0.0.0"  # where health check node ports listen


class ProxyHealth:
    """Answers /healthz and /livez from the proxier's sync times and our Node's state."""

    def __init__(self, state: SyncState, node_name: str, timeout: float,
                 count: Callable[[str, int], None] | None = None) -> None:
        self.state = state
        self.node_name = node_name
        self.timeout = timeout
        self.count = count  # (path, code): the metrics' healthz/livez counters
        self.eligible = True

    def __repr__(self) -> str:
        return f"<ProxyHealth node={self.node_name} healthy={self.healthy()}>"

    def on_node(self, node: Object) -> None:
        if ((node.get("metadata") or {}).get("name")) == self.node_name:
            self.eligible = node_eligible(node)

    def healthy(self) -> bool:
        return proxy_healthy(self.state.clock(), self.state.oldest_pending, self.timeout)

    def body(self) -> Object:
        """kube-proxy's body: the last successful sync and now (wall clock, Go format)."""
        now, wall = self.state.clock(), time.time()
        last = self.state.last_synced
        return {"lastUpdated": go_time(None if last is None else wall - (now - last)),
                "currentTime": go_time(wall), "nodeEligible": self.eligible}

    async def healthz(self, request: web.Request) -> web.Response:
        ok = self.healthy() and (request.path == "/livez" or self.eligible)
        code = 200 if ok else 503
        if self.count is not None:
            self.count(request.path, code)
        return _json(code, self.body())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/livez", self.healthz)
        return app


def _json(code: int, body: Object, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=code, text=json.dumps(body), content_type="application/json",
                        headers={"X-Content-Type-Options": "nosniff", **(headers or {})})


async def serve(app: web.Application, address: tuple[str, int], what: str) -> None:
    """Serve `app` on `address` until cancelled; retry every few seconds while it cannot bind."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    try:
        while True:
            try:
                await web.TCPSite(runner, *address).start()
                break
            except OSError as exc:
                log.error("%s: cannot listen on %s:%d (%s); retrying in %.0fs", what,
                          *address, exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
        log.info("%s serving on %s:%d", what, *address)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# -- Services' health check node ports -------------------------------------------------------------

class ServiceHealthServers:
    """One listener per health check node port, answering for its Service. One event loop."""

    def __init__(self, node_name: str, healthy: Callable[[], bool], host: str = "0.0.0.0"
                 ) -> None:
        self.node_name = node_name
        self.healthy = healthy
        self.host = host
        self.wanted: dict[str, int] = {}  # Service -> port, from the informer
        self.counts: dict[str, int] = {}  # Service -> ready local endpoints, at the last sync
        self.serving: dict[int, str] = {}  # port -> Service, listening now
        self._sites: dict[int, web.TCPSite] = {}
        self._runner: web.AppRunner | None = None
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"<ServiceHealthServers node={self.node_name} ports={sorted(self.serving)}>"

    def on_service(self, previous: Object | None, current: Object | None) -> None:
        """Informer handler: record the Service's port (served after the next sync)."""
        obj = current or previous or {}
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        port = health_check_node_port(current) if current is not None else 0
        if port:
            self.wanted[key] = port
        else:
            self.wanted.pop(key, None)

    def sync_endpoints(self, endpoints: Mapping[ServicePortName, tuple[Endpoint, ...]]) -> None:
        """After a sync: take the local counts and let the ports follow the Services."""
        self.counts = local_ready_endpoints(endpoints, self.node_name)
        self._wake.set()

    async def handle(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        service = self.serving.get(int(sockname[1])) if sockname else None
        if service is None:
            return web.Response(status=404, text="no service health check on this port\n")
        count = self.counts.get(service, 0)
        code, body = service_health(service, count, self.healthy())
        return _json(code, body, {"X-Load-Balancing-Endpoint-Weight": str(count)})

    async def reconcile(self) -> bool:
        """Open and close listeners to match the Services; False if a port could not open."""
        if self._runner is None:
            app = web.Application()
            app.router.add_get("/{tail:.*}", self.handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                         shutdown_timeout=1)
            await self._runner.setup()
        desired = ports_to_serve(self.wanted)
        for port in [p for p in self._sites if desired.get(p) != self.serving.get(p)]:
            log.info("closing health check node port %d of %s", port, self.serving.get(port))
            await self._sites.pop(port).stop()
            self.serving.pop(port, None)
        complete = True
        for port, service in sorted(desired.items()):
            if port in self._sites:
                continue
            site = web.TCPSite(self._runner, self.host, port)
            try:
                await site.start()
            except OSError as exc:
                log.error("service %s: cannot listen on health check node port %d (%s); "
                          "retrying", service, port, exc)
                complete = False
                continue
            log.info("service %s: serving health checks on port %d", service, port)
            self._sites[port], self.serving[port] = site, service
        return complete

    async def loop(self) -> None:
        """Reconcile after every sync (and retry ports that failed) until cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not await self.reconcile():
                    await asyncio.sleep(RETRY_SECONDS)
                    self._wake.set()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop listening on every port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._sites.clear()
        self.serving.clear()


# -- wiring ----------------------------------------------------------------------------------------

class Proxied(SyncState, Protocol):
    """The proxier as the servers see it."""

    @property
    def endpoints(self) -> Mapping[ServicePortName, tuple[Endpoint, ...]]: ...
    @property
    def services(self) -> Sized: ...
    @property
    def sync_observers(self) -> list[Callable[[float, bool, bool], None]]: ...


class NodeServers:
    """A netproxy's health and metrics servers, fed by its proxier and informers."""

    def __init__(self, config: HealthConfig, proxier: Proxied, node_name: str) -> None:
        self.config = config
        self.proxier = proxier
        self.metrics: ProxyMetrics | None = None  # prometheus_client loads only when served
        if config.metrics is not None:
            from netproxy.metrics import ProxyMetrics

            self.metrics = ProxyMetrics(proxier)
            proxier.sync_observers.append(self.metrics.observe_sync)
        self.proxy = ProxyHealth(proxier, node_name, config.health_timeout,
                                 self.metrics.count_health if self.metrics else None)
        self.services = ServiceHealthServers(node_name, self.proxy.healthy,
                                             config.node_port_host)
        proxier.sync_observers.append(self._synced)

    def __repr__(self) -> str:
        return f"<NodeServers {self.config} {self.services!r}>"

    def _synced(self, seconds: float, full: bool, ok: bool) -> None:
        if ok:
            self.services.sync_endpoints(self.proxier.endpoints)

    def wire(self, services: Informer, nodes: Informer) -> None:
        """Handlers on the daemon's informers (before they start)."""
        track = self.services.on_service
        services.add_handlers(on_add=lambda o: track(None, o), on_update=track,
                              on_delete=lambda o: track(o, None))
        nodes.add_handlers(on_add=self.proxy.on_node,
                           on_update=lambda _, n: self.proxy.on_node(n))

    def tasks(self) -> list[tuple[str, Callable[[], Any]]]:
        """(name, coroutine function) of each root task to run."""
        tasks: list[tuple[str, Callable[[], Any]]] = [
            ("health check node ports", self.services.loop)]
        if self.config.healthz is not None:
            address = self.config.healthz
            tasks.append(("healthz", lambda: serve(self.proxy.app(), address, "healthz")))
        if self.config.metrics is not None and self.metrics is not None:
            metrics, app = self.config.metrics, self.metrics.app()
            tasks.append(("metrics", lambda: serve(app, metrics, "metrics")))
        return tasks
