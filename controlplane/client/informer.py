"""Informers: list, then watch from the list's resourceVersion, keeping a local cache.

The cache is eventually consistent: the states it shows are a subsequence of the real ones.
On 410 Expired (the watch fell out of the server's window) the informer relists; on a broken
stream it re-watches from the last resourceVersion it saw; on any other failure it backs off
and relists. Handlers run synchronously on the informer's task and must be quick: they enqueue
keys for workers, they never call the API. An optional `transform` (client-go's SetTransform)
rewrites every object before it is cached and handed to handlers, e.g. to drop the fields a
daemon never reads (`strip_managed_fields`), so the cache is the one, smaller copy it holds.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

from controlplane.api import errors
from controlplane.client.rest import Resource, RESTClient

log = logging.getLogger(__name__)
Object = dict[str, Any]
AddHandler = Callable[[Object], None]
UpdateHandler = Callable[[Object, Object], None]
DeleteHandler = Callable[[Object], None]
Transform = Callable[[Object], Object]


def key_of(obj: Object) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (client-go's MetaNamespaceKey)."""
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def strip_managed_fields(obj: Object) -> Object:
    """A transform: the object without metadata.managedFields (client-go's
    TransformStripManagedFields); few clients read them and they are often half an object."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


class Informer:
    """A cached, watched view of one resource (optionally one namespace / selector)."""

    def __init__(self, client: RESTClient, resource: Resource, *, namespace: str = "",
                 label_selector: str = "", field_selector: str = "",
                 resync: float = 0.0, transform: Transform | None = None) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync  # seconds between re-deliveries of every object as an update
        # Applied to each object before it is cached (see above); it may change the object it
        # is given in place and return it.
        self.transform = transform
        self.store: dict[str, Object] = {}  # key -> object, owned by the informer's task
        self.resource_version = ""
        self.synced = asyncio.Event()
        self._on_add: list[AddHandler] = []
        self._on_update: list[UpdateHandler] = []
        self._on_delete: list[DeleteHandler] = []
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (f"<Informer {self.resource.resource} objects={len(self.store)} "
                f"rv={self.resource_version}>")

    def add_handlers(self, *, on_add: AddHandler | None = None,
                     on_update: UpdateHandler | None = None,
                     on_delete: DeleteHandler | None = None) -> None:
        if on_add:
            self._on_add.append(on_add)
        if on_update:
            self._on_update.append(on_update)
        if on_delete:
            self._on_delete.append(on_delete)

    # -- lister ----------------------------------------------------------------------------------

    def get(self, key: str) -> Object | None:
        """The cached object (a copy: never mutate what the informer holds)."""
        obj = self.store.get(key)
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, namespace: str = "") -> list[Object]:
        return [copy.deepcopy(o) for o in self.store.values()
                if not namespace or o["metadata"].get("namespace") == namespace]

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer {self.resource.resource}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.synced.wait(), timeout)

    async def _run(self) -> None:
        delay = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    delay = 0.2
                await self._watch()
            except asyncio.CancelledError:
                raise
            except (errors.Expired, errors.Gone):
                log.info("informer %s: resourceVersion %s expired; relisting",
                         self.resource.resource, self.resource_version)
                need_list = True
            except errors.APIError as exc:
                log.warning("informer %s: %s; retrying in %.1fs", self.resource.resource,
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                need_list = isinstance(exc, errors.ServiceUnavailable) is False
            except Exception:  # noqa: BLE001 - an informer must survive anything
                log.exception("informer %s failed; relisting", self.resource.resource)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                need_list = True

    async def _list(self) -> None:
        result = await self.client.list(self.resource, self.namespace,
                                        label_selector=self.label_selector,
                                        field_selector=self.field_selector)
        items = result.get("items") or []
        if self.transform is not None:
            items = [self._transformed(o) for o in items]
        fresh = {key_of(o): o for o in items}
        old = self.store
        self.store = fresh
        self.resource_version = result["metadata"]["resourceVersion"]
        for key, obj in fresh.items():
            if key in old:
                if old[key]["metadata"].get("resourceVersion") != obj["metadata"].get(
                        "resourceVersion"):
                    self._dispatch_update(old[key], obj)
            else:
                self._dispatch("add", obj)
        for key, obj in old.items():
            if key not in fresh:
                self._dispatch("delete", obj)
        self.synced.set()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        resync_at = loop.time() + self.resync if self.resync else None
        async for event in self.client.watch(
                self.resource, self.namespace, resource_version=self.resource_version,
                label_selector=self.label_selector, field_selector=self.field_selector):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                status = obj
                if status.get("code") == 410:
                    raise errors.Expired(str(status.get("message", "")))
                raise errors.InternalError(str(status.get("message", "watch error")))
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = rv
            if kind == "BOOKMARK":
                continue
            if self.transform is not None:
                obj = self._transformed(obj)
            self._apply(str(kind), obj)
            if resync_at is not None and loop.time() >= resync_at:
                for cached in list(self.store.values()):
                    self._dispatch_update(cached, cached)
                resync_at = loop.time() + self.resync

    def _transformed(self, obj: Object) -> Object:
        """The transform's result; the object as it came when the transform fails on it."""
        assert self.transform is not None
        try:
            return self.transform(obj)
        except Exception:  # noqa: BLE001 - one odd object must not stop the informer
            log.exception("informer %s: transform failed on an object; caching it whole",
                          self.resource.resource)
            return obj

    def _apply(self, kind: str, obj: Object) -> None:
        key = key_of(obj)
        if kind == "DELETED":
            old = self.store.pop(key, None)
            self._dispatch("delete", old or obj)
        elif key in self.store:
            old = self.store[key]
            self.store[key] = obj
            self._dispatch_update(old, obj)
        else:
            self.store[key] = obj
            self._dispatch("add", obj)

    def _dispatch(self, what: str, obj: Object) -> None:
        for handler in self._on_add if what == "add" else self._on_delete:
            try:
                handler(obj)
            except Exception:  # noqa: BLE001 - one bad handler must not stop the informer
                log.exception("informer %s: %s handler failed", self.resource.resource, what)

    def _dispatch_update(self, old: Object, new: Object) -> None:
        for handler in self._on_update:
            try:
                handler(old, new)
            except Exception:  # noqa: BLE001
                log.exception("informer %s: update handler failed", self.resource.resource)
