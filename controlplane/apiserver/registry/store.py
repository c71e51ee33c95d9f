"""The generic store: create, get, list, update, patch, delete and watch for every resource.

One fixed pipeline per verb, as Kubernetes' generic registry: conversion to the storage version,
system metadata, strategy defaults/prepare/validate, admission, the resource's `Hooks` if it has
any, then one storage operation (a transaction; updates inside `guaranteed_update`), and the
result converted back to the served version. The verbs take and return objects of the served
version; the strategy, admission, hooks, `guaranteed_update`, `prepare_update` and the watch
cache (hence `watch`'s events, which the caller converts with `from_storage`) see the storage
form. Storage failures become API errors here: a key that exists is 409 AlreadyExists, a missing
one 404, a stale resourceVersion 409 Conflict, etcd away 503.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from controlplane.api import errors, meta, validation
from controlplane.api.selectors import FieldSelector, LabelSelector
from controlplane.apiserver.registry.hooks import Finish, Hooks, finishing
from controlplane.apiserver.registry.resources import ResourceInfo
from controlplane.apiserver.storage import interface as st
from controlplane.apiserver.storage.cacher import WatchCache, Watcher

Object = dict[str, Any]
T = TypeVar("T")
# What an update makes of the current object (both in the served version), as Kubernetes'
# UpdatedObjectInfo: a PUT's body with managed fields recorded, a patch applied, ...
Change = Callable[[Object], Object]
# Called before a write with (operation, resource, new object, old object); raises APIError.
Admit = Callable[[str, ResourceInfo, Object | None, Object | None], Awaitable[None]]
_SERVER_OWNED = ("uid", "creationTimestamp", "resourceVersion", "generation",
                 "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")


@dataclass
class ListOptions:
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None  # in the served version's field labels
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""


@dataclass
class ListPage:
    items: list[Object]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


async def _no_admission(op: str, info: ResourceInfo, new: Object | None,
                        old: Object | None) -> None:
    return None


class Store:
    """The verbs of one resource over a `Storage` and its watch cache."""

    def __init__(self, info: ResourceInfo, storage: st.Storage, cache: WatchCache,
                 admit: Admit = _no_admission, hooks: Hooks | None = None) -> None:
        self.info = info
        self.storage = storage
        self.cache = cache
        self.admit = admit
        self.hooks = hooks
        self.strategy = info.strategy
        self.conversion = info.conversion

    def __repr__(self) -> str:
        return f"<Store {self.info.resource}.{self.info.group_version}>"

    # -- helpers ---------------------------------------------------------------------------------

    def _not_found(self, name: str) -> errors.NotFound:
        return errors.NotFound.of(self.info.resource, self.info.group, name)

    def _invalid(self, name: str, causes: list[errors.Cause]) -> errors.Invalid:
        return errors.Invalid.of(self.info.kind, self.info.group, name, causes)

    def _conflict(self, name: str) -> errors.Conflict:
        return errors.Conflict.modified(self.info.resource, self.info.group, name)

    def _type_meta(self, obj: Object) -> None:
        """Stamp the storage version's apiVersion and kind on a storage-form object."""
        if self.conversion is None:
            obj["apiVersion"], obj["kind"] = self.info.api_version, self.info.kind
        else:
            obj["apiVersion"], obj["kind"] = self.conversion.api_version, self.conversion.kind

    def to_storage(self, obj: Object) -> Object:
        """`obj` (served version) as it is stored (itself when the versions are one)."""
        if self.conversion is None:
            return obj
        return self.conversion.to_storage(obj)

    def from_storage(self, obj: Object) -> Object:
        """A stored object as the served version shows it (itself when the versions are one)."""
        if self.conversion is None:
            return obj
        return self.conversion.from_storage(obj)

    def _validate_meta(self, obj: Object) -> list[errors.Cause]:
        return validation.validate_object_meta(obj.get("metadata") or {},
                                               namespaced=self.info.namespaced,
                                               name_validator=self.strategy.name_validator)

    # -- create ----------------------------------------------------------------------------------

    async def create(self, namespace: str, body: Object, *, dry_run: bool = False) -> Object:
        """POST: store `body` as a new object and return it as stored."""
        created = await self._create(namespace, self.to_storage(body), dry_run=dry_run)
        return self.from_storage(created)

    async def _create(self, namespace: str, body: Object, *, dry_run: bool) -> Object:
        obj = copy.deepcopy(body)
        self._type_meta(obj)
        m = meta.meta(obj)
        for key in _SERVER_OWNED:
            m.pop(key, None)
        if self.info.namespaced:
            if m.get("namespace") and m["namespace"] != namespace:
                raise errors.BadRequest("the namespace of the provided object does not match "
                                        "the namespace sent on the request")
            m["namespace"] = namespace
        else:
            m.pop("namespace", None)
        if not m.get("name") and m.get("generateName"):
            m["name"] = meta.generate_name(str(m["generateName"]))
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = meta.now_rfc3339()
        if self.strategy.has_status:
            m["generation"] = 1
        self.strategy.default(obj)
        self.strategy.prepare_for_create(obj)
        causes = self._validate_meta(obj) + self.strategy.validate(obj)
        if causes:
            raise self._invalid(str(m.get("name", "")), causes)
        await self.admit("CREATE", self.info, obj, None)
        key = self.info.key(namespace, m["name"])
        finishes: list[Finish] = []
        if self.hooks is not None:
            finishes.append(await self._storage(self.hooks.begin_create(obj, dry_run=dry_run)))
        async with finishing(finishes):
            if dry_run:
                if await self._storage(self.storage.get(key)) is not None:
                    raise errors.AlreadyExists.of(self.info.resource, self.info.group,
                                                  m["name"])
                return obj
            try:
                return await self._storage(self.storage.create(key, obj))
            except st.KeyExists:
                raise errors.AlreadyExists.of(self.info.resource, self.info.group,
                                              m["name"]) from None

    # -- read ------------------------------------------------------------------------------------

    async def get(self, namespace: str, name: str, *, resource_version: str = "") -> Object:
        key = self.info.key(namespace, name)
        if resource_version and await self._cache_serves(_revision(resource_version)):
            obj = self.cache.get(key)
        else:
            obj = await self._storage(self.storage.get(key))
        if obj is None:
            raise self._not_found(name)
        return self.from_storage(obj)

    def predicate(self, opts: ListOptions) -> Callable[[Object], bool]:
        """Whether a storage-form object matches the options' selectors."""
        labels, fields = opts.label_selector, opts.field_selector
        if fields is not None and self.conversion is not None:
            fields = self.conversion.field_selector(fields)

        def matches(obj: Object) -> bool:
            if labels is not None and not labels.matches(
                    (obj.get("metadata") or {}).get("labels") or {}):
                return False
            return fields is None or fields.matches(self.strategy.field_set(obj))

        return matches

    def _prefix(self, namespace: str) -> str:
        return self.info.key(namespace, "") if namespace and self.info.namespaced else (
            self.info.key_prefix)

    async def list(self, namespace: str, opts: ListOptions) -> ListPage:
        predicate = self.predicate(opts)
        prefix = self._prefix(namespace)
        if opts.resource_version and not opts.continue_token and await self._cache_serves(
                _revision(opts.resource_version)):
            cached, cache_revision = self.cache.list(prefix, predicate)
            return ListPage([self.from_storage(o) for o in cached], str(cache_revision))
        revision, start = 0, ""
        if opts.continue_token:
            revision, start = _decode_continue(opts.continue_token, prefix)
        items: list[Object] = []
        while True:
            want = opts.limit - len(items) if opts.limit else 0
            try:
                page = await self._storage(self.storage.list(
                    prefix, revision=revision, limit=want, start_key=start))
            except st.Compacted:
                raise errors.Expired(_CONTINUE_EXPIRED) from None
            except st.FutureRevision:
                raise errors.BadRequest("continue key is not valid: the resourceVersion it "
                                        "names is in the future") from None
            revision = page.revision
            items += [o for o in page.items if predicate(o)]
            start = page.next_key
            if not start or (opts.limit and len(items) >= opts.limit):
                break
        token = _encode_continue(revision, start, prefix) if start else ""
        # With a selector the count of what follows is unknown: Kubernetes omits it then.
        remaining = page.remaining if token and not (
            opts.label_selector or opts.field_selector) else None
        return ListPage([self.from_storage(o) for o in items], str(revision), token, remaining)

    async def _cache_serves(self, revision: int) -> bool:
        """Whether the watch cache can answer a read not older than `revision`.

        The cache advances only with its own resource's changes, so a revision the store
        reached through other resources is served by a (consistent) storage read instead;
        a revision beyond the store's is waited for, then 504, as Kubernetes does.
        """
        await self.cache.wait_fresh(0)
        if self.cache.revision >= revision:
            return True
        if revision <= await self._storage(self.storage.current_revision()):
            return False
        await self.cache.wait_fresh(revision)
        return True

    def watch(self, namespace: str, opts: ListOptions) -> Watcher:
        """Watch the cache: its events carry storage-form objects (see `from_storage`)."""
        revision = _revision(opts.resource_version) if opts.resource_version else 0
        return self.cache.watch(revision, self._prefix(namespace), self.predicate(opts))

    # -- update ----------------------------------------------------------------------------------

    def _check_identity(self, namespace: str, name: str, obj: Object) -> None:
        m = meta.meta(obj)
        if m.get("name") and m["name"] != name:
            raise errors.BadRequest(f"the name of the object ({m['name']}) does not match the "
                                    f"name on the URL ({name})")
        if self.info.namespaced and m.get("namespace") and m["namespace"] != namespace:
            raise errors.BadRequest("the namespace of the provided object does not match the "
                                    "namespace sent on the request")

    def prepare_update(self, current: Object, new: Object, subresource: str) -> Object:
        """Return what `new` becomes when written over `current`, both in storage form
        (raises Invalid)."""
        name = current["metadata"]["name"]
        new = copy.deepcopy(new)
        self._type_meta(new)
        m = meta.meta(new)
        old_meta = current["metadata"]
        for key in _SERVER_OWNED:
            if key in old_meta and key != "resourceVersion":
                m[key] = old_meta[key]
            elif key != "resourceVersion":
                m.pop(key, None)
        m["name"] = name
        if self.info.namespaced:
            m["namespace"] = old_meta.get("namespace")
        if subresource == "status":
            result = self.strategy.prepare_for_status_update(new, current)
            causes = self.strategy.validate_status_update(result, current)
        else:
            self.strategy.default(new)
            self.strategy.prepare_for_update(new, current)
            result = new
            causes = self._validate_meta(result) + self.strategy.validate_update(result, current)
            causes += _no_new_finalizers(result, current)
            if self.strategy.has_status and self.strategy.spec_changed(result, current):
                result["metadata"]["generation"] = int(old_meta.get("generation") or 1) + 1
        if causes:
            raise self._invalid(name, causes)
        return result

    async def update(self, namespace: str, name: str, body: Object, *, subresource: str = "",
                     dry_run: bool = False,
                     manage: Callable[[Object | None, Object], Object] | None = None,
                     ) -> tuple[Object, bool]:
        """PUT: replace the object (or its status); returns (object, created)."""
        self._check_identity(namespace, name, body)
        expected = (body.get("metadata") or {}).get("resourceVersion")

        def replace(current: Object) -> Object:
            if expected and expected != current["metadata"]["resourceVersion"]:
                raise self._conflict(name)
            return manage(current, body) if manage is not None else body

        try:
            return await self.modify(namespace, name, replace, subresource=subresource,
                                     dry_run=dry_run), False
        except errors.NotFound:
            if not self.strategy.allow_create_on_update or subresource:
                raise
            return await self.create(namespace, manage(None, body) if manage else body,
                                     dry_run=dry_run), True

    async def modify(self, namespace: str, name: str, change: Change, *, subresource: str = "",
                     dry_run: bool = False) -> Object:
        """Write what `change` makes of the current object (retried on conflicts): the update
        behind PUT and PATCH. `change` sees and returns the served version."""

        async def mutate(current: Object) -> Object:
            new = self.to_storage(change(self.from_storage(current)))
            return self.prepare_update(current, new, subresource)

        return self.from_storage(await self.guaranteed_update(namespace, name, mutate,
                                                              dry_run=dry_run))

    async def guaranteed_update(self, namespace: str, name: str,
                                mutate: Callable[[Object], Awaitable[Object]], *,
                                dry_run: bool = False) -> Object:
        """Apply `mutate` (which prepares and validates) to the current object and write it;
        both in storage form."""
        key = self.info.key(namespace, name)
        finishes: list[Finish] = []  # of the latest try: only its object gets written

        async def tried(current: Object) -> Object:
            updated = await mutate(current)
            await self.admit("UPDATE", self.info, updated, current)
            if self.hooks is not None:
                while finishes:  # an earlier try lost a race: undo what it began
                    await finishes.pop()(False)
                finishes.append(await self.hooks.begin_update(updated, current, dry_run=dry_run))
            if dry_run:
                raise _DryRun(updated)
            return updated

        async with finishing(finishes):
            try:
                result = await self._storage(self.storage.guaranteed_update(key, tried))
            except st.KeyNotFound:
                raise self._not_found(name) from None
            except _DryRun as done:
                return done.obj
        if _finished_deleting(result):
            written = result["metadata"]["resourceVersion"]

            def unchanged(obj: Object) -> None:  # e.g. a finalizer added meanwhile keeps it
                if obj["metadata"].get("resourceVersion") != written:
                    raise _ChangedSince()

            try:
                deleted = await self._storage(self.storage.delete(key, check=unchanged))
            except (st.KeyNotFound, _ChangedSince):
                return result
            if self.hooks is not None:
                await self.hooks.after_delete(deleted)
            return deleted
        return result

    # -- delete ----------------------------------------------------------------------------------

    async def delete(self, namespace: str, name: str, options: Object, *,
                     dry_run: bool = False) -> tuple[Object, bool]:
        """DELETE: returns (object, deleted now) — not now when graceful or finalizers wait."""
        key = self.info.key(namespace, name)
        current = await self._storage(self.storage.get(key))
        if current is None:
            raise self._not_found(name)
        _check_preconditions(options.get("preconditions") or {}, current, self.info)
        grace = self.strategy_grace(current, options.get("gracePeriodSeconds"))
        finalizers = _finalizers_for(current, options.get("propagationPolicy"))
        if grace > 0 or finalizers or self._namespace_needs_finalizing(current):
            mark = _DeleteMark(grace, finalizers, self.info.resource == "namespaces")
            marked = await self.guaranteed_update(namespace, name, mark, dry_run=dry_run)
            return self.from_storage(marked), False
        await self.admit("DELETE", self.info, None, current)
        if dry_run:
            return self.from_storage(current), True
        try:
            deleted = await self._storage(self.storage.delete(
                key, check=lambda obj: _check_preconditions(
                    options.get("preconditions") or {}, obj, self.info)))
        except st.KeyNotFound:
            raise self._not_found(name) from None
        if self.hooks is not None:
            await self.hooks.after_delete(deleted)
        return self.from_storage(deleted), True

    def strategy_grace(self, obj: Object, requested: Any) -> int:
        graceful = getattr(self.strategy, "grace_period", None)
        if graceful is None:
            return 0
        return int(graceful(obj, requested))

    def _namespace_needs_finalizing(self, obj: Object) -> bool:
        return self.info.resource == "namespaces" and bool(
            (obj.get("spec") or {}).get("finalizers"))

    async def _storage(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except st.Unavailable as exc:
            raise errors.ServiceUnavailable(f"etcd is unavailable: {exc}") from None
        except st.FutureRevision as exc:
            raise errors.Timeout(f"Too large resource version: {exc}", retry_after=1) from None
        except st.RevisionConflict:
            raise errors.Conflict("the object has been modified") from None


class _ChangedSince(Exception):
    """The object changed after the write that finished its deletion: keep it."""


class _DryRun(Exception):
    def __init__(self, obj: Object) -> None:
        self.obj = obj


class _DeleteMark:
    """The update that marks an object deleted: deletionTimestamp, grace, finalizers."""

    def __init__(self, grace: int, finalizers: list[str], namespace: bool) -> None:
        self.grace, self.finalizers, self.namespace = grace, finalizers, namespace

    async def __call__(self, obj: Object) -> Object:
        m = obj["metadata"]
        now = datetime.now(UTC)
        existing = m.get("deletionTimestamp")
        deadline = (now + timedelta(seconds=self.grace)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if not existing or (self.grace < int(m.get("deletionGracePeriodSeconds") or 0)):
            m["deletionTimestamp"] = deadline
            m["deletionGracePeriodSeconds"] = self.grace
        for finalizer in self.finalizers:
            if finalizer not in (m.get("finalizers") or []):
                m.setdefault("finalizers", []).append(finalizer)
        if self.namespace:
            obj.setdefault("status", {})["phase"] = "Terminating"
        return obj


def _no_new_finalizers(new: Object, old: Object) -> list[errors.Cause]:
    if not old["metadata"].get("deletionTimestamp"):
        return []
    before = set(old["metadata"].get("finalizers") or [])
    added = [f for f in new["metadata"].get("finalizers") or [] if f not in before]
    if not added:
        return []
    listed = ", ".join(f'"{f}"' for f in added)
    return [errors.Cause(errors.FIELD_FORBIDDEN, "Forbidden: no new finalizers can be added if "
                         f"the object is being deleted, found new finalizers []string{{{listed}}}",
                         "metadata.finalizers")]


def _finished_deleting(obj: Object) -> bool:
    m = obj.get("metadata") or {}
    return bool(m.get("deletionTimestamp")) and not m.get("finalizers") and not int(
        m.get("deletionGracePeriodSeconds") or 0) and not (
        (obj.get("spec") or {}).get("finalizers") if obj.get("kind") == "Namespace" else False)


def _finalizers_for(obj: Object, policy: Any) -> list[str]:
    existing = list((obj.get("metadata") or {}).get("finalizers") or [])
    if policy == "Foreground":
        existing.append("foregroundDeletion")
    elif policy == "Orphan":
        existing.append("orphan")
    elif policy not in (None, "Background"):
        raise errors.BadRequest(f'Unsupported value: "{policy}": supported values: '
                                '"Foreground", "Background", "Orphan"')
    return existing


def _check_preconditions(pre: Object, obj: Object, info: ResourceInfo) -> None:
    m = obj["metadata"]
    if pre.get("uid") and pre["uid"] != m.get("uid"):
        raise errors.Conflict(
            f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
            f"{m.get('uid')}", name=m["name"], group=info.group, kind=info.resource)
    if pre.get("resourceVersion") and pre["resourceVersion"] != m.get("resourceVersion"):
        raise errors.Conflict(
            f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
            f"ResourceVersion in object meta: {m.get('resourceVersion')}",
            name=m["name"], group=info.group, kind=info.resource)


def _revision(resource_version: str) -> int:
    try:
        value = int(resource_version)
    except ValueError:
        raise errors.BadRequest(f"invalid resource version: {resource_version!r}") from None
    if value < 0:
        raise errors.BadRequest(f"invalid resource version: {resource_version!r}")
    return value


_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter.")


def _encode_continue(revision: int, next_key: str, prefix: str) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": revision, "start": next_key.removeprefix(prefix)}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def _decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        revision, start = int(raw["rv"]), str(raw["start"])
        if raw.get("v") != "meta.k8s.io/v1" or revision <= 0 or ".." in start:
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise errors.BadRequest("continue key is not valid: incorrect encoded start "
                                "resourceVersion (version meta.k8s.io/v1)") from None
    return revision, prefix + start
