"""The official Python client (`kubernetes`) against `pinnace apiserver` on a real etcd.

Each test loads the admin kubeconfig into its own ApiClient. The client's habits are the point:
bodies without kind/apiVersion, no Content-Type, dict patches sent as strategic merge patches,
timestamps echoed as `+00:00`, watches that expect synthetic ADDED events and honour timeouts.
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from controlplane.apiserver.storage.cacher import WatchCache
from pinnace.local.apiserver import APIServerProcess

# The number of events each resource's watch cache keeps; older resourceVersions are 410.
WATCH_WINDOW: int = inspect.signature(WatchCache).parameters["capacity"].default


@pytest.fixture
def api(apiserver: APIServerProcess) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(apiserver.kubeconfig),
                            client_configuration=configuration)
    with client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    name = f"py-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def pod(name: str, **labels: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox")]))


def deployment(name: str, replicas: int = 1) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels={"tier": "web"}),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="main", image="busybox:1.36")]))))


def configmap(name: str, **labels: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels or None),
                              data={"k": name})


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    assert (body["kind"], body["apiVersion"], body["status"]) == ("Status", "v1", "Failure")
    assert body["code"] == exc.status
    return body


def names(items: list[Any]) -> list[str]:
    return sorted(item.metadata.name for item in items)


# -- CRUD ------------------------------------------------------------------------------------------


def test_pod_crud_with_a_body_lacking_kind_and_api_version(api: client.ApiClient,
                                                           core: client.CoreV1Api,
                                                           ns: str) -> None:
    body = pod("pyp", app="py")
    wire = api.sanitize_for_serialization(body)
    assert "kind" not in wire and "apiVersion" not in wire  # what the client really sends

    created = core.create_namespaced_pod(ns, body)
    assert (created.kind, created.api_version) == ("Pod", "v1")
    assert created.metadata.namespace == ns and created.metadata.uid
    assert created.status.phase == "Pending"
    assert created.spec.containers[0].image_pull_policy == "Always"  # defaulted
    assert created.spec.service_account_name == "default"  # admission

    read = core.read_namespaced_pod("pyp", ns)
    assert read.metadata.uid == created.metadata.uid
    assert read.metadata.resource_version == created.metadata.resource_version
    assert read.metadata.creation_timestamp == created.metadata.creation_timestamp

    read.metadata.labels["extra"] = "yes"
    updated = core.replace_namespaced_pod("pyp", ns, read)
    assert updated.metadata.labels == {"app": "py", "extra": "yes"}
    assert int(updated.metadata.resource_version) > int(read.metadata.resource_version)

    deleted = core.delete_namespaced_pod("pyp", ns)
    assert deleted.metadata.name == "pyp"  # an unscheduled pod goes at once, object returned
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("pyp", ns)
    assert info.value.status == 404


def test_list_with_label_and_field_selectors(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, configmap("a", tier="web", env="prod"))
    core.create_namespaced_config_map(ns, configmap("b", tier="web", env="dev"))
    core.create_namespaced_config_map(ns, configmap("c", tier="db"))

    everything = core.list_namespaced_config_map(ns)
    assert (everything.kind, everything.api_version) == ("ConfigMapList", "v1")
    assert names(everything.items) == ["a", "b", "c"]
    assert int(everything.metadata.resource_version) > 0

    def listed(**selectors: str) -> list[str]:
        return names(core.list_namespaced_config_map(ns, **selectors).items)

    assert listed(label_selector="tier=web") == ["a", "b"]
    assert listed(label_selector="tier in (web,db),env!=prod") == ["b", "c"]
    assert listed(label_selector="!env") == ["c"]
    assert listed(field_selector="metadata.name=b") == ["b"]
    assert listed(field_selector="metadata.name!=b") == ["a", "c"]
    assert listed(label_selector="tier=web", field_selector="metadata.name!=a") == ["b"]

    core.create_namespaced_pod(ns, pod("p1"))
    pending = core.list_namespaced_pod(ns, field_selector="status.phase=Pending")
    assert names(pending.items) == ["p1"]
    assert core.list_namespaced_pod(ns, field_selector="spec.nodeName=nowhere").items == []
    across = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert names(across.items) == ["a", "b", "c"]


# -- watch -----------------------------------------------------------------------------------------


def test_watch_sends_added_for_existing_objects_then_live_events(core: client.CoreV1Api,
                                                                 ns: str) -> None:
    core.create_namespaced_config_map(ns, configmap("w1"))
    core.create_namespaced_config_map(ns, configmap("w2"))
    seen: list[tuple[str, str]] = []
    started = time.monotonic()
    for event in watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=3):
        assert isinstance(event["object"], client.V1ConfigMap)
        assert event["raw_object"]["kind"] == "ConfigMap"
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            core.create_namespaced_config_map(ns, configmap("w3"))
    elapsed = time.monotonic() - started
    assert seen == [("ADDED", "w1"), ("ADDED", "w2"), ("ADDED", "w3")]
    assert 2.5 < elapsed < 6  # the server ended the stream at timeoutSeconds


def test_watch_resumes_from_a_resource_version(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, configmap("before"))
    listed = core.list_namespaced_config_map(ns)
    core.create_namespaced_config_map(ns, configmap("r1"))
    core.patch_namespaced_config_map("r1", ns, {"data": {"k": "changed"}})
    core.delete_namespaced_config_map("r1", ns)

    w = watch.Watch()
    events = []
    for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=2,
                          resource_version=listed.metadata.resource_version):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 2:
            w.stop()
    assert events == [("ADDED", "r1"), ("MODIFIED", "r1")]
    assert w.resource_version  # the last event's, to resume from

    resumed = [(e["type"], e["object"].metadata.name, e["object"].data)
               for e in watch.Watch().stream(core.list_namespaced_config_map, ns,
                                             timeout_seconds=1,
                                             resource_version=w.resource_version)]
    assert [e[:2] for e in resumed] == [("DELETED", "r1")]
    assert resumed[0][2] == {"k": "changed"}  # a deletion carries the last state


def test_watch_from_a_resource_version_older_than_the_window_is_410(
        api: client.ApiClient, core: client.CoreV1Api, ns: str) -> None:
    old = core.create_namespaced_config_map(ns, configmap("old")).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("churn"))

    def bump(i: int) -> None:  # each write a distinct value, so each is a real etcd event
        core.patch_namespaced_config_map("churn", ns, {"data": {"k": str(i)}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bump, range(WATCH_WINDOW + 1)))
    with pytest.raises(ApiException) as info:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=3,
                                      resource_version=old):
            pass
    assert info.value.status == 410
    assert info.value.reason.startswith("Expired: too old resource version")
    # A list at that resourceVersion ("not older than") is still served, as in Kubernetes.
    assert "old" in names(core.list_namespaced_config_map(ns, resource_version=old).items)


# -- patches, scale, replace, delete ---------------------------------------------------------------


def test_patch_deployment_with_strategic_merge_and_json_patch(apps: client.AppsV1Api,
                                                              ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("pyd"))
    # A dict is sent as application/strategic-merge-patch+json: containers merge by name.
    merged = apps.patch_namespaced_deployment("pyd", ns, {
        "metadata": {"labels": {"team": "a"}},
        "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}})
    assert sorted(c.name for c in merged.spec.template.spec.containers) == ["main", "side"]
    assert merged.metadata.labels == {"tier": "web", "team": "a"}
    assert merged.metadata.generation == 2
    # A list is sent as application/json-patch+json.
    patched = apps.patch_namespaced_deployment("pyd", ns, [
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "remove", "path": "/metadata/labels/team"}])
    assert patched.spec.replicas == 4 and patched.metadata.labels == {"tier": "web"}
    assert patched.metadata.generation == 3


def test_patch_scale_subresource(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("scaled"))
    scale = apps.patch_namespaced_deployment_scale("scaled", ns, {"spec": {"replicas": 3}})
    assert isinstance(scale, client.V1Scale)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.spec.replicas == 3 and scale.status.selector == "app=scaled"
    live = apps.read_namespaced_deployment("scaled", ns)
    assert live.spec.replicas == 3 and live.metadata.generation == 2
    assert apps.read_namespaced_deployment_scale("scaled", ns).spec.replicas == 3


def test_replace_echoing_creation_timestamp_in_offset_form(api: client.ApiClient,
                                                           apps: client.AppsV1Api,
                                                           ns: str) -> None:
    created = apps.create_namespaced_deployment(ns, deployment("rep"))
    live = apps.read_namespaced_deployment("rep", ns)
    live.metadata.labels["replaced"] = "yes"
    live.spec.template.spec.containers[0].image = "busybox:1.37"
    wire = api.sanitize_for_serialization(live)
    assert wire["metadata"]["creationTimestamp"].endswith("+00:00")

    replaced = apps.replace_namespaced_deployment("rep", ns, live)
    assert replaced.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.labels["replaced"] == "yes"
    assert replaced.spec.template.spec.containers[0].image == "busybox:1.37"
    assert replaced.metadata.generation == 2
    stored = json.loads(apps.read_namespaced_deployment("rep", ns, _preload_content=False).data)
    assert stored["metadata"]["creationTimestamp"].endswith("Z")  # stored as the server wrote it

    # The same body again carries a stale resourceVersion now.
    with pytest.raises(ApiException) as info:
        apps.replace_namespaced_deployment("rep", ns, live)
    assert info.value.status == 409
    assert status_of(info.value)["reason"] == "Conflict"


def test_delete_deployment(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("gone"))
    result = apps.delete_namespaced_deployment("gone", ns)  # v37 returns a plain dict here
    assert (result["kind"], result["status"]) == ("Status", "Success")
    assert result["details"]["name"] == "gone"
    with pytest.raises(ApiException) as info:
        apps.read_namespaced_deployment("gone", ns)
    assert info.value.status == 404
    with pytest.raises(ApiException) as info:
        apps.delete_namespaced_deployment("gone", ns)
    assert info.value.status == 404


# -- errors ----------------------------------------------------------------------------------------


def test_api_exceptions_carry_kubernetes_status(core: client.CoreV1Api, apps: client.AppsV1Api,
                                                ns: str) -> None:
    with pytest.raises(ApiException) as info:
        apps.read_namespaced_deployment("nope", ns)
    assert (info.value.status, info.value.reason) == (404, "Not Found")
    status = status_of(info.value)
    assert status["reason"] == "NotFound"
    assert status["message"] == 'deployments.apps "nope" not found'
    assert status["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}

    core.create_namespaced_config_map(ns, configmap("dup"))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map(ns, configmap("dup"))
    assert (info.value.status, info.value.reason) == (409, "Conflict")
    status = status_of(info.value)
    assert status["reason"] == "AlreadyExists"
    assert status["message"] == 'configmaps "dup" already exists'

    bad = pod("bad")
    bad.spec.containers = [client.V1Container(name="Bad_Name", image="")]
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(ns, bad)
    assert (info.value.status, info.value.reason) == (422, "Unprocessable Entity")
    status = status_of(info.value)
    assert status["reason"] == "Invalid"
    assert (status["details"]["kind"], status["details"]["name"]) == ("Pod", "bad")
    fields = {(c["field"], c["reason"]) for c in status["details"]["causes"]}
    assert fields == {("spec.containers[0].name", "FieldValueInvalid"),
                      ("spec.containers[0].image", "FieldValueRequired")}


# -- dynamic client --------------------------------------------------------------------------------


def test_dynamic_client_lists_deployments(api: client.ApiClient, apps: client.AppsV1Api,
                                          ns: str, tmp_path: Path) -> None:
    apps.create_namespaced_deployment(ns, deployment("dyn1"))
    apps.create_namespaced_deployment(ns, deployment("dyn2", replicas=2))
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and "scale" in deployments.subresources
    listed = deployments.get(namespace=ns)
    assert listed.kind == "DeploymentList"
    assert sorted(d.metadata.name for d in listed.items) == ["dyn1", "dyn2"]
    one = deployments.get(name="dyn2", namespace=ns)
    assert one.spec.replicas == 2
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    configmaps.create(namespace=ns, body={"metadata": {"name": "from-dyn"}, "data": {"a": "b"}})
    assert configmaps.get(name="from-dyn", namespace=ns).data.a == "b"
