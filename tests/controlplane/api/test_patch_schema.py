"""Patch metadata of built-in kinds, checked against the k8s.io/api struct tags they restate."""

from __future__ import annotations

import pytest

from controlplane.api.patch import FieldMeta, schema_for
from controlplane.api.patch.schema import MERGE, REPLACE, RETAIN_KEYS

POD_SPEC = ("spec", "template", "spec")


def meta_at(group: str, version: str, kind: str, path: tuple[str, ...]) -> FieldMeta:
    """Walk the schema of a kind down `path` and return the last field's metadata.

    A parent without a schema holds no tagged field, so the field has no metadata either.
    """
    struct = schema_for(group, version, kind)
    assert struct is not None
    for key in path[:-1]:
        nested = struct.lookup(key).type
        if nested is None:
            return FieldMeta()
        struct = nested
    return struct.lookup(path[-1])


# (group, version, kind, path, strategies, merge key)
FACTS = [
    ("", "v1", "Pod", ("spec", "containers"), (MERGE,), "name"),
    ("", "v1", "Pod", ("spec", "initContainers"), (MERGE,), "name"),
    ("", "v1", "Pod", ("spec", "ephemeralContainers"), (MERGE,), "name"),
    ("", "v1", "Pod", ("spec", "containers", "env"), (MERGE,), "name"),
    ("", "v1", "Pod", ("spec", "containers", "ports"), (MERGE,), "containerPort"),
    ("", "v1", "Pod", ("spec", "containers", "volumeMounts"), (MERGE,), "mountPath"),
    ("", "v1", "Pod", ("spec", "containers", "volumeDevices"), (MERGE,), "devicePath"),
    ("", "v1", "Pod", ("spec", "ephemeralContainers", "env"), (MERGE,), "name"),
    ("", "v1", "Pod", ("spec", "volumes"), (MERGE, RETAIN_KEYS), "name"),
    ("", "v1", "Pod", ("spec", "imagePullSecrets"), (MERGE,), "name"),
    ("", "v1", "Pod", ("spec", "hostAliases"), (MERGE,), "ip"),
    ("", "v1", "Pod", ("spec", "topologySpreadConstraints"), (MERGE,), "topologyKey"),
    ("", "v1", "Pod", ("spec", "schedulingGates"), (MERGE,), "name"),
    ("", "v1", "Pod", ("spec", "resourceClaims"), (MERGE, RETAIN_KEYS), "name"),
    ("", "v1", "Pod", ("spec", "tolerations"), (), ""),
    ("", "v1", "Pod", ("spec", "containers", "envFrom"), (), ""),
    ("", "v1", "Pod", ("status", "conditions"), (MERGE,), "type"),
    ("", "v1", "Pod", ("status", "podIPs"), (MERGE,), "ip"),
    ("", "v1", "Pod", ("status", "hostIPs"), (MERGE,), "ip"),
    ("", "v1", "Pod", ("status", "containerStatuses"), (), ""),
    ("", "v1", "Pod", ("metadata", "finalizers"), (MERGE,), ""),
    ("", "v1", "Pod", ("metadata", "ownerReferences"), (MERGE,), "uid"),
    ("", "v1", "Pod", ("metadata", "managedFields"), (), ""),
    ("", "v1", "Pod", ("spec", "volumes", "ephemeral", "volumeClaimTemplate", "metadata",
                       "finalizers"), (MERGE,), ""),
    ("", "v1", "PodTemplate", ("template", "spec", "containers"), (MERGE,), "name"),
    ("", "v1", "Service", ("spec", "ports"), (MERGE,), "port"),
    ("", "v1", "Service", ("status", "conditions"), (MERGE,), "type"),
    ("", "v1", "Endpoints", ("subsets",), (), ""),
    ("", "v1", "Node", ("spec", "podCIDRs"), (MERGE,), ""),
    ("", "v1", "Node", ("spec", "taints"), (), ""),
    ("", "v1", "Node", ("status", "addresses"), (MERGE,), "type"),
    ("", "v1", "Node", ("status", "conditions"), (MERGE,), "type"),
    ("", "v1", "Namespace", ("status", "conditions"), (MERGE,), "type"),
    ("", "v1", "Namespace", ("spec", "finalizers"), (), ""),
    ("", "v1", "ConfigMap", ("metadata", "finalizers"), (MERGE,), ""),
    ("", "v1", "Secret", ("metadata", "ownerReferences"), (MERGE,), "uid"),
    ("", "v1", "ServiceAccount", ("secrets",), (MERGE,), "name"),
    ("", "v1", "ServiceAccount", ("imagePullSecrets",), (), ""),
    ("", "v1", "Event", ("metadata", "finalizers"), (MERGE,), ""),
    ("apps", "v1", "Deployment", POD_SPEC + ("containers",), (MERGE,), "name"),
    ("apps", "v1", "Deployment", ("spec", "template", "metadata", "finalizers"), (MERGE,), ""),
    ("apps", "v1", "Deployment", ("spec", "strategy"), (RETAIN_KEYS,), ""),
    ("apps", "v1", "Deployment", ("status", "conditions"), (MERGE,), "type"),
    ("apps", "v1", "ReplicaSet", POD_SPEC + ("volumes",), (MERGE, RETAIN_KEYS), "name"),
    ("apps", "v1", "DaemonSet", POD_SPEC + ("initContainers",), (MERGE,), "name"),
    ("apps", "v1", "DaemonSet", ("spec", "updateStrategy"), (), ""),
    ("apps", "v1", "StatefulSet", POD_SPEC + ("containers", "env"), (MERGE,), "name"),
    ("apps", "v1", "StatefulSet", ("spec", "volumeClaimTemplates"), (), ""),
    ("batch", "v1", "Job", POD_SPEC + ("containers",), (MERGE,), "name"),
    ("batch", "v1", "Job", ("status", "conditions"), (MERGE,), "type"),
    ("batch", "v1", "CronJob", ("spec", "jobTemplate", "spec", "template", "spec",
                                "containers"), (MERGE,), "name"),
    ("batch", "v1", "CronJob", ("spec", "jobTemplate", "metadata", "ownerReferences"),
     (MERGE,), "uid"),
    ("autoscaling", "v1", "Scale", ("metadata", "finalizers"), (MERGE,), ""),
    ("coordination.k8s.io", "v1", "Lease", ("metadata", "ownerReferences"), (MERGE,), "uid"),
    ("discovery.k8s.io", "v1", "EndpointSlice", ("endpoints",), (), ""),
    ("discovery.k8s.io", "v1", "EndpointSlice", ("ports",), (), ""),
    ("rbac.authorization.k8s.io", "v1", "Role", ("rules",), (), ""),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", ("subjects",), (), ""),
    ("policy", "v1", "Eviction", ("metadata", "finalizers"), (MERGE,), ""),
    ("policy", "v1", "PodDisruptionBudget", ("spec", "selector"), (REPLACE,), ""),
]


@pytest.mark.parametrize(("group", "version", "kind", "path", "strategies", "merge_key"), FACTS,
                         ids=[f"{f[2]}:{'.'.join(f[3])}" for f in FACTS])
def test_struct_tag_facts(group: str, version: str, kind: str, path: tuple[str, ...],
                          strategies: tuple[str, ...], merge_key: str) -> None:
    meta = meta_at(group, version, kind, path)
    assert (meta.strategies, meta.merge_key) == (strategies, merge_key)


@pytest.mark.parametrize(("group", "version", "kind"), [
    ("", "v1", "Frobnicator"), ("apps", "v1beta1", "Deployment"), ("example.com", "v1", "Widget"),
    ("apps", "v1", "Pod"),
])
def test_unknown_kinds_have_no_schema(group: str, version: str, kind: str) -> None:
    assert schema_for(group, version, kind) is None


def test_strategy_ignores_retain_keys() -> None:
    assert FieldMeta((MERGE, RETAIN_KEYS), "name").strategy == MERGE
    assert FieldMeta((RETAIN_KEYS,)).strategy == ""
    assert FieldMeta().strategy == ""
