"""Unit tests of the agent's SPDY/3.1 client (agent/server/spdy.py) through `open_session`,
against a small SPDY streaming server of the test's own that records the streams a session
opens: only the streams asked for exist (an attach without stdin has no stdin stream), output
and the Status arrive, stdin half-closes, resizes go on their own stream, and a refused upgrade
is a HandshakeError."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from agent.server.spdy import DICTIONARY, HandshakeError
from agent.server.upstream import StreamOptions, open_session

SYN_STREAM, SYN_REPLY = 1, 2
FIN = 0x01
SUCCESS = json.dumps({"metadata": {}, "status": "Success"}).encode()


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(payload)) + payload


def data(stream_id: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", stream_id, (flags << 24) | len(payload)) + payload


def headers(block: bytes) -> dict[str, str]:
    count, at, out = struct.unpack(">I", block[:4])[0], 4, {}
    for _ in range(count):
        pair = []
        for _ in range(2):
            size = struct.unpack(">I", block[at:at + 4])[0]
            pair.append(block[at + 4:at + 4 + size].decode())
            at += 4 + size
        out[pair[0]] = pair[1]
    return out


@dataclass
class StreamingServer:
    """Answers one session: echoes stdin to stdout (upper-cased) and, once stdin is closed (at
    once when there is none), writes `bye`, the Status, and ends every stream."""

    refuse: bool = False
    streams: dict[str, int] = field(default_factory=dict)  # stream type -> id
    stdin: bytes = b""
    resizes: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if self.refuse:
            body = b"container is in CONTAINER_EXITED state"
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: SPDY/3.1\r\n\r\n")
        inflate = zlib.decompressobj(zdict=DICTIONARY)
        deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=DICTIONARY)
        kinds: dict[int, str] = {}
        ended = False
        while not ended:
            # Without a stdin stream, the session is done once the client sends nothing more.
            quiet = 0.3 if self.streams and "stdin" not in self.streams else None
            try:
                head = await asyncio.wait_for(reader.readexactly(8), quiet)
                first, flags_length = struct.unpack(">II", head)
                payload = await reader.readexactly(flags_length & 0xFFFFFF)
            except TimeoutError:
                break
            except asyncio.IncompleteReadError:
                return
            flags = flags_length >> 24
            if first & 0x80000000 and first & 0xFFFF == SYN_STREAM:
                stream_id = struct.unpack(">I", payload[:4])[0]
                kind = headers(inflate.decompress(payload[10:]))["streamtype"]
                self.streams[kind], kinds[stream_id] = stream_id, kind
                block = deflate.compress(struct.pack(">I", 0)) + deflate.flush(zlib.Z_SYNC_FLUSH)
                writer.write(control(SYN_REPLY, 0, struct.pack(">I", stream_id) + block))
            elif not first & 0x80000000:
                kind = kinds.get(first, "")
                if kind == "stdin":
                    self.stdin += payload
                    if payload:
                        writer.write(data(self.streams["stdout"], 0, payload.upper()))
                    ended = bool(flags & FIN)
                elif kind == "resize":
                    self.resizes.append(payload)
        writer.write(data(self.streams["stdout"], FIN, b"bye\n"))
        if "stderr" in self.streams:
            writer.write(data(self.streams["stderr"], FIN, b""))
        writer.write(data(self.streams["error"], FIN, SUCCESS))
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[StreamingServer, str]]:
    state = StreamingServer()
    listener = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield state, f"http://127.0.0.1:{port}/attach/token"
    finally:
        listener.close()
        await listener.wait_closed()


async def collect(session: object) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    async for channel, chunk in session:  # type: ignore[attr-defined]
        out[channel] = out.get(channel, b"") + chunk
    return out


async def test_without_stdin_there_is_no_stdin_stream(
        server: tuple[StreamingServer, str]) -> None:
    state, url = server
    session = await open_session(url, StreamOptions(stdin=False, stdout=True, stderr=False))
    try:
        received = await asyncio.wait_for(collect(session), 5)
    finally:
        await session.close()
    assert set(state.streams) == {"error", "stdout"}
    assert received[1] == b"bye\n"
    assert json.loads(received[3])["status"] == "Success"


async def test_stdin_half_closes_and_output_still_comes(
        server: tuple[StreamingServer, str]) -> None:
    state, url = server
    session = await open_session(url, StreamOptions(stdin=True, stdout=True, stderr=True))
    try:
        await session.send(0, b"hello\n")
        await session.close_stdin()
        await session.send(0, b"after close\n")  # dropped: stdin is closed
        received = await asyncio.wait_for(collect(session), 5)
    finally:
        await session.close()
    assert set(state.streams) == {"error", "stdin", "stdout", "stderr"}
    assert state.stdin == b"hello\n"
    assert received[1] == b"HELLO\nbye\n"
    assert json.loads(received[3])["status"] == "Success"


async def test_a_terminal_has_resize_and_no_stderr(server: tuple[StreamingServer, str]) -> None:
    state, url = server
    session = await open_session(url, StreamOptions(stdin=True, stdout=True, stderr=True,
                                                    tty=True))
    try:
        await session.send(4, b'{"Width":100,"Height":30}')
        await session.send(0, b"x")
        await session.close_stdin()
        received = await asyncio.wait_for(collect(session), 5)
    finally:
        await session.close()
    assert set(state.streams) == {"error", "stdin", "stdout", "resize"}
    assert state.resizes == [b'{"Width":100,"Height":30}']
    assert received[1] == b"Xbye\n"


async def test_a_refused_upgrade_is_a_handshake_error(
        server: tuple[StreamingServer, str]) -> None:
    state, url = server
    state.refuse = True
    with pytest.raises(HandshakeError) as caught:
        await open_session(url, StreamOptions())
    assert caught.value.status == 500
    assert caught.value.body == b"container is in CONTAINER_EXITED state"
