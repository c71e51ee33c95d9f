"""gRPC failures from containerd mapped to our own exceptions, each naming the socket and the call.

Callers catch `CRIError` (or one of its kinds) and never see `grpc.RpcError`; the message reads
`containerd at /run/x.sock: RuntimeService/RunPodSandbox: NOT_FOUND: <containerd's detail>`, so
a log line alone says which daemon and which call failed.
"""

from __future__ import annotations

import grpc


class CRIError(Exception):
    """A call to containerd failed."""

    def __init__(self, socket: str, method: str, code: grpc.StatusCode | None, details: str):
        self.socket = socket
        self.method = method
        self.code = code
        self.details = details
        code_name = code.name if code is not None else "ERROR"
        super().__init__(f"containerd at {socket}: {method}: {code_name}: {details}")


class Unavailable(CRIError):
    """The socket is missing, refuses connections, or containerd went away."""


class DeadlineExceeded(CRIError):
    """containerd did not answer within the call's deadline."""


class NotFound(CRIError):
    """The sandbox, container, image or blob does not exist."""


class AlreadyExists(CRIError):
    """The object (a name, a blob) exists already."""


class InvalidArgument(CRIError):
    """containerd rejected the request as malformed."""


class FailedPrecondition(CRIError):
    """The object is not in a state that allows the call (e.g. a digest mismatch on commit)."""


class Unimplemented(CRIError):
    """This containerd does not implement the call (e.g. GetContainerEvents on 1.6)."""


_KINDS: dict[grpc.StatusCode, type[CRIError]] = {
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def from_rpc_error(exc: grpc.RpcError, socket: str, method: str) -> CRIError:
    """Return the CRIError for a failed call (`exc` from grpc.aio or grpc)."""
    code: grpc.StatusCode | None = exc.code() if hasattr(exc, "code") else None
    details: str = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    kind = _KINDS.get(code, CRIError) if code is not None else CRIError
    return kind(socket, method, code, details)
