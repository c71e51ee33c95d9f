"""The REST client every component uses to talk to the apiserver (our "client-go" core).

Resources are addressed by (group, version, resource) plus namespace, name and subresource.
Failures arrive as `controlplane.api.errors` exceptions rebuilt from the server's Status, so a
controller catches `NotFound` or `Conflict` exactly as the apiserver raised them; a server that
cannot be reached is `ServiceUnavailable` naming the URL.

Memory: every TLS connection of asyncio's own event loop allocates a read buffer of
`asyncio.sslproto.SSLProtocol.max_size` (256 KiB) up front, and each watch holds a connection
for its whole life. A client lowers that class-wide size to `TLS_READ_BUFFER` (64 KiB) for its
process: lists and watch streams read as fast (TLS records are at most 16 KiB; a list of 1000
EndpointSlices measured the same), at a quarter of the memory per connection. (aiohttp's own
`read_bufsize` is only a flow-control threshold: it allocates nothing.)
"""

from __future__ import annotations

import json
from asyncio import sslproto
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from controlplane.api import errors
from controlplane.client.kubeconfig import ClientConfig

Object = dict[str, Any]
_BY_REASON: dict[str, type[errors.APIError]] = {
    cls.reason: cls for cls in (
        errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.NotFound,
        errors.MethodNotAllowed, errors.AlreadyExists, errors.Conflict, errors.Gone,
        errors.Expired, errors.RequestEntityTooLarge, errors.UnsupportedMediaType,
        errors.Invalid, errors.TooManyRequests, errors.InternalError,
        errors.ServiceUnavailable, errors.Timeout)
}
_BY_CODE = {400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
            404: errors.NotFound, 409: errors.Conflict, 410: errors.Gone, 422: errors.Invalid,
            429: errors.TooManyRequests, 503: errors.ServiceUnavailable}


def error_from_status(status: Object, code: int) -> errors.APIError:
    """Rebuild the APIError a Status describes."""
    cls = _BY_REASON.get(str(status.get("reason", ""))) or _BY_CODE.get(code,
                                                                          errors.InternalError)
    details = status.get("details") or {}
    causes = [errors.Cause(c.get("reason", ""), c.get("message", ""), c.get("field", ""))
              for c in details.get("causes") or []]
    error = cls(str(status.get("message", "")), name=details.get("name", ""),
                group=details.get("group", ""), kind=details.get("kind", ""), causes=causes)
    error.code = int(status.get("code") or code)
    return error


@dataclass(frozen=True)
class Resource:
    """A resource type: `Resource("apps", "v1", "deployments")`."""

    group: str
    version: str
    resource: str

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.resource}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes")
NAMESPACES = Resource("", "v1", "namespaces")
SERVICES = Resource("", "v1", "services")
ENDPOINTS = Resource("", "v1", "endpoints")
EVENTS = Resource("", "v1", "events")
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
REPLICASETS = Resource("apps", "v1", "replicasets")
DAEMONSETS = Resource("apps", "v1", "daemonsets")
JOBS = Resource("batch", "v1", "jobs")
CRONJOBS = Resource("batch", "v1", "cronjobs")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices")

TLS_READ_BUFFER = 64 * 1024


def _small_tls_read_buffers() -> None:
    """Lower asyncio's per-connection TLS read buffer to TLS_READ_BUFFER (never raise it)."""
    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


class RESTClient:
    """One keep-alive HTTP session to the apiserver. `close()` it when done."""

    def __init__(self, config: ClientConfig, *, user_agent: str = "pinnace",
                 timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        _small_tls_read_buffers()
        headers = {"User-Agent": user_agent, **config.headers()}
        connector = aiohttp.TCPConnector(ssl=config.ssl_context(), limit=64)
        self._session = aiohttp.ClientSession(config.server, connector=connector,
                                              headers=headers)

    def __repr__(self) -> str:
        return f"<RESTClient {self.config.server}>"

    async def close(self) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: dict[str, str] | None = None,
                      content_type: str = "application/json",
                      timeout: float | None = None) -> Object:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self._session.request(
                    method, path, data=data, params=params, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as response:
                payload = await response.read()
                return _decode(response.status, payload)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise errors.ServiceUnavailable(
                f"apiserver {self.config.server} unreachable: {exc!r}") from None

    async def get(self, res: Resource, name: str, namespace: str = "", *,
                  subresource: str = "") -> Object:
        return await self.request("GET", res.path(namespace, name, subresource))

    async def list(self, res: Resource, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", resource_version: str = "",
                   limit: int = 0) -> Object:
        params = _params(label_selector=label_selector, field_selector=field_selector,
                         resourceVersion=resource_version, limit=str(limit) if limit else "")
        return await self.request("GET", res.path(namespace), params=params, timeout=120)

    async def create(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "", name: str = "") -> Object:
        return await self.request("POST", res.path(namespace, name, subresource), body=obj)

    async def update(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "") -> Object:
        name = obj["metadata"]["name"]
        return await self.request("PUT", res.path(namespace, name, subresource), body=obj)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    subresource: str = "",
                    patch_type: str = "application/merge-patch+json",
                    field_manager: str = "") -> Object:
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request("PATCH", res.path(namespace, name, subresource), body=patch,
                                  params=params, content_type=patch_type)

    async def delete(self, res: Resource, name: str, namespace: str = "", *,
                     grace_period: int | None = None, propagation: str = "",
                     preconditions: Object | None = None) -> Object:
        options: Object = {}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        if propagation:
            options["propagationPolicy"] = propagation
        if preconditions:
            options["preconditions"] = preconditions
        return await self.request("DELETE", res.path(namespace, name), body=options or None)

    async def watch(self, res: Resource, namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    timeout_seconds: int = 300) -> AsyncIterator[Object]:
        """Yield watch events ({"type", "object"}) until the server ends the stream."""
        params = _params(watch="true", resourceVersion=resource_version,
                         labelSelector=label_selector, fieldSelector=field_selector,
                         allowWatchBookmarks="true", timeoutSeconds=str(timeout_seconds))
        try:
            async with self._session.get(
                    res.path(namespace), params=params,
                    timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30,
                                                  sock_connect=10)) as response:
                if response.status != 200:
                    _decode(response.status, await response.read())
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise errors.ServiceUnavailable(
                f"apiserver {self.config.server} watch interrupted: {exc!r}") from None


def _params(**values: str) -> dict[str, str]:
    names = {"label_selector": "labelSelector", "field_selector": "fieldSelector"}
    return {names.get(k, k): v for k, v in values.items() if v}


def _decode(status: int, payload: bytes) -> Object:
    try:
        body = json.loads(payload) if payload else {}
    except json.JSONDecodeError:
        body = {"message": payload.decode(errors="replace")[:200]}
    if status >= 400:
        if not isinstance(body, dict) or body.get("kind") != "Status":
            body = {"message": str(body)[:300], "code": status}
        raise error_from_status(body, status)
    if not isinstance(body, dict):
        raise errors.InternalError(f"unexpected response body: {str(body)[:100]}")
    return body
