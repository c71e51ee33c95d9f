"""The controller framework: shared informers, the `Controller` shape and its worker loop.

Every controller is a subclass of `Controller`: its constructor registers informer handlers that
only enqueue `namespace/name` keys, and its `sync(key)` is level-triggered over read-only caches
(an object that is gone is a success). The manager builds every controller first (so handlers
see the initial list), then starts the shared informers (one per resource, whoever asks), waits
for their caches, then runs N workers per controller: get -> sync -> forget, or add_rate_limited
on error, done always. Objects read from a `Lister` belong to the informer: copy before changing.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from controlplane.api import errors
from controlplane.client.events import Recorder, RecorderFactory
from controlplane.client.informer import Informer, key_of
from controlplane.client.rest import Resource, RESTClient
from controlplane.client.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)
Object = dict[str, Any]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SyncError(Exception):
    """An expected failure of a sync (logged without a traceback, retried with backoff)."""


class Client(Protocol):
    """The part of `RESTClient` controllers use; tests pass a fake with the same methods."""

    async def get(self, res: Resource, name: str, namespace: str = "", *,
                  subresource: str = "") -> Object: ...

    async def create(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "", name: str = "") -> Object: ...

    async def update(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "") -> Object: ...

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    subresource: str = "", patch_type: str = "application/merge-patch+json",
                    field_manager: str = "") -> Object: ...

    async def delete(self, res: Resource, name: str, namespace: str = "", *,
                     grace_period: int | None = None, propagation: str = "",
                     preconditions: Object | None = None) -> Object: ...


class Lister:
    """Read-only queries over one informer's cache, without copying (never mutate results)."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer

    def get(self, namespace: str, name: str) -> Object | None:
        return self.informer.store.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str = "") -> Iterator[Object]:
        for obj in list(self.informer.store.values()):
            if not namespace or obj["metadata"].get("namespace") == namespace:
                yield obj


class SharedInformers:
    """One informer per resource, shared by every controller that asks for it."""

    def __init__(self, client: RESTClient) -> None:
        self.client = client
        self._informers: dict[Resource, Informer] = {}  # owned by the manager's task

    def __repr__(self) -> str:
        return f"<SharedInformers {sorted(r.resource for r in self._informers)}>"

    def informer(self, resource: Resource) -> Informer:
        if resource not in self._informers:
            self._informers[resource] = Informer(self.client, resource)
        return self._informers[resource]

    def lister(self, resource: Resource) -> Lister:
        return Lister(self.informer(resource))

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(i.wait_synced(timeout) for i in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))


@dataclass
class ControllerContext:
    """What a controller is built from: the API, the shared caches, events and the clock."""

    client: Client
    informers: SharedInformers
    recorders: RecorderFactory
    clock: Clock = utc_now
    options: dict[str, Any] = field(default_factory=dict)  # flag values by dest name

    def option_values(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """The flag values `defaults` names, each its default where the flag was not given."""
        return {name: self.options.get(name, value) for name, value in defaults.items()}


class Controller:
    """A queue of keys, N workers and a `sync(key)`; subclasses register their handlers."""

    name: ClassVar[str] = ""  # as in --controllers: "deployment"
    component: ClassVar[str] = ""  # events' source.component: "deployment-controller"
    kind: ClassVar[str] = ""  # the kind its keys name, for events: "Deployment"
    api_version: ClassVar[str] = ""

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.clock = ctx.clock
        self.recorder: Recorder = ctx.recorders.recorder(self.component)
        self.queue = WorkQueue()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.queue!r}>"

    async def sync(self, key: str) -> None:
        """Make the world match the object named `key`; raise to be retried with backoff."""
        raise NotImplementedError

    # -- enqueueing (called from informer handlers: quick, never I/O) ---------------------------

    def enqueue(self, obj: Object) -> None:
        self.queue.add(key_of(obj))

    def enqueue_after(self, obj: Object, delay: float) -> None:
        self.queue.add_after(key_of(obj), delay)

    def event(self, obj: Object, type_: str, reason: str, message: str) -> None:
        """Record an event about one of this controller's objects."""
        ref = obj if obj.get("kind") else dict(obj, kind=self.kind, apiVersion=self.api_version)
        self.recorder.event(ref, type_, reason, message)

    # -- running ----------------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """Run `workers` workers until cancelled (caches must have synced)."""
        log.info("starting %s controller workers=%d", self.name, workers)
        try:
            async with asyncio.TaskGroup() as group:
                for i in range(workers):
                    group.create_task(self._worker(), name=f"{self.name}-worker-{i}")
        finally:
            await self.queue.shut_down()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            await self.process(key)

    async def process(self, key: str) -> None:
        """One turn of a worker: sync the key, then forget it or retry it later."""
        try:
            await self.sync(key)
            self.queue.forget(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a loop never dies on one object
            retries = self.queue.failures(key)
            if not isinstance(exc, errors.APIError | SyncError):
                log.exception("%s: sync %s failed (retry %d)", self.name, key, retries)
            elif retries < 5:
                log.info("%s: sync %s failed (retry %d): %s", self.name, key, retries, exc)
            else:
                log.warning("%s: sync %s failed (retry %d): %s", self.name, key, retries, exc)
            self.queue.add_rate_limited(key)
        finally:
            self.queue.done(key)


def split_key(key: str) -> tuple[str, str]:
    """`namespace/name` -> (namespace, name); a cluster-scoped `name` -> ("", name)."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def deep_copy(obj: Object) -> Object:
    return copy.deepcopy(obj)


def controller_ref(owner: Object, api_version: str, kind: str) -> Object:
    """The ownerReference a controller puts on what it creates (controller, blocks deletion)."""
    m = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": m["name"], "uid": m["uid"],
            "controller": True, "blockOwnerDeletion": True}


def resolve_controller_ref(lister: Lister, namespace: str, ref: Object | None,
                           kind: str) -> Object | None:
    """The cached owner a controller ref names, if it is of `kind` and its uid still matches."""
    if not ref or ref.get("kind") != kind:
        return None
    owner = lister.get(namespace, str(ref.get("name", "")))
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner
