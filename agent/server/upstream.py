"""The agent's side of an exec or attach: a session with containerd's streaming server.

A CRI Exec/Attach call returns a one-time URL on containerd's streaming server. The session is
always SPDY (agent/server/spdy.py), never that server's WebSocket (`v4.channel.k8s.io`), for two
reasons seen with containerd 1.6: v4 cannot close stdin alone (the output still to come and the
exit status would be lost), and its WebSocket side always hands the runtime a stdin stream, even
when none was asked for, which is empty at once: an attach without stdin to a container that
has `stdin: true` then ends before any output (with `stdinOnce`, it would even close the
container's stdin). Over SPDY a stream that was not asked for does not exist. The bridge sees
`send` (channel 0 stdin, 4 resize), `close_stdin`, iteration for (channel, bytes), `close`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from agent.server.spdy import SpdySession


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


async def open_session(url: str, options: StreamOptions) -> Session:
    """Connect to a CRI streaming URL with the streams `options` name (HandshakeError when the
    streaming server refuses)."""
    return await SpdySession.connect(url, stdin=options.stdin, stdout=options.stdout,
                                     stderr=options.stderr, tty=options.tty)
