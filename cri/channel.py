"""One asyncio gRPC channel to containerd's unix socket, with deadlines and mapped errors.

Both clients (`cri.runtime` for the CRI, `cri.containerd_client` for containerd's own services)
call through a `Channel`: every unary call has a deadline (a per-call `timeout` or the channel's
default), a missing socket fails at once with `Unavailable` naming it, and every `grpc.RpcError`
becomes a `cri.errors.CRIError` naming the socket and the method.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio

from cri import errors

DEFAULT_TIMEOUT = 10.0
Metadata = Sequence[tuple[str, str]]


class Message(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


ResponseT = TypeVar("ResponseT")
ResponseT_co = TypeVar("ResponseT_co", covariant=True)


class ResponseType(Protocol[ResponseT_co]):  # the generated message class, used as a parser
    def FromString(self, s: bytes) -> ResponseT_co: ...


class Channel:
    """A grpc.aio channel to `socket`; `close()` it (or use `async with`) when done."""

    def __init__(self, socket: str, *, timeout: float = DEFAULT_TIMEOUT,
                 metadata: Metadata = ()) -> None:
        self.socket = socket
        self.timeout = timeout  # default deadline, seconds, for each unary call
        self.metadata = tuple(metadata)  # sent with every call (e.g. containerd-namespace)
        self._channel = grpc.aio.insecure_channel(
            f"unix://{socket}",
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )

    def __repr__(self) -> str:
        return f"<Channel unix://{self.socket} timeout={self.timeout}s>"

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(None)

    def check_socket(self, method: str) -> None:
        """Fail fast, naming the socket, when there is no socket file to connect to."""
        try:
            mode = os.stat(self.socket).st_mode
        except FileNotFoundError:
            raise errors.Unavailable(self.socket, method, grpc.StatusCode.UNAVAILABLE,
                                     "no such socket (is containerd running?)") from None
        except OSError as exc:
            raise errors.Unavailable(self.socket, method, grpc.StatusCode.UNAVAILABLE,
                                     str(exc)) from None
        if not stat.S_ISSOCK(mode):
            raise errors.Unavailable(self.socket, method, grpc.StatusCode.UNAVAILABLE,
                                     "not a unix socket")

    def _metadata(self, extra: Metadata) -> tuple[tuple[str, str], ...]:
        return self.metadata + tuple(extra)

    async def unary(self, method: str, request: Message, response_type: ResponseType[ResponseT],
                    *, timeout: float | None = None, metadata: Metadata = ()) -> ResponseT:
        """Call `/package.Service/Method` and return its parsed response."""
        name = method.lstrip("/").rsplit(".", 1)[-1]
        self.check_socket(name)
        call = self._channel.unary_unary(
            method,
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        try:
            response: ResponseT = await call(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata(metadata),
            )
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc, self.socket, name) from exc
        return response

    async def server_stream(self, method: str, request: Message,
                            response_type: ResponseType[ResponseT], *,
                            timeout: float | None = None,
                            metadata: Metadata = ()) -> AsyncIterator[ResponseT]:
        """Call a server-streaming method; yield each response. No deadline unless `timeout`."""
        name = method.lstrip("/").rsplit(".", 1)[-1]
        self.check_socket(name)
        call = self._channel.unary_stream(
            method, request_serializer=_serialize, response_deserializer=response_type.FromString
        )
        stream = call(request, timeout=timeout, metadata=self._metadata(metadata))
        try:
            async for response in stream:
                yield response
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc, self.socket, name) from exc
        finally:
            stream.cancel()

    async def stream_stream(self, method: str, requests: Sequence[Message],
                            response_type: ResponseType[ResponseT], *,
                            timeout: float | None = None,
                            metadata: Metadata = ()) -> list[ResponseT]:
        """Send `requests` on a bidirectional stream and collect every response until it ends."""
        name = method.lstrip("/").rsplit(".", 1)[-1]
        self.check_socket(name)
        call = self._channel.stream_stream(
            method, request_serializer=_serialize, response_deserializer=response_type.FromString
        )

        async def send() -> AsyncIterator[Message]:
            for request in requests:
                yield request

        stream = call(send(), timeout=self.timeout if timeout is None else timeout,
                      metadata=self._metadata(metadata))
        try:
            return [response async for response in stream]
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc, self.socket, name) from exc


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
