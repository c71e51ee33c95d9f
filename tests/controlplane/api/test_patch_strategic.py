"""Strategic merge patch: kubectl's and the Python client's wire patches on realistic objects."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.api.patch import apply_strategic_merge_patch, schema_for
from controlplane.api.patch.schema import Struct

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _schema(group: str, version: str, kind: str) -> Struct:
    schema = schema_for(group, version, kind)
    assert schema is not None
    return schema


DEPLOYMENT = _schema("apps", "v1", "Deployment")


def deployment() -> dict[str, Any]:
    """A Deployment as the apiserver returns it after `kubectl apply` created it."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "0c4e6a8e", "resourceVersion": "120",
            "generation": 1, "labels": {"app": "web"},
            "annotations": {LAST_APPLIED: '{"apiVersion":"apps/v1","kind":"Deployment"}\n'},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "prod"}],
                        "resources": {}, "imagePullPolicy": "IfNotPresent",
                    }],
                    "volumes": [{"name": "cache", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                },
            },
        },
        "status": {"replicas": 2, "conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]},
    }


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def test_apply_adds_a_sidecar_with_set_element_order_and_drops_ports() -> None:
    """The first §7 wire patch: `$setElementOrder/containers`, `"ports": null`, a new item."""
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
        "containers": [
            {"env": [{"name": "A", "value": "1"}], "image": "nginx:1.28", "name": "nginx",
             "ports": None},
            {"image": "busybox", "name": "sidecar"},
        ]}}}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert pod_spec(patched)["containers"] == [
        {"name": "nginx", "image": "nginx:1.28",
         "env": [{"name": "A", "value": "1"}, {"name": "MODE", "value": "prod"}],
         "resources": {}, "imagePullPolicy": "IfNotPresent"},
        {"image": "busybox", "name": "sidecar"},
    ]
    assert pod_spec(patched)["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert patched["spec"]["replicas"] == 2


def test_apply_deletes_the_sidecar_and_the_env() -> None:
    """The second §7 wire patch: `"env": null` and `{"$patch": "delete", "name": "sidecar"}`."""
    with_sidecar = deployment()
    pod_spec(with_sidecar)["containers"].append({"name": "sidecar", "image": "busybox"})
    patch = {"spec": {"template": {"spec": {"containers": [
        {"env": None, "name": "nginx", "image": "nginx:1.28"},
        {"$patch": "delete", "name": "sidecar"}]}}}}
    patched = apply_strategic_merge_patch(with_sidecar, patch, DEPLOYMENT)
    assert pod_spec(patched)["containers"] == [
        {"name": "nginx", "image": "nginx:1.28",
         "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "resources": {}, "imagePullPolicy": "IfNotPresent"}]


def test_second_apply_changes_replicas_and_the_annotation() -> None:
    patch = {"metadata": {"annotations": {LAST_APPLIED: '{"spec":{"replicas":4}}\n'}},
             "spec": {"replicas": 4}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert patched["spec"]["replicas"] == 4
    assert patched["metadata"]["annotations"] == {LAST_APPLIED: '{"spec":{"replicas":4}}\n'}
    assert patched["metadata"]["labels"] == {"app": "web"}


def test_rollout_restart_annotates_the_template() -> None:
    stamp = "2026-11-25T07:57:10Z"
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": stamp}}}}}
    original = deployment()
    patched = apply_strategic_merge_patch(original, patch, DEPLOYMENT)
    assert patched["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
    assert pod_spec(patched) == pod_spec(original)


def test_cordon_sets_unschedulable_and_keeps_taints() -> None:
    node: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
            "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"],
                     "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                                     {"type": "Hostname", "address": "node-1"}]}}
    patched = apply_strategic_merge_patch(node, {"spec": {"unschedulable": True}},
                                          _schema("", "v1", "Node"))
    assert patched["spec"] == dict(node["spec"], unschedulable=True)
    uncordoned = apply_strategic_merge_patch(patched, {"spec": {"unschedulable": None}},
                                             _schema("", "v1", "Node"))
    assert uncordoned == node


def test_node_addresses_merge_by_type() -> None:
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                                     {"type": "Hostname", "address": "node-1"}]}}
    patch = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.6"}]}}
    patched = apply_strategic_merge_patch(node, patch, _schema("", "v1", "Node"))
    assert patched["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.6"},
                                              {"type": "Hostname", "address": "node-1"}]


def test_python_client_patches_scale_with_smp() -> None:
    scale = {"kind": "Scale", "apiVersion": "autoscaling/v1",
             "metadata": {"name": "pyd", "namespace": "default", "resourceVersion": "5"},
             "spec": {"replicas": 1}, "status": {"replicas": 1, "selector": "app=pyd"}}
    patched = apply_strategic_merge_patch(scale, {"spec": {"replicas": 3}},
                                          _schema("autoscaling", "v1", "Scale"))
    assert patched == dict(scale, spec={"replicas": 3})


def test_a_new_container_goes_first_and_tolerations_are_replaced() -> None:
    """The kubectl patch task page's examples: merge list vs. list without a strategy."""
    patch = {"spec": {"template": {"spec": {
        "containers": [{"name": "redis", "image": "redis"}],
        "tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}}}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert [c["name"] for c in pod_spec(patched)["containers"]] == ["redis", "nginx"]
    assert pod_spec(patched)["tolerations"] == [
        {"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]


def test_ports_env_and_mounts_merge_by_their_keys() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "nginx",
        "ports": [{"containerPort": 443, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "dev"}],
        "volumeMounts": [{"mountPath": "/cache", "name": "cache"}]}]}}}}
    container = pod_spec(apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT))[
        "containers"][0]
    assert container["ports"] == [{"containerPort": 443, "protocol": "TCP"},
                                  {"containerPort": 80, "protocol": "TCP"}]
    assert container["env"] == [{"name": "MODE", "value": "dev"}]
    assert container["volumeMounts"] == [{"mountPath": "/cache", "name": "cache"}]


def test_status_conditions_merge_by_type() -> None:
    patch = {"status": {"conditions": [{"type": "Available", "status": "False"}]}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert patched["status"]["conditions"] == [
        {"type": "Available", "status": "False"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"type": "ClusterIP", "ports": [
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]}}
    patch = {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}
    patched = apply_strategic_merge_patch(svc, patch, _schema("", "v1", "Service"))
    assert patched["spec"]["ports"][1] == {"name": "https", "port": 443, "targetPort": 9443,
                                           "protocol": "TCP"}
    assert patched["spec"]["ports"][0] == svc["spec"]["ports"][0]


def test_finalizers_are_a_set_and_delete_from_primitive_list_removes() -> None:
    pod = {"metadata": {"name": "p", "finalizers": ["a", "b"]}}
    schema = _schema("", "v1", "Pod")
    added = apply_strategic_merge_patch(pod, {"metadata": {"finalizers": ["b", "c"]}}, schema)
    assert added["metadata"]["finalizers"] == ["a", "b", "c"]
    removed = apply_strategic_merge_patch(
        added, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}}, schema)
    assert removed["metadata"]["finalizers"] == ["b", "c"]
    ordered = apply_strategic_merge_patch(
        added, {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}, schema)
    assert ordered["metadata"]["finalizers"] == ["c", "b", "a"]
    prepended = apply_strategic_merge_patch(pod, {"metadata": {"finalizers": ["z"]}}, schema)
    assert prepended["metadata"]["finalizers"] == ["z", "a", "b"]


def test_owner_references_merge_by_uid() -> None:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1"}
    pod = {"metadata": {"ownerReferences": [ref]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True},
                                              {"uid": "u2", "kind": "Job", "name": "j"}]}}
    patched = apply_strategic_merge_patch(pod, patch, _schema("", "v1", "Pod"))
    assert patched["metadata"]["ownerReferences"] == [
        dict(ref, controller=True), {"uid": "u2", "kind": "Job", "name": "j"}]


def test_retain_keys_switches_a_deployment_to_recreate() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert patched["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_switches_a_volume_source() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [
        {"$retainKeys": ["configMap", "name"], "name": "cache", "configMap": {"name": "cm"}}]}}}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert pod_spec(patched)["volumes"] == [{"name": "cache", "configMap": {"name": "cm"}}]


def test_patch_replace_directive_on_a_list_and_a_map() -> None:
    patch = {"metadata": {"labels": {"$patch": "replace", "tier": "web"}},
             "spec": {"template": {"spec": {"containers": [
                 {"$patch": "replace"}, {"name": "only", "image": "busybox"}]}}}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert patched["metadata"]["labels"] == {"tier": "web"}
    assert pod_spec(patched)["containers"] == [{"name": "only", "image": "busybox"}]


def test_patch_delete_directive_on_a_map_empties_it() -> None:
    patched = apply_strategic_merge_patch(
        deployment(), {"metadata": {"annotations": {"$patch": "delete"}}}, DEPLOYMENT)
    assert patched["metadata"]["annotations"] == {}


def test_new_values_lose_nulls_and_directives() -> None:
    patch = {"spec": {"template": {"spec": {"affinity": {
        "nodeAffinity": {"x": None, "y": 1}, "podAffinity": {"$patch": "delete"}}}}}}
    patched = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert pod_spec(patched)["affinity"] == {"nodeAffinity": {"y": 1}}


def test_unknown_fields_merge_like_maps_and_lists_replace() -> None:
    patch = {"spec": {"template": {"spec": {"futureField": {"a": 1},
                                            "containers": [{"name": "nginx",
                                                            "futureList": [1]}]}}}}
    once = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    again = apply_strategic_merge_patch(
        once, {"spec": {"template": {"spec": {"futureField": {"b": 2}, "containers": [
            {"name": "nginx", "futureList": [2]}]}}}}, DEPLOYMENT)
    assert pod_spec(again)["futureField"] == {"a": 1, "b": 2}
    assert pod_spec(again)["containers"][0]["futureList"] == [2]


def test_cronjob_reaches_the_pod_template_through_the_job_template() -> None:
    cron = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}}}}
    patch = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "b", "image": "z"}]}}}}}}
    patched = apply_strategic_merge_patch(cron, patch, _schema("batch", "v1", "CronJob"))
    containers = patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]


def test_null_patch_is_empty_and_inputs_are_not_mutated() -> None:
    original = deployment()
    assert apply_strategic_merge_patch(original, None, DEPLOYMENT) == original
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"name": "nginx", "env": [{"name": "MODE", "value": "x"}]}]}}}}
    before = (copy.deepcopy(original), copy.deepcopy(patch))
    result = apply_strategic_merge_patch(original, patch, DEPLOYMENT)
    assert (original, patch) == before
    pod_spec(result)["containers"][0]["env"].clear()
    assert (original, patch) == before


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"])
def test_every_workload_merges_its_template_containers(kind: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "n:2"}]}}}}
    patched = apply_strategic_merge_patch(deployment(), patch, _schema("apps", "v1", kind))
    assert pod_spec(patched)["containers"][0]["ports"] == [{"containerPort": 80,
                                                            "protocol": "TCP"}]
