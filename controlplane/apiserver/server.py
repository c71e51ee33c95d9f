"""The API server's aiohttp application: routes, middlewares, and the lifetime of its caches.

Request path: limits (body size, in-flight, timeout) -> authentication -> metrics -> route ->
handler; any `APIError` becomes its Status, an unknown path 404, anything unexpected a logged
500. On start it opens one watch cache per resource and creates the default namespaces and the
`kubernetes` service. Services get their ClusterIPs and NodePorts from the ranges given here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from controlplane.api import errors
from controlplane.apiserver import authn, authz, discovery, kubernetes_service
from controlplane.apiserver.admission import Admission
from controlplane.apiserver.handlers import ResourceHandler, json_response
from controlplane.apiserver.nodeproxy import KubeletClientConfig
from controlplane.apiserver.registry.allocator import IPAllocator, PortAllocator
from controlplane.apiserver.registry.resources import RESOURCES, ResourceInfo
from controlplane.apiserver.registry.service_alloc import ServiceAllocation
from controlplane.apiserver.registry.store import Store
from controlplane.apiserver.storage.cacher import WatchCache
from controlplane.apiserver.storage.etcd import EtcdStorage
from controlplane.apiserver.storage.interface import Storage, StorageError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
REQUEST_TIMEOUT = 60.0
USER = web.RequestKey("user", authn.UserInfo)


class Metrics:
    """What /metrics shows, under kube-apiserver's names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("apiserver_request_total", "API requests",
                                ["verb", "resource", "code"], registry=self.registry)
        self.duration = Histogram("apiserver_request_duration_seconds", "API request latency",
                                  ["verb", "resource"], registry=self.registry)
        self.longrunning = Gauge("apiserver_longrunning_requests",
                                 "Long-running requests (watches, log follows, exec, attach) "
                                 "being served", ["verb", "resource"], registry=self.registry)
        self.etcd = Histogram("etcd_request_duration_seconds",
                              "etcd request latency by operation and object type",
                              ["operation", "type"], registry=self.registry,
                              buckets=(0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25,
                                       1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60))

    def etcd_request(self, operation: str, resource_type: str, seconds: float) -> None:
        self.etcd.labels(operation, resource_type).observe(seconds)


def _verb(request: web.Request) -> str:
    if request.method == "GET":
        return "WATCH" if request.query.get("watch") in ("true", "1") else "GET"
    return request.method


def _resource_of(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[2:]
    elif parts[:1] == ["apis"]:
        parts = parts[3:]
    else:
        return ""
    if len(parts) >= 3 and parts[0] == "namespaces":
        parts = parts[2:]
    return parts[0] if parts else ""


class APIServer:
    """Owns the stores, caches and the aiohttp app of one apiserver process."""

    def __init__(self, storage: Storage, *, tokens: authn.TokenFile | None = None,
                 authenticate: bool = True, server_address: str = "127.0.0.1:6443",
                 max_read: int = 400, max_write: int = 200,
                 service_cluster_ip_range: str = "10.96.0.0/12",
                 service_node_port_range: str = "30000-32767",
                 kubelet_client: KubeletClientConfig | None = None) -> None:
        self.storage = storage
        self.tokens = tokens
        self.authorizer: authz.Authorizer = authz.AlwaysAllow()  # RBAC replaces it later
        self.authenticate = authenticate
        self.server_address = server_address
        self.caches: dict[str, WatchCache] = {}
        self.stores: dict[ResourceInfo, Store] = {}
        for info in RESOURCES:
            cache = self.caches.setdefault(info.key_prefix, WatchCache(storage, info.key_prefix))
            self.stores[info] = Store(info, storage, cache)
        self.admission = Admission(self.caches["/registry/namespaces/"])
        for store in self.stores.values():
            store.admit = self.admission
        self.service_ips = IPAllocator(storage, service_cluster_ip_range)
        self.node_ports = PortAllocator(storage, service_node_port_range)
        self._store("", "services").hooks = ServiceAllocation(self.service_ips, self.node_ports)
        self.resources = ResourceHandler(self.stores)
        if kubelet_client is not None:  # how pods/log, exec and attach reach node agents
            self.resources.subresources.node_proxy.client = kubelet_client
        self.metrics = Metrics()
        if isinstance(storage, EtcdStorage):
            storage.observe = self.metrics.etcd_request
        self._reads = asyncio.Semaphore(max_read)
        self._writes = asyncio.Semaphore(max_write)
        # The user each TLS connection's verified client certificate names: it cannot change
        # while the connection lasts, and reading it back costs more than the rest of authn.
        self._cert_users: weakref.WeakKeyDictionary[Any, authn.UserInfo] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        return f"<APIServer {self.server_address} caches={len(self.caches)}>"

    async def start(self) -> None:
        for cache in self.caches.values():
            cache.start()
        await asyncio.gather(*(c.ready.wait() for c in self.caches.values()))
        await self.bootstrap()

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.caches.values()))

    def _store(self, group: str, resource: str) -> Store:
        return next(s for i, s in self.stores.items() if (i.group, i.resource) == (group, resource))

    async def bootstrap(self) -> None:
        """Create the default namespaces and the `kubernetes` service when they are missing
        (idempotent, safe in HA)."""
        namespaces = self._store("", "namespaces")
        for name in DEFAULT_NAMESPACES:
            try:
                await namespaces.create("", {"metadata": {"name": name}})
            except errors.AlreadyExists:
                pass
        # Admission (NamespaceLifecycle) reads namespaces from the cache: let it see `default`.
        default = await namespaces.get("", "default")
        await namespaces.cache.wait_fresh(int(default["metadata"]["resourceVersion"]))
        host, _, port = self.server_address.rpartition(":")
        await kubernetes_service.ensure(
            self._store("", "services"), self._store("", "endpoints"),
            self._store("discovery.k8s.io", "endpointslices"),
            cluster_ip=self.service_ips.first, address=host.strip("[]"), port=int(port))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._limits, self._authn],
                              client_max_size=4 * 1024 * 1024)
        app.router.add_get("/version", self.version)
        for path in ("/healthz", "/livez"):
            app.router.add_get(path, self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.serve_metrics)
        app.router.add_get("/api", self.core_discovery)
        app.router.add_get("/apis", self.group_discovery)
        app.router.add_get("/api/v1", self.resource_list_core)
        app.router.add_get("/apis/{group}", self.api_group)
        app.router.add_get("/apis/{group}/{version}", self.resource_list)
        app.router.add_get("/openapi/v3", self.openapi_root)
        app.router.add_get("/openapi/v3/{path:.+}", self.openapi_gv)
        app.router.add_route("*", "/api/v1/{tail:.+}", self.core_resource)
        app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self.group_resource)
        return app

    # -- middlewares -----------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        verb, resource = _verb(request), _resource_of(request.path)
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except errors.APIError as exc:
            code = exc.code
            return json_response(exc.status(), exc.code)
        except web.HTTPException as exc:
            code = exc.status
            if exc.status == 404:
                return json_response(errors.NotFound(
                    "the server could not find the requested resource").status(), 404)
            if exc.status == 413:
                return json_response(errors.RequestEntityTooLarge(
                    "the request body is too large").status(), 413)
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become 500
            log.exception("internal error on %s %s", request.method, request.path)
            return json_response(errors.InternalError(f"Internal error occurred: {exc}").status(),
                                 500)
        finally:
            self.metrics.requests.labels(verb, resource, str(code)).inc()
            if verb != "WATCH":
                self.metrics.duration.labels(verb, resource).observe(time.monotonic() - started)
            log.debug("request verb=%s path=%s code=%s", verb, request.path_qs, code)

    @web.middleware
    async def _limits(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > 3 * 1024 * 1024:
            raise errors.RequestEntityTooLarge("the request body is too large")
        long_running = request.query.get("watch") in ("true", "1") or request.query.get(
            "follow") == "true" or request.path.endswith(("/exec", "/attach", "/log"))
        if long_running:
            gauge = self.metrics.longrunning.labels(_verb(request), _resource_of(request.path))
            gauge.inc()
            try:
                return await handler(request)
            finally:
                gauge.dec()
        limit = self._reads if request.method == "GET" else self._writes
        if limit.locked():
            raise errors.TooManyRequests("Too many requests, please try again later.",
                                         retry_after=1)
        async with limit:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    return await handler(request)
            except TimeoutError:
                raise errors.Timeout("request did not complete within the allowed "
                                     "duration") from None

    @web.middleware
    async def _authn(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.authenticate and request.path not in PUBLIC_PATHS:
            request[USER] = self._user(request)
            authz.check(self.authorizer, attributes_of(request, request[USER]))
        return await handler(request)

    def _user(self, request: web.Request) -> authn.UserInfo:
        """`authn.authenticate_request`, the certificate's user remembered per connection."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            user = self._cert_users.get(ssl_object)
            if user is None:
                user = authn.user_from_certificate(ssl_object.getpeercert())
                if user is not None:
                    self._cert_users[ssl_object] = user
            if user is not None:
                return user
        return authn.authenticate_request(request, self.tokens)

    # -- endpoints -------------------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.KUBERNETES_VERSION)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        checks = []
        try:
            await asyncio.wait_for(self.storage.current_revision(), 2)
            checks.append("[+]etcd ok")
        except (StorageError, TimeoutError) as exc:
            checks.append(f"[-]etcd failed: {exc}")
        caches_ready = all(c.ready.is_set() for c in self.caches.values())
        checks.append("[+]informer-sync ok" if caches_ready else "[-]informer-sync failed")
        healthy = all(c.startswith("[+]") for c in checks)
        if request.query.get("verbose") is not None or not healthy:
            text = "\n".join(checks) + ("\nreadyz check passed\n" if healthy else
                                        "\nreadyz check failed\n")
        else:
            text = "ok"
        return web.Response(text=text, status=200 if healthy else 500)

    async def serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            content_type="text/plain", charset="utf-8")

    async def core_discovery(self, request: web.Request) -> web.Response:
        if discovery.wants_aggregated(request.headers.get("Accept")):
            return json_response(discovery.aggregated(core=True),
                                 content_type=discovery.AGGREGATED_CONTENT_TYPE)
        return json_response(discovery.api_versions(self.server_address))

    async def group_discovery(self, request: web.Request) -> web.Response:
        if discovery.wants_aggregated(request.headers.get("Accept")):
            return json_response(discovery.aggregated(core=False),
                                 content_type=discovery.AGGREGATED_CONTENT_TYPE)
        return json_response(discovery.api_group_list())

    async def resource_list_core(self, request: web.Request) -> web.Response:
        return json_response(discovery.api_resource_list("", "v1"))

    async def api_group(self, request: web.Request) -> web.Response:
        group = discovery.api_group(request.match_info["group"])
        if group is None:
            raise web.HTTPNotFound()
        return json_response(group)

    async def resource_list(self, request: web.Request) -> web.Response:
        found = discovery.api_resource_list(request.match_info["group"],
                                            request.match_info["version"])
        if found is None:
            raise web.HTTPNotFound()
        return json_response(found)

    async def openapi_root(self, request: web.Request) -> web.Response:
        return json_response(discovery.openapi_root())

    async def openapi_gv(self, request: web.Request) -> web.Response:
        parts = request.match_info["path"].split("/")
        if parts[:1] == ["api"] and len(parts) == 2:
            doc = discovery.openapi_group_version("", parts[1])
        elif parts[:1] == ["apis"] and len(parts) == 3:
            doc = discovery.openapi_group_version(parts[1], parts[2])
        else:
            doc = None
        if doc is None:
            raise web.HTTPNotFound()
        return json_response(doc)

    async def core_resource(self, request: web.Request) -> web.StreamResponse:
        return await self.resources.handle(request, "", "v1", _segments(request))

    async def group_resource(self, request: web.Request) -> web.StreamResponse:
        return await self.resources.handle(request, request.match_info["group"],
                                           request.match_info["version"], _segments(request))


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def attributes_of(request: web.Request, user: authn.UserInfo) -> authz.Attributes:
    """Kubernetes' request attributes (verb, group, resource, ...) of an HTTP request."""
    parts = [p for p in request.path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return authz.Attributes(user, request.method.lower(), path=request.path)
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    if resource == "namespaces" and not namespace and name:
        namespace = name
    subresource = rest[2] if len(rest) > 2 else ""
    if request.method == "GET":
        verb = "watch" if request.query.get("watch") in ("true", "1") else (
            "get" if name else "list")
    elif request.method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = _VERBS.get(request.method, request.method.lower())
    return authz.Attributes(user, verb, group, resource, subresource, namespace, name,
                            request.path)


def _segments(request: web.Request) -> list[str]:
    return [s for s in request.match_info["tail"].split("/") if s]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2)
