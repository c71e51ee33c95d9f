"""`Storage` on etcd's v3 gRPC API (the KV and Watch services).

We use aetcd's generated etcd3 stubs (`aetcd.rpc`) over our own grpc.aio channel, not its client
class: it hides the response headers (revisions) and progress notifications that Kubernetes'
semantics need. Values are compact JSON with `metadata.resourceVersion` removed (the revision is
the resourceVersion). Every unary call has a deadline; an unreachable etcd is `Unavailable`.
Each call's duration goes to `observe` (operation, resource type, seconds) when one is set: the
apiserver's etcd_request_duration_seconds.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import grpc
import grpc.aio
from aetcd import rpc

from controlplane.apiserver.storage import codec
from controlplane.apiserver.storage.interface import (
    Compacted,
    EventType,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    ListResult,
    NoChange,
    Object,
    Progress,
    Unavailable,
    UpdateFunc,
    WatchEvent,
)

log = logging.getLogger(__name__)
EQUAL = rpc.Compare.CompareResult.Value("EQUAL")
CREATE = rpc.Compare.CompareTarget.Value("CREATE")
MOD = rpc.Compare.CompareTarget.Value("MOD")
PUT_EVENT = 0  # mvccpb.Event.EventType.PUT; DELETE is 1
# Called after every etcd request with (operation, resource type, seconds), failed ones too.
RequestObserver = Callable[[str, str, float], None]


def prefix_end(prefix: bytes) -> bytes:
    """The etcd range end that covers every key starting with `prefix`."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def grpc_target(endpoints: Sequence[str]) -> str:
    """`http://127.0.0.1:2379,http://127.0.0.1:22379` -> a grpc target balancing over them."""
    hosts = []
    for endpoint in endpoints:
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        hosts.append(f"{parsed.hostname}:{parsed.port or 2379}")
    if len(hosts) == 1:
        return hosts[0]
    return "ipv4:" + ",".join(hosts)


def encode(obj: Object) -> bytes:
    stored = copy.copy(obj)
    meta = dict(stored.get("metadata") or {})
    meta.pop("resourceVersion", None)
    stored["metadata"] = meta
    return codec.dumps(stored)


def same_object(a: Object, b: Object) -> bool:
    """Equal as JSON, whatever the key order and resourceVersion (a no-op write is skipped)."""
    def stripped(obj: Object) -> Object:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
        return {**obj, "metadata": meta}
    return stripped(a) == stripped(b)


def resource_type(key: str) -> str:
    """`/registry/pods/default/web` -> `pods`: the `type` label of etcd request metrics."""
    parts = key.split("/", 3)
    return parts[2] if len(parts) > 2 and parts[1] == "registry" else ""


def decode(value: bytes, revision: int) -> Object:
    obj: Object = codec.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


class EtcdStorage:
    """One gRPC channel to an etcd cluster; safe to share between tasks."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0,
                 observe: RequestObserver | None = None) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.observe = observe  # set once, before the first request
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.lb_policy_name", "round_robin")]
        self._channel = grpc.aio.insecure_channel(grpc_target(endpoints), options=options)
        self._kv = rpc.KVStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)

    def __repr__(self) -> str:
        return f"<EtcdStorage {','.join(self.endpoints)}>"

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(self, method: Any, request: Any, operation: str, key: str) -> Any:
        started = time.perf_counter()
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.endpoints) from exc
        finally:
            if self.observe is not None:
                self.observe(operation, resource_type(key), time.perf_counter() - started)

    async def call_kv(self, method: str, request: Any, operation: str = "txn") -> Any:
        """A raw KV call (e.g. the compactor's transaction) with our deadline and errors."""
        return await self._call(getattr(self._kv, method), request, operation, "")

    async def current_revision(self) -> int:
        response = await self._call(self._kv.Range, rpc.RangeRequest(
            key=b"/registry/", range_end=prefix_end(b"/registry/"), count_only=True),
            "currentRevision", "")
        revision: int = response.header.revision
        return revision

    async def create(self, key: str, obj: Object) -> Object:
        k, value = key.encode(), encode(obj)
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=k, target=CREATE, result=EQUAL, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
        )
        response = await self._call(self._kv.Txn, request, "create", key)
        if not response.succeeded:
            raise KeyExists(key)
        return decode(value, response.header.revision)

    async def _get_kv(self, key: str) -> Any:
        response = await self._call(self._kv.Range, rpc.RangeRequest(key=key.encode()), "get",
                                    key)
        return response.kvs[0] if response.kvs else None

    async def get(self, key: str) -> Object | None:
        kv = await self._get_kv(key)
        return decode(kv.value, kv.mod_revision) if kv is not None else None

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_key: str = "") -> ListResult:
        request = rpc.RangeRequest(key=(start_key or prefix).encode(),
                                   range_end=prefix_end(prefix.encode()),
                                   revision=revision, limit=limit)
        try:
            response = await self._call(self._kv.Range, request, "list", prefix)
        except Compacted as exc:
            raise Compacted(revision) from exc
        except FutureRevision as exc:
            raise FutureRevision(revision) from exc
        items = [decode(kv.value, kv.mod_revision) for kv in response.kvs]
        read_at = revision or response.header.revision
        next_key = ""
        if response.more and response.kvs:
            next_key = response.kvs[-1].key.decode() + "\x00"
        return ListResult(items, read_at, next_key, max(0, response.count - len(items)))

    async def guaranteed_update(self, key: str, update: UpdateFunc) -> Object:
        kv = await self._get_kv(key)
        while True:
            if kv is None:
                raise KeyNotFound(key)
            current = decode(kv.value, kv.mod_revision)
            try:
                updated = await update(decode(kv.value, kv.mod_revision))  # a copy to change
            except NoChange:
                return current
            value = encode(updated)
            if value == kv.value or same_object(updated, current):
                return current
            k = key.encode()
            request = rpc.TxnRequest(
                compare=[_unchanged(k, kv.mod_revision)],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
            )
            response = await self._call(self._kv.Txn, request, "update", key)
            if response.succeeded:
                return decode(value, response.header.revision)
            kvs = response.responses[0].response_range.kvs
            kv = kvs[0] if kvs else None  # lost the race: retry on what is there now

    async def delete(self, key: str, *, check: Callable[[Object], None] | None = None) -> Object:
        kv = await self._get_kv(key)
        while True:
            if kv is None:
                raise KeyNotFound(key)
            current = decode(kv.value, kv.mod_revision)
            if check is not None:
                check(current)
            k = key.encode()
            request = rpc.TxnRequest(
                compare=[_unchanged(k, kv.mod_revision)],
                success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
            )
            response = await self._call(self._kv.Txn, request, "delete", key)
            if response.succeeded:
                current["metadata"]["resourceVersion"] = str(response.header.revision)
                return current
            kvs = response.responses[0].response_range.kvs
            kv = kvs[0] if kvs else None

    async def compact(self, revision: int) -> None:
        try:
            await self._call(self._kv.Compact, rpc.CompactionRequest(revision=revision),
                             "compact", "")
        except FutureRevision as exc:
            raise FutureRevision(revision) from exc
        except Compacted:
            pass  # already compacted at or after `revision`: nothing to do

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[WatchEvent | Progress]:
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=prefix.encode(), range_end=prefix_end(prefix.encode()),
            start_revision=revision + 1, prev_kv=True, progress_notify=True))
        stop = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield create
            await stop.wait()  # keep the request side open for the stream's lifetime

        call = self._watch.Watch(requests())
        try:
            async for response in call:
                if response.compact_revision:
                    raise Compacted(revision, response.compact_revision)
                if response.canceled:
                    raise Unavailable(f"etcd canceled the watch: {response.cancel_reason}")
                if not response.events:
                    if not response.created:
                        yield Progress(response.header.revision)
                    continue
                for event in response.events:
                    yield _event(event)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.endpoints) from exc
        finally:
            stop.set()
            call.cancel()


def _unchanged(key: bytes, mod_revision: int) -> Any:
    """The compare that makes a transaction fail when `key` changed since `mod_revision`."""
    return rpc.Compare(key=key, target=MOD, result=EQUAL, mod_revision=mod_revision)


def _event(event: Any) -> WatchEvent:
    kv = event.kv
    key = kv.key.decode()
    if event.type == PUT_EVENT:
        obj = decode(kv.value, kv.mod_revision)
        prev_kv = event.prev_kv
        prev = decode(prev_kv.value, prev_kv.mod_revision) if prev_kv.key else None
        kind: EventType = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
        return WatchEvent(kind, key, obj, kv.mod_revision, prev)
    last = decode(event.prev_kv.value, kv.mod_revision) if event.prev_kv.key else {
        "metadata": {"resourceVersion": str(kv.mod_revision)}}
    return WatchEvent("DELETED", key, last, kv.mod_revision)


def _translate(exc: grpc.aio.AioRpcError, endpoints: Sequence[str]) -> Exception:
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return Compacted(0)
    if code == grpc.StatusCode.OUT_OF_RANGE and "future revision" in details:
        return FutureRevision(0)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED):
        return Unavailable(f"etcd at {','.join(endpoints)} unavailable: {details}")
    return Unavailable(f"etcd at {','.join(endpoints)}: {code.name}: {details}")
