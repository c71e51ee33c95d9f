"""A minimal SPDY/3.1 client for containerd's streaming server, for every exec and attach.

Why SPDY at all: containerd 1.6 speaks WebSocket only as `v4.channel.k8s.io` (it refuses v5
with 403); v4 cannot close stdin without closing the whole connection, which loses the output
still to come and the exit status, and always hands the runtime a stdin (agent/server/upstream.py
says what that breaks). Over SPDY every stream half-closes on its own (a DATA frame with FIN), so
`echo x | kubectl exec -i POD -- cat` gets its EOF and still its output, and a stream not asked
for does not exist.

Only what Kubernetes' remotecommand protocol (v4) uses is spoken: an HTTP/1.1 upgrade, one
SYN_STREAM per stream with a `streamtype` header (error, stdin, stdout, stderr, resize; client
streams have odd ids), DATA frames, PING echoes. Header blocks are zlib-compressed with SPDY/3's
dictionary, one compression context per direction for the whole connection, so every header
block received is inflated even when it is of no interest. Flow control is not used (the Go
server, moby/spdystream, ignores WINDOW_UPDATE).
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
RST_REFUSED_STREAM = 3
MAX_DATA = 32 * 1024  # bytes of stdin per DATA frame
HANDSHAKE_TIMEOUT = 10.0
PROTOCOL = "v4.channel.k8s.io"
# Which remotecommand channel each stream type is (the WebSocket protocols number them so).
CHANNELS = {"stdin": 0, "stdout": 1, "stderr": 2, "error": 3, "resize": 4}

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/"
    "xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,"
    "sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
# SPDY/3's zlib dictionary for header blocks: length-prefixed header words, then common values.
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class HandshakeError(Exception):
    """The streaming server did not switch protocols; `status` and `body` say why."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"streaming server answered {status}: {body[:200]!r}")
        self.status = status
        self.body = body


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def _data(stream_id: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", stream_id, (flags << 24) | len(payload)) + payload


def _header_block(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower(), value):
            out.append(struct.pack(">I", len(text.encode())) + text.encode())
    return b"".join(out)


class SpdySession:
    """One exec or attach session: the streams named in `streams`, ready once `connect` returns.

    Iterate it for (channel, bytes) as output arrives; the error stream's Status comes as one
    channel-3 message once that stream ends. `send(0, ...)` writes stdin, `send(4, ...)` a
    resize; `close_stdin()` half-closes stdin.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 streams: list[str]) -> None:
        self._reader = reader
        self._writer = writer
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._ids = {kind: 1 + 2 * i for i, kind in enumerate(streams)}
        self._kinds = {v: k for k, v in self._ids.items()}
        self._open_remote = {self._ids[k] for k in ("error", "stdout", "stderr") if k in self._ids}
        self._replied: set[int] = set()
        self._early: list[tuple[int, bytes]] = []  # data that came before the last reply
        self._status = b""
        self._stdin_closed = False

    def __repr__(self) -> str:
        return f"<SpdySession streams={sorted(self._ids)} open={len(self._open_remote)}>"

    @classmethod
    async def connect(cls, url: str, *, stdin: bool, stdout: bool, stderr: bool,
                      tty: bool) -> SpdySession:
        """Upgrade `url` (a CRI Exec/Attach URL) to SPDY and open the streams the call asked
        for; raise HandshakeError when the server refuses."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                HANDSHAKE_TIMEOUT)
        streams = ["error"] + [name for name, wanted in (
            ("stdin", stdin), ("stdout", stdout), ("stderr", stderr and not tty),
            ("resize", tty)) if wanted]
        session = cls(reader, writer, streams)
        try:
            await asyncio.wait_for(session._handshake(parts.path, f"{host}:{port}"),
                                   HANDSHAKE_TIMEOUT)
        except BaseException:
            await session.close()
            raise
        return session

    async def _handshake(self, path: str, host: str) -> None:
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
            f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {PROTOCOL}\r\n"
            "Content-Length: 0\r\n\r\n".encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        if status != 101:
            headers = dict(line.split(":", 1) for line in header_lines if ":" in line)
            length = int({k.lower(): v for k, v in headers.items()}.get(
                "content-length", "0").strip() or 0)
            body = await self._reader.read(min(length, 65536)) if length else b""
            raise HandshakeError(status, body)
        for kind, stream_id in self._ids.items():
            block = self._deflate.compress(_header_block({"streamtype": kind}))
            block += self._deflate.flush(zlib.Z_SYNC_FLUSH)
            self._writer.write(_control(SYN_STREAM, 0, struct.pack(">IIBB", stream_id, 0, 0, 0)
                                        + block))
        await self._writer.drain()
        # The server drops data on a stream it has not replied to yet: wait for every reply.
        while len(self._replied) < len(self._ids):
            frame = await self._frame()
            if frame is None:
                raise HandshakeError(101, b"the streaming server closed the connection")
            if frame[1]:
                self._early.append(frame)

    async def send(self, channel: int, data: bytes) -> None:
        kind = "stdin" if channel == 0 else "resize" if channel == 4 else ""
        if kind not in self._ids or (kind == "stdin" and self._stdin_closed):
            return
        for start in range(0, len(data), MAX_DATA):
            self._writer.write(_data(self._ids[kind], 0, data[start:start + MAX_DATA]))
        await self._writer.drain()

    async def close_stdin(self) -> None:
        if "stdin" in self._ids and not self._stdin_closed:
            self._stdin_closed = True
            self._writer.write(_data(self._ids["stdin"], FLAG_FIN, b""))
            await self._writer.drain()

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        for item in self._early:
            yield item
        self._early.clear()
        while self._open_remote:
            frame = await self._frame()
            if frame is None:
                break
            if frame[1]:
                yield frame
        if self._status:
            yield CHANNELS["error"], self._status
            self._status = b""

    async def _frame(self) -> tuple[int, bytes] | None:
        """Read one frame and act on it; return (channel, data) for output (data may be
        empty), None at the end of the connection."""
        try:
            head = await self._reader.readexactly(8)
            first, flags_length = struct.unpack(">II", head)
            payload = await self._reader.readexactly(flags_length & 0xFFFFFF)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        flags = flags_length >> 24
        if not first & 0x80000000:
            return self._on_data(first & 0x7FFFFFFF, flags, payload)
        kind = first & 0xFFFF
        stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF if len(payload) >= 4 else 0
        if kind == SYN_REPLY:
            self._inflate.decompress(payload[4:])
            self._replied.add(stream_id)
            if flags & FLAG_FIN:
                self._open_remote.discard(stream_id)
        elif kind == HEADERS:
            self._inflate.decompress(payload[4:])
        elif kind == SYN_STREAM:  # the server may not open streams in this protocol
            self._inflate.decompress(payload[10:])
            self._writer.write(_control(RST_STREAM, 0, struct.pack(
                ">II", stream_id, RST_REFUSED_STREAM)))
        elif kind == RST_STREAM:
            self._open_remote.discard(stream_id)
        elif kind == PING and stream_id % 2 == 0:  # the server's ping: echo it
            self._writer.write(_control(PING, 0, payload))
        return CHANNELS["error"], b""

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> tuple[int, bytes]:
        kind = self._kinds.get(stream_id, "")
        if flags & FLAG_FIN:
            self._open_remote.discard(stream_id)
        if kind == "error":
            self._status += payload
            return CHANNELS["error"], b""
        if kind in ("stdout", "stderr"):
            return CHANNELS[kind], payload
        return CHANNELS["error"], b""

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass

