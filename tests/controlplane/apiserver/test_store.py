"""The generic Store over MemoryStorage and its watch cache: the create/update/list/delete
pipelines as Kubernetes' generic registry runs them (system metadata, defaults, validation,
optimistic concurrency, spec/status split, selectors and paging, graceful deletion and
finalizers, preconditions)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.selectors import FieldSelector, LabelSelector
from controlplane.apiserver.registry.resources import lookup
from controlplane.apiserver.registry.store import ListOptions, Store
from controlplane.apiserver.storage.cacher import WatchCache
from controlplane.apiserver.storage.interface import Object
from controlplane.apiserver.storage.memory import MemoryStorage

Stores = Callable[[str, str, str], Store]
CONFLICT = ('Operation cannot be fulfilled on {}: the object has been modified; please apply '
            'your changes to the latest version and try again')
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
async def stores(storage: MemoryStorage) -> AsyncIterator[Stores]:
    """`stores(group, version, resource)`: that resource's Store, its cache started."""
    caches: dict[str, WatchCache] = {}

    def make(group: str, version: str, resource: str) -> Store:
        info = lookup(group, version, resource)
        assert info is not None
        if info.key_prefix not in caches:
            caches[info.key_prefix] = WatchCache(storage, info.key_prefix)
            caches[info.key_prefix].start()
        return Store(info, storage, caches[info.key_prefix])

    try:
        yield make
    finally:
        for cache in caches.values():
            await cache.stop()


@pytest.fixture
async def pods(stores: Stores) -> Store:
    return stores("", "v1", "pods")


@pytest.fixture
async def configmaps(stores: Stores) -> Store:
    return stores("", "v1", "configmaps")


def pod(name: str = "p", image: str = "busybox", **spec: Any) -> Object:
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": image}], **spec}}


def configmap(name: str, **labels: str) -> Object:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def names(items: list[Object]) -> list[str]:
    return [o["metadata"]["name"] for o in items]


def rv(obj: Object) -> str:
    return str(obj["metadata"]["resourceVersion"])


# --- create -----------------------------------------------------------------------------------

async def test_create_fills_system_metadata(pods: Store, storage: MemoryStorage) -> None:
    body = pod("web")
    body["metadata"].update(uid="forged", resourceVersion="77", generation=9,
                            creationTimestamp="2000-01-01T00:00:00Z",
                            deletionTimestamp="2000-01-01T00:00:00Z")
    created = await pods.create("default", body)
    m = created["metadata"]
    assert (created["apiVersion"], created["kind"]) == ("v1", "Pod")
    assert (m["name"], m["namespace"]) == ("web", "default")
    assert str(uuid.UUID(m["uid"])) == m["uid"] != "forged"
    assert RFC3339.match(m["creationTimestamp"]) and m["creationTimestamp"] != (
        "2000-01-01T00:00:00Z")
    assert m["generation"] == 1
    assert "deletionTimestamp" not in m
    assert int(m["resourceVersion"]) == await storage.current_revision()
    assert await pods.get("default", "web") == created
    assert body["metadata"]["uid"] == "forged"  # the request body is not changed


async def test_create_defaults_a_pod(pods: Store) -> None:
    body = pod("web", image="busybox")
    body["spec"]["containers"].append({"name": "pinned", "image": "busybox:1.36"})
    body["status"] = {"phase": "Running"}  # a client cannot set status on create
    created = await pods.create("default", body)
    spec = created["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert [c["imagePullPolicy"] for c in spec["containers"]] == ["Always", "IfNotPresent"]
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(("resources", "qos"), [
    ({"requests": {"cpu": "100m"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
     "Guaranteed"),
], ids=["burstable", "limits-only", "requests-equal-limits"])
async def test_create_sets_the_qos_class(pods: Store, resources: Object, qos: str) -> None:
    body = pod()
    body["spec"]["containers"][0]["resources"] = resources
    assert (await pods.create("default", body))["status"]["qosClass"] == qos


async def test_create_with_generate_name(configmaps: Store) -> None:
    body = {"metadata": {"generateName": "cfg-"}}
    first = await configmaps.create("default", body)
    second = await configmaps.create("default", body)
    for created in (first, second):
        assert re.fullmatch(r"cfg-[a-z0-9]{5}", created["metadata"]["name"])
        assert created["metadata"]["generateName"] == "cfg-"
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_create_twice_is_already_exists(configmaps: Store) -> None:
    await configmaps.create("default", configmap("a"))
    with pytest.raises(errors.AlreadyExists) as raised:
        await configmaps.create("default", configmap("a"))
    assert raised.value.message == 'configmaps "a" already exists'
    assert raised.value.code == 409


async def test_dry_run_create_writes_nothing(pods: Store, storage: MemoryStorage) -> None:
    revision = await storage.current_revision()
    created = await pods.create("default", pod("web"), dry_run=True)
    assert created["metadata"]["uid"] and created["status"]["phase"] == "Pending"
    assert await storage.current_revision() == revision
    with pytest.raises(errors.NotFound):
        await pods.get("default", "web")
    await pods.create("default", pod("web"))
    with pytest.raises(errors.AlreadyExists):
        await pods.create("default", pod("web"), dry_run=True)


async def test_an_invalid_object_reports_every_cause(pods: Store, storage: MemoryStorage) -> None:
    revision = await storage.current_revision()
    body = {"metadata": {"name": "Bad_Name", "labels": {"ok": "not ok!"}},
            "spec": {"containers": [{"name": "c"}, {"image": "busybox"}],
                     "restartPolicy": "Sometimes"}}
    with pytest.raises(errors.Invalid) as raised:
        await pods.create("default", body)
    error = raised.value
    assert error.code == 422 and error.kind == "Pod" and error.name == "Bad_Name"
    assert error.message.startswith('Pod "Bad_Name" is invalid: ')
    fields = {c.field: c.reason for c in error.causes}
    assert fields == {
        "metadata.name": "FieldValueInvalid",
        "metadata.labels": "FieldValueInvalid",
        "spec.containers[0].image": "FieldValueRequired",
        "spec.containers[1].name": "FieldValueRequired",
        "spec.restartPolicy": "FieldValueNotSupported",
    }
    restart = next(c for c in error.causes if c.field == "spec.restartPolicy")
    assert restart.message == ('Unsupported value: "Sometimes": supported values: "Always", '
                               '"OnFailure", "Never"')
    assert await storage.current_revision() == revision


async def test_a_namespace_mismatch_is_bad_request(configmaps: Store) -> None:
    body = configmap("a")
    body["metadata"]["namespace"] = "other"
    with pytest.raises(errors.BadRequest):
        await configmaps.create("default", body)


# --- update -----------------------------------------------------------------------------------

async def test_update_with_a_stale_resource_version_is_conflict(configmaps: Store) -> None:
    created = await configmaps.create("default", configmap("a"))
    changed = {**created, "data": {"k": "v2"}}
    updated, was_created = await configmaps.update("default", "a", changed)
    assert not was_created and updated["data"] == {"k": "v2"}
    assert int(rv(updated)) > int(rv(created))
    with pytest.raises(errors.Conflict) as raised:
        await configmaps.update("default", "a", {**created, "data": {"k": "v3"}})
    assert raised.value.message == CONFLICT.format('configmaps "a"')
    assert raised.value.code == 409
    assert (await configmaps.get("default", "a"))["data"] == {"k": "v2"}
    unconditional = {**created, "metadata": {**created["metadata"], "resourceVersion": ""},
                     "data": {"k": "v4"}}
    assert (await configmaps.update("default", "a", unconditional))[0]["data"] == {"k": "v4"}


async def test_update_of_a_missing_object_is_not_found(configmaps: Store) -> None:
    with pytest.raises(errors.NotFound) as raised:
        await configmaps.update("default", "nope", configmap("nope"))
    assert raised.value.message == 'configmaps "nope" not found'


async def test_update_keeps_server_owned_metadata(configmaps: Store) -> None:
    created = await configmaps.create("default", configmap("a"))
    body = {**created, "metadata": {**created["metadata"], "uid": "forged",
                                    "creationTimestamp": "2000-01-01T00:00:00Z"}}
    updated, _ = await configmaps.update("default", "a", body)
    for field in ("uid", "creationTimestamp"):
        assert updated["metadata"][field] == created["metadata"][field]


async def test_generation_bumps_on_spec_changes_only(pods: Store) -> None:
    created = await pods.create("default", pod("web"))
    relabeled = {**created, "metadata": {**created["metadata"], "labels": {"app": "web"}}}
    after_labels, _ = await pods.update("default", "web", relabeled)
    assert after_labels["metadata"]["generation"] == 1
    assert after_labels["metadata"]["labels"] == {"app": "web"}
    new_image = {**after_labels, "spec": {**after_labels["spec"], "containers": [
        {**after_labels["spec"]["containers"][0], "image": "busybox:1.36"}]}}
    after_image, _ = await pods.update("default", "web", new_image)
    assert after_image["metadata"]["generation"] == 2
    assert after_image["spec"]["containers"][0]["image"] == "busybox:1.36"


async def test_main_resource_ignores_status_and_status_ignores_spec(pods: Store) -> None:
    created = await pods.create("default", pod("web"))
    with_status = {**created, "status": {"phase": "Running"}}
    updated, _ = await pods.update("default", "web", with_status)
    assert updated["status"]["phase"] == "Pending"
    status_body = {**updated, "status": {"phase": "Running", "podIP": "10.0.0.5"},
                   "spec": {**updated["spec"], "containers": [
                       {**updated["spec"]["containers"][0], "image": "other"}]}}
    status_updated, _ = await pods.update("default", "web", status_body, subresource="status")
    assert status_updated["status"] == {"phase": "Running", "podIP": "10.0.0.5"}
    assert status_updated["spec"] == updated["spec"]
    assert status_updated["metadata"]["generation"] == 1
    stale = {**updated, "status": {"phase": "Failed"}}
    with pytest.raises(errors.Conflict):
        await pods.update("default", "web", stale, subresource="status")


async def test_a_pod_spec_field_that_may_not_change_is_forbidden(pods: Store) -> None:
    created = await pods.create("default", pod("web"))
    changed = {**created, "spec": {**created["spec"], "restartPolicy": "Never"}}
    with pytest.raises(errors.Invalid) as raised:
        await pods.update("default", "web", changed)
    assert [c.field for c in raised.value.causes] == ["spec"]


async def test_dry_run_update_writes_nothing(configmaps: Store, storage: MemoryStorage) -> None:
    created = await configmaps.create("default", configmap("a"))
    revision = await storage.current_revision()
    result, _ = await configmaps.update("default", "a", {**created, "data": {"k": "dry"}},
                                        dry_run=True)
    assert result["data"] == {"k": "dry"}
    assert await storage.current_revision() == revision
    assert (await configmaps.get("default", "a"))["data"] == {"k": "v"}


# --- list -------------------------------------------------------------------------------------

async def test_list_with_label_and_field_selectors(pods: Store) -> None:
    for name, ns, node, app in [("a", "default", "n1", "web"), ("b", "default", "", "web"),
                                ("c", "default", "n1", "db"), ("d", "other", "n1", "web")]:
        body = pod(name, nodeName=node) if node else pod(name)
        body["metadata"]["labels"] = {"app": app}
        await pods.create(ns, body)
    web = ListOptions(label_selector=LabelSelector.parse("app=web"))
    assert names((await pods.list("default", web)).items) == ["a", "b"]
    assert names((await pods.list("", web)).items) == ["a", "b", "d"]
    on_n1 = ListOptions(field_selector=FieldSelector.parse("spec.nodeName=n1"))
    assert names((await pods.list("", on_n1)).items) == ["a", "c", "d"]
    both = ListOptions(label_selector=LabelSelector.parse("app!=db"),
                       field_selector=FieldSelector.parse("spec.nodeName=n1,metadata.name!=d"))
    assert names((await pods.list("", both)).items) == ["a"]
    unscheduled = ListOptions(field_selector=FieldSelector.parse("spec.nodeName="))
    assert names((await pods.list("", unscheduled)).items) == ["b"]
    pending = ListOptions(field_selector=FieldSelector.parse("status.phase=Pending"))
    assert len((await pods.list("", pending)).items) == 4


async def test_list_pages_with_limit_and_continue(configmaps: Store,
                                                  storage: MemoryStorage) -> None:
    for name in "abcde":
        await configmaps.create("default", configmap(name))
    await configmaps.create("other", configmap("z"))
    first = await configmaps.list("default", ListOptions(limit=2))
    assert names(first.items) == ["a", "b"]
    assert first.continue_token and first.remaining == 3
    assert first.resource_version == str(await storage.current_revision())
    await configmaps.delete("default", "c", {})  # later changes do not show in later pages
    second = await configmaps.list("default", ListOptions(
        limit=2, continue_token=first.continue_token))
    assert names(second.items) == ["c", "d"]
    assert second.resource_version == first.resource_version
    assert second.remaining == 1
    last = await configmaps.list("default", ListOptions(
        limit=2, continue_token=second.continue_token))
    assert names(last.items) == ["e"]
    assert (last.continue_token, last.remaining) == ("", None)


async def test_list_with_a_limit_and_a_selector_fills_the_page(configmaps: Store) -> None:
    for i, app in enumerate(["web", "db", "db", "web", "db", "web"]):
        await configmaps.create("default", configmap(f"c{i}", app=app))
    opts = ListOptions(label_selector=LabelSelector.parse("app=web"), limit=2)
    first = await configmaps.list("default", opts)
    assert names(first.items) == ["c0", "c3"]
    opts.continue_token = first.continue_token
    rest = await configmaps.list("default", opts)
    assert names(rest.items) == ["c5"] and not rest.continue_token


@pytest.mark.parametrize("token", [
    "garbage!", "e30", "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJhIn0",
], ids=["not-base64", "empty-object", "zero-revision"])
async def test_list_with_an_invalid_continue_is_bad_request(
        configmaps: Store, token: str) -> None:
    with pytest.raises(errors.BadRequest) as raised:
        await configmaps.list("default", ListOptions(limit=1, continue_token=token))
    assert raised.value.message.startswith("continue key is not valid")


async def test_list_with_a_continue_from_a_compacted_revision_is_expired(
        configmaps: Store, storage: MemoryStorage) -> None:
    for name in "abc":
        await configmaps.create("default", configmap(name))
    first = await configmaps.list("default", ListOptions(limit=1))
    await configmaps.delete("default", "c", {})
    await storage.compact(await storage.current_revision())
    with pytest.raises(errors.Expired) as raised:
        await configmaps.list("default", ListOptions(limit=1,
                                                     continue_token=first.continue_token))
    assert raised.value.code == 410


async def test_list_and_get_at_a_resource_version_come_from_the_cache(
        configmaps: Store, storage: MemoryStorage) -> None:
    created = await configmaps.create("default", configmap("a"))
    page = await configmaps.list("default", ListOptions(resource_version=rv(created)))
    assert page.items == [created] and int(page.resource_version) >= int(rv(created))
    assert await configmaps.get("default", "a", resource_version="0") == created
    with pytest.raises(errors.BadRequest):
        await configmaps.list("default", ListOptions(resource_version="abc"))


async def test_watch_through_the_store(configmaps: Store) -> None:
    await configmaps.create("default", configmap("a", app="web"))
    await configmaps.create("default", configmap("b", app="db"))
    watcher = configmaps.watch("default", ListOptions(
        label_selector=LabelSelector.parse("app=web")))
    first = await asyncio.wait_for(anext(watcher), 5)
    assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "a")
    await configmaps.delete("default", "a", {})
    gone = await asyncio.wait_for(anext(watcher), 5)
    assert (gone.type, gone.object["metadata"]["name"]) == ("DELETED", "a")
    watcher.close()


# --- delete -----------------------------------------------------------------------------------

async def test_a_scheduled_pod_is_deleted_gracefully(pods: Store) -> None:
    await pods.create("default", pod("web", nodeName="n1"))
    marked, now = await pods.delete("default", "web", {})
    assert not now
    m = marked["metadata"]
    assert m["deletionGracePeriodSeconds"] == 30 and RFC3339.match(m["deletionTimestamp"])
    assert await pods.get("default", "web") == marked
    again, now = await pods.delete("default", "web", {})  # a second delete changes nothing
    assert not now and again == marked
    gone, now = await pods.delete("default", "web", {"gracePeriodSeconds": 0})
    assert now and gone["metadata"]["uid"] == m["uid"]
    with pytest.raises(errors.NotFound):
        await pods.get("default", "web")


async def test_a_shorter_grace_period_moves_the_deletion_closer(pods: Store) -> None:
    await pods.create("default", pod("web", nodeName="n1"))
    await pods.delete("default", "web", {})
    marked, now = await pods.delete("default", "web", {"gracePeriodSeconds": 5})
    assert not now and marked["metadata"]["deletionGracePeriodSeconds"] == 5


async def test_an_unscheduled_pod_is_deleted_at_once(pods: Store) -> None:
    await pods.create("default", pod("web"))
    deleted, now = await pods.delete("default", "web", {})
    assert now and deleted["metadata"]["name"] == "web"
    with pytest.raises(errors.NotFound):
        await pods.get("default", "web")
    with pytest.raises(errors.NotFound):
        await pods.delete("default", "web", {})


@pytest.mark.parametrize(("policy", "finalizer"), [("Foreground", "foregroundDeletion"),
                                                   ("Orphan", "orphan")])
async def test_propagation_policies_add_finalizers(configmaps: Store, policy: str,
                                                   finalizer: str) -> None:
    await configmaps.create("default", configmap("a"))
    marked, now = await configmaps.delete("default", "a", {"propagationPolicy": policy})
    assert not now
    assert marked["metadata"]["finalizers"] == [finalizer]
    assert RFC3339.match(marked["metadata"]["deletionTimestamp"])
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert await configmaps.get("default", "a") == marked


async def test_an_unknown_propagation_policy_is_bad_request(configmaps: Store) -> None:
    await configmaps.create("default", configmap("a"))
    with pytest.raises(errors.BadRequest):
        await configmaps.delete("default", "a", {"propagationPolicy": "Sideways"})


async def test_removing_the_last_finalizer_of_a_deleting_object_deletes_it(
        configmaps: Store) -> None:
    body = configmap("a")
    body["metadata"]["finalizers"] = ["example.com/one", "example.com/two"]
    await configmaps.create("default", body)
    marked, now = await configmaps.delete("default", "a", {})
    assert not now and marked["metadata"]["deletionTimestamp"]
    marked["metadata"]["finalizers"] = ["example.com/two"]
    kept, _ = await configmaps.update("default", "a", marked)
    assert kept["metadata"]["finalizers"] == ["example.com/two"]
    assert kept["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    kept["metadata"]["finalizers"] = []
    last, _ = await configmaps.update("default", "a", kept)
    assert last["metadata"]["name"] == "a"
    with pytest.raises(errors.NotFound):
        await configmaps.get("default", "a")


async def test_delete_preconditions(configmaps: Store) -> None:
    created = await configmaps.create("default", configmap("a"))
    uid, version = created["metadata"]["uid"], rv(created)
    with pytest.raises(errors.Conflict) as raised:
        await configmaps.delete("default", "a", {"preconditions": {"uid": "other"}})
    assert raised.value.message == (
        f"Precondition failed: UID in precondition: other, UID in object meta: {uid}")
    with pytest.raises(errors.Conflict) as raised:
        await configmaps.delete("default", "a", {"preconditions": {"resourceVersion": "1"}})
    assert raised.value.message == (f"Precondition failed: ResourceVersion in precondition: 1, "
                                    f"ResourceVersion in object meta: {version}")
    assert await configmaps.get("default", "a") == created
    deleted, now = await configmaps.delete(
        "default", "a", {"preconditions": {"uid": uid, "resourceVersion": version}})
    assert now and deleted["metadata"]["uid"] == uid


async def test_dry_run_delete_keeps_the_object(configmaps: Store, pods: Store) -> None:
    created = await configmaps.create("default", configmap("a"))
    _, now = await configmaps.delete("default", "a", {}, dry_run=True)
    assert now and await configmaps.get("default", "a") == created
    scheduled = await pods.create("default", pod("web", nodeName="n1"))
    marked, now = await pods.delete("default", "web", {}, dry_run=True)
    assert not now and marked["metadata"]["deletionTimestamp"]
    assert await pods.get("default", "web") == scheduled
