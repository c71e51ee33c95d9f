"""pods/log, pods/exec and pods/attach: the apiserver's proxy to the node agent running the pod.

As kube-apiserver does: look up the pod (400 while it has no node), pick and check the container
(the only one, the `kubectl.kubernetes.io/default-container` annotation, or the one named), find
the node's address (InternalIP) and agent port (status.daemonEndpoints.kubeletEndpoint), then
relay over TLS, presenting the apiserver's kubelet client certificate and verifying the agent's
serving certificate against the kubelet CA (the cluster CA unless told otherwise). Logs stream
through as text; exec and attach are a WebSocket relayed frame by frame in the subprotocol the
client and the agent agreed on (v5.channel.k8s.io or v4). kubectl's SPDY fallback (a POST with
`Upgrade: SPDY/3.1`) gets the agent's own error when there is one, else a 400 saying SPDY is
not served, so the message a user sees is always the one that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from multidict import MultiMapping

from controlplane.api import errors
from controlplane.apiserver import pki
from controlplane.apiserver.registry.resources import ResourceInfo
from controlplane.apiserver.registry.store import Store

log = logging.getLogger(__name__)
Object = dict[str, Any]
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
DEFAULT_AGENT_PORT = 10250
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime",
              "limitBytes")
CONNECT_TIMEOUT = 10.0
CLIENT_CHECK_INTERVAL = 1.0  # seconds between checks that a log follower is still there
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_FILE = "apiserver-kubelet-client"  # .crt/.key in --cert-dir, kubeadm's names
NOT_UPGRADED = ("Upgrade request required: pods/exec and pods/attach are served over WebSocket "
                "(v5.channel.k8s.io or v4.channel.k8s.io) only; SPDY is not supported")


def _is_client_cert(path: Path) -> bool:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages


@dataclass(frozen=True)
class KubeletClientConfig:
    """How the apiserver authenticates to node agents and checks them (kube-apiserver's
    `--kubelet-client-certificate`, `--kubelet-client-key`, `--kubelet-certificate-authority`).
    `problem` says why there is no client certificate, for the error a user gets."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    problem: str = ("the apiserver has no client certificate for node agents: start it with "
                    "--kubelet-client-certificate and --kubelet-client-key")

    @classmethod
    def resolve(cls, *, cert: Path | None, key: Path | None, ca: Path | None,
                serving_cert: Path, serving_key: Path, cluster_ca: Path,
                cert_dir: Path | None = None) -> KubeletClientConfig:
        """The flags when given; else, when the apiserver keeps its own PKI in `cert_dir`, a
        client pair issued there from the cluster CA (as kubeadm does); else the serving pair
        if it is valid for client authentication; else a config that explains. The agents'
        certificates are checked against `ca`, else the cluster CA."""
        ca = ca or cluster_ca
        if cert is not None or key is not None:
            if cert is None or key is None:
                raise ValueError("--kubelet-client-certificate and --kubelet-client-key go "
                                 "together")
            return cls(cert, key, ca, "")
        if cert_dir is not None and (cert_dir / "ca.key").exists():
            pair = cert_dir / f"{KUBELET_CLIENT_FILE}.crt", cert_dir / f"{KUBELET_CLIENT_FILE}.key"
            if not (pair[0].exists() and pair[1].exists()):
                pki.issue_client_cert(cert_dir / "ca.crt", cert_dir / "ca.key",
                                      common_name=KUBELET_CLIENT_USER,
                                      organizations=[pki.ADMIN_GROUP], out_cert=pair[0],
                                      out_key=pair[1])
            return cls(*pair, ca, "")
        if _is_client_cert(serving_cert):
            return cls(serving_cert, serving_key, ca, "")
        return cls(None, None, ca, f"the apiserver has no client certificate for node agents: "
                   f"its serving certificate {serving_cert} is not valid for client "
                   "authentication; pass --kubelet-client-certificate and --kubelet-client-key")

    def ssl_context(self) -> ssl.SSLContext:
        if self.cert is None or self.key is None:
            raise errors.ServiceUnavailable(self.problem)
        ctx = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def container_of(pod: Object, requested: str) -> str:
    """The container a request is for, as kube-apiserver validates it (400 otherwise)."""
    name, spec = pod["metadata"]["name"], pod.get("spec") or {}
    main = [c.get("name", "") for c in spec.get("containers") or []]
    every = [c.get("name", "") for key in ("initContainers", "containers", "ephemeralContainers")
             for c in spec.get(key) or []]
    if requested:
        if requested not in every:
            raise errors.BadRequest(f"container {requested} is not valid for pod {name}")
        return requested
    default = str((pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER) or "")
    if default in every and default:
        return default
    if len(main) == 1:
        return str(main[0])
    if not main:
        raise errors.BadRequest(f"a container name must be specified for pod {name}")
    raise errors.BadRequest(f"a container name must be specified for pod {name}, choose one "
                            f"of: [{' '.join(every)}]")


def agent_endpoint(node: Object) -> tuple[str, int]:
    """The node agent's (address, port) from the Node's status."""
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    address = next((addresses[t] for t in ADDRESS_TYPES if addresses.get(t)), "")
    if not address:
        raise errors.ServiceUnavailable(f'node "{node["metadata"]["name"]}" reports no address '
                                        "to reach its agent at")
    endpoint = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {})
    port = int(endpoint.get("Port") or DEFAULT_AGENT_PORT)
    host = f"[{address}]" if ":" in address else address
    return host, port


def _exec_query(query: MultiMapping[str], kind: str) -> str:
    """The agent's query for exec/attach: the kubelet's stream names, `1` for true."""
    truthy = ("true", "1")
    params: list[tuple[str, str]] = []
    if kind == "exec":
        params += [("command", c) for c in query.getall("command", [])]
    for ours, theirs in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"),
                         ("tty", "tty")):
        if query.get(ours, "").lower() in truthy:
            params.append((theirs, "1"))
    return urlencode(params)


class NodeProxy:
    """Serves the node-proxied pod subresources from the pods and nodes stores."""

    def __init__(self, stores: Mapping[ResourceInfo, Store],
                 client: KubeletClientConfig | None = None) -> None:
        self.pods = next(s for i, s in stores.items() if (i.group, i.resource) == ("", "pods"))
        self.nodes = next(s for i, s in stores.items() if (i.group, i.resource) == ("", "nodes"))
        self.client = client or KubeletClientConfig()
        self._ssl: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"<NodeProxy client_cert={self.client.cert}>"

    def _session(self) -> aiohttp.ClientSession:
        if self._ssl is None:
            self._ssl = self.client.ssl_context()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl),
                                     timeout=timeout)

    async def handle(self, request: web.Request, namespace: str, name: str,
                     subresource: str) -> web.StreamResponse:
        pod = await self.pods.get(namespace, name)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.BadRequest(f"pod {name} does not have a host assigned")
        container = container_of(pod, request.query.get("container", ""))
        host, port = agent_endpoint(await self.nodes.get("", node_name))
        path = "containerLogs" if subresource == "log" else subresource
        base = (f"https://{host}:{port}/{path}/{quote(namespace, safe='')}/"
                f"{quote(name, safe='')}/{quote(container, safe='')}")
        if subresource == "log":
            params = [(k, request.query[k]) for k in LOG_PARAMS if k in request.query]
            return await self.logs(request, f"{base}?{urlencode(params)}")
        url = f"{base}?{_exec_query(request.query, subresource)}"
        if web.WebSocketResponse(protocols=PROTOCOLS).can_prepare(request).ok:
            return await self.websocket(request, url)
        # Not a WebSocket (kubectl's SPDY fallback): the agent's objection, else ours.
        objection = await self._agent_error(url)
        if objection is not None:
            return objection
        raise errors.BadRequest(NOT_UPGRADED)

    async def logs(self, request: web.Request, url: str) -> web.StreamResponse:
        async with self._session() as http:
            try:
                upstream = await http.get(url)
            except (aiohttp.ClientError, OSError) as exc:
                raise errors.InternalError(f'Get "{url}": {exc}') from exc
            async with upstream:
                if upstream.status != 200:
                    return await _copy_error(upstream)
                response = web.StreamResponse(
                    headers={"Content-Type": "text/plain; charset=utf-8"})
                await response.prepare(request)
                await _while_connected(request, _copy_body(upstream, response))
                return response

    async def _agent_error(self, url: str) -> web.Response | None:
        """Ask the agent plainly (no upgrade); return its error answer, if it has one."""
        async with self._session() as http:
            try:
                async with http.get(url) as upstream:
                    return await _copy_error(upstream) if upstream.status >= 400 else None
            except (aiohttp.ClientError, OSError) as exc:
                raise errors.InternalError(f'Get "{url}": {exc}') from exc

    async def websocket(self, request: web.Request, url: str) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        protocols = [p for p in offered if p in PROTOCOLS] or list(PROTOCOLS)
        async with self._session() as http:
            try:
                upstream = await http.ws_connect(url, protocols=protocols, autoping=True,
                                                 max_msg_size=16 * 1024 * 1024)
            except aiohttp.WSServerHandshakeError as exc:
                objection = await self._agent_error(url)
                if objection is not None:
                    return objection
                raise errors.InternalError(f"the node agent at {url} refused the WebSocket "
                                           f"upgrade ({exc.status})") from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise errors.InternalError(f'Get "{url}": {exc}') from exc
            async with upstream:
                chosen = upstream.protocol or protocols[0]
                client = web.WebSocketResponse(protocols=(chosen,), max_msg_size=16 * 1024 * 1024)
                await client.prepare(request)
                await _pump(client, upstream)
                return client


async def _copy_body(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
    with contextlib.suppress(aiohttp.ClientError, ConnectionError):
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()


async def _while_connected(request: web.Request, work: Coroutine[Any, Any, None]) -> None:
    """Run `work`, cancelling it once the client has gone (a followed log that stays quiet
    would otherwise hold the agent's stream open until the container exits)."""
    task = asyncio.create_task(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=CLIENT_CHECK_INTERVAL)
            if request.transport is None or request.transport.is_closing():
                task.cancel()
                await asyncio.wait({task})
        if not task.cancelled():
            task.result()
    finally:
        task.cancel()


async def _copy_error(upstream: aiohttp.ClientResponse) -> web.Response:
    body = await upstream.read()
    return web.Response(body=body, status=upstream.status,
                        content_type=upstream.content_type or "application/json")


async def _pump(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Relay frames both ways until either side closes; then close the other."""

    async def down() -> None:
        async for message in upstream:
            if message.type == WSMsgType.BINARY:
                await client.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await client.send_str(message.data)

    async def up() -> None:
        async for message in client:
            if message.type == WSMsgType.BINARY:
                await upstream.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await upstream.send_str(message.data)

    tasks = [asyncio.create_task(down(), name="node stream down"),
             asyncio.create_task(up(), name="node stream up")]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await upstream.close()
        await client.close()
