"""The agent's side of an exec or attach: a session with containerd's streaming server.

A CRI Exec/Attach call returns a one-time URL on containerd's streaming server. Without stdin
the session is a WebSocket with subprotocol `v4.channel.k8s.io` (channel byte 1 stdout,
2 stderr, 3 the Status); with stdin it is SPDY (agent/server/spdy.py), the only protocol
containerd 1.6 offers that can close stdin alone. Both look the same to the bridge: `send`
(channel 0 stdin, 4 resize), `close_stdin`, iterate for (channel, bytes), `close`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from agent.server.spdy import HandshakeError, SpdySession

V4 = "v4.channel.k8s.io"


@dataclass(frozen=True)
class StreamOptions:
    """Which standard streams an exec or attach carries, and whether it has a terminal."""

    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


class Session(Protocol):
    async def send(self, channel: int, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]: ...

    async def close(self) -> None: ...


class WebSocketSession:
    """A v4.channel.k8s.io WebSocket to the streaming server (no way to close stdin alone)."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._http = http
        self._ws = ws

    def __repr__(self) -> str:
        return f"<WebSocketSession closed={self._ws.closed}>"

    @classmethod
    async def connect(cls, url: str) -> WebSocketSession:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, protocols=(V4,), autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            await http.close()
            raise HandshakeError(exc.status, exc.message.encode()) from exc
        except BaseException:
            await http.close()
            raise
        return cls(http, ws)

    async def send(self, channel: int, data: bytes) -> None:
        if channel in (0, 4):
            await self._ws.send_bytes(bytes([channel]) + data)

    async def close_stdin(self) -> None:
        """v4 has no half-close; sessions with stdin use SPDY instead."""

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.BINARY and message.data:
                yield message.data[0], message.data[1:]

    async def close(self) -> None:
        await self._ws.close()
        await self._http.close()


async def open_session(url: str, options: StreamOptions) -> Session:
    """Connect to a CRI streaming URL in the protocol `options` need."""
    if options.stdin:
        return await SpdySession.connect(url, stdin=True, stdout=options.stdout,
                                         stderr=options.stderr, tty=options.tty)
    return await WebSocketSession.connect(url)
