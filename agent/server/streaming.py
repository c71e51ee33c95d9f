"""Exec and attach for clients: a WebSocket in `v5.channel.k8s.io` or `v4.channel.k8s.io`,
bridged to a session with containerd's streaming server (agent/server/upstream.py).

Every message is a channel byte and data (a text frame counts as its UTF-8 bytes, as in
Kubernetes' own server): 0 stdin, 1 stdout, 2 stderr, 3 the Status that ends the call
(NonZeroExitCode with an ExitCode cause carries the exit status), 4 terminal resizes. v5 adds
channel 255: `ff 00` closes stdin, which becomes the session's half-close. The socket
is accepted only once the session is up, so a failure before it (no such container, containerd
refusing) is still an HTTP Status the caller can relay; after it, the call ends when the
command does (the Status sent, the socket closed) or when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from aiohttp import WSMsgType, web

from agent.server.upstream import Session, StreamOptions
from controlplane.api import errors

log = logging.getLogger(__name__)
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
STREAM_CLOSE = 255
NOT_UPGRADED = ("Upgrade request required: exec and attach are served over WebSocket "
                f"({V5} or {V4}) only, not SPDY")
# The kubelet's own query names (input/output/error) and the API's (stdin/stdout/stderr).
_FLAGS = {"stdin": ("stdin", "input"), "stdout": ("stdout", "output"),
          "stderr": ("stderr", "error"), "tty": ("tty",)}


def _flag(query: Mapping[str, str], names: Sequence[str]) -> bool:
    return any(query.get(n, "").lower() in ("1", "true") for n in names)


def stream_options(query: Mapping[str, str]) -> StreamOptions:
    """The streams a request asks for; 400 when it asks for none (a terminal has no stderr)."""
    tty = _flag(query, _FLAGS["tty"])
    options = StreamOptions(stdin=_flag(query, _FLAGS["stdin"]),
                            stdout=_flag(query, _FLAGS["stdout"]),
                            stderr=_flag(query, _FLAGS["stderr"]) and not tty, tty=tty)
    if not (options.stdin or options.stdout or options.stderr):
        raise errors.BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    return options


def negotiate(request: web.Request) -> str:
    """The subprotocol to accept; 400 for a request that is no WebSocket upgrade (e.g. SPDY)
    or offers neither protocol."""
    ready = web.WebSocketResponse(protocols=PROTOCOLS).can_prepare(request)
    if not ready.ok:
        raise errors.BadRequest(NOT_UPGRADED)
    if ready.protocol is None:
        raise errors.BadRequest(f"none of the requested subprotocols is supported; "
                                f"use {V5} or {V4}")
    return ready.protocol


async def bridge(request: web.Request, session: Session) -> web.WebSocketResponse:
    """Accept the client's WebSocket and relay between it and `session` until either ends."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    v5 = ws.ws_protocol == V5

    async def from_client() -> None:
        async for message in ws:
            if message.type == WSMsgType.TEXT:  # the Python client writes str as text frames
                raw = message.data.encode()
            elif message.type == WSMsgType.BINARY:
                raw = message.data
            else:
                continue
            if not raw:
                continue
            channel, data = raw[0], raw[1:]
            if channel == STREAM_CLOSE and v5:
                if data[:1] == b"\x00":
                    await session.close_stdin()
                continue
            await session.send(channel, data)

    async def to_client() -> None:
        async for channel, data in session:
            await ws.send_bytes(bytes([channel]) + data)

    inbound = asyncio.create_task(from_client(), name="exec stdin")
    outbound = asyncio.create_task(to_client(), name="exec output")
    try:
        done, _ = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("stream path=%s ended with %r", request.path, task.exception())
    finally:
        for task in (inbound, outbound):
            task.cancel()
        for task in (inbound, outbound):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await ws.close()
    return ws
