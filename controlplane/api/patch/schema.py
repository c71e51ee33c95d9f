"""Patch metadata of the built-in kinds: which fields merge, by which key, with which strategy.

These are the facts of the `patchStrategy`/`patchMergeKey` struct tags in k8s.io/api and
k8s.io/apimachinery's ObjectMeta at Kubernetes 1.32, the version kubectl speaks to us with. A
schema is a tree of `Struct`s; only fields that carry a tag, or lead to one, are listed. Any
other field has no strategy: maps still merge key by key and lists are replaced whole.
`schema_for()` gives the root `Struct` of a kind, or None for kinds we hold no facts about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MERGE = "merge"  # lists: merge element-wise (by merge key for objects, as a set for scalars)
RETAIN_KEYS = "retainKeys"  # the patch may carry `$retainKeys` to clear unlisted keys
REPLACE = "replace"  # the patch value replaces the field whole, directives and all


@dataclass(frozen=True)
class FieldMeta:
    """One field's patch metadata, as its struct tags give it.

    `strategies` holds MERGE, RETAIN_KEYS and/or REPLACE; `merge_key` names the key that
    identifies an element of a merging list of objects ("" for scalar lists); `type` is the
    field's own struct for an object field, or its element's struct for a list field.
    """

    strategies: tuple[str, ...] = ()
    merge_key: str = ""
    type: Struct | None = None

    @property
    def strategy(self) -> str:
        """The strategy besides retainKeys: MERGE, REPLACE or "" (none)."""
        return next((s for s in self.strategies if s != RETAIN_KEYS), "")


NO_META = FieldMeta()


@dataclass(frozen=True)
class Struct:
    """An object type: its name (for messages) and the fields that carry patch metadata."""

    name: str
    fields: Mapping[str, FieldMeta] = field(default_factory=dict)

    def lookup(self, key: str) -> FieldMeta:
        """Return the metadata of field `key`; a field we hold no facts about has none."""
        return self.fields.get(key, NO_META)


def _nested(struct: Struct) -> FieldMeta:
    return FieldMeta(type=struct)


def _merging(merge_key: str = "", element: Struct | None = None, *,
             retain_keys: bool = False) -> FieldMeta:
    strategies = (MERGE, RETAIN_KEYS) if retain_keys else (MERGE,)
    return FieldMeta(strategies, merge_key, element)


_BY_TYPE = _merging("type")  # status conditions, node addresses
_BY_NAME = _merging("name")

OBJECT_META = Struct("ObjectMeta", {
    "ownerReferences": _merging("uid"),
    "finalizers": _merging(),
})
_METADATA_ONLY = {"metadata": _nested(OBJECT_META)}

CONTAINER = Struct("Container", {
    "ports": _merging("containerPort"),
    "env": _BY_NAME,
    "volumeMounts": _merging("mountPath"),
    "volumeDevices": _merging("devicePath"),
})
# EphemeralContainerCommon is inlined into EphemeralContainer and tags the same four lists.
EPHEMERAL_CONTAINER = Struct("EphemeralContainer", CONTAINER.fields)

VOLUME = Struct("Volume", {  # VolumeSource is inlined; ephemeral volumes embed an ObjectMeta
    "ephemeral": _nested(Struct("EphemeralVolumeSource", {
        "volumeClaimTemplate": _nested(Struct("PersistentVolumeClaimTemplate", _METADATA_ONLY)),
    })),
})

POD_SPEC = Struct("PodSpec", {
    "volumes": _merging("name", VOLUME, retain_keys=True),
    "initContainers": _merging("name", CONTAINER),
    "containers": _merging("name", CONTAINER),
    "ephemeralContainers": _merging("name", EPHEMERAL_CONTAINER),
    "imagePullSecrets": _BY_NAME,
    "hostAliases": _merging("ip"),
    "topologySpreadConstraints": _merging("topologyKey"),
    "schedulingGates": _BY_NAME,
    "resourceClaims": _merging("name", retain_keys=True),
})
POD_STATUS = Struct("PodStatus", {
    "conditions": _BY_TYPE,
    "hostIPs": _merging("ip"),
    "podIPs": _merging("ip"),
    "resourceClaimStatuses": _merging("name", retain_keys=True),
})
POD_TEMPLATE_SPEC = Struct("PodTemplateSpec", {
    "metadata": _nested(OBJECT_META),
    "spec": _nested(POD_SPEC),
})
_CONDITIONS_STATUS = _nested(Struct("Status", {"conditions": _BY_TYPE}))


def _kind(name: str, spec: Mapping[str, FieldMeta] | None = None,
          status: bool = False, **fields: FieldMeta) -> Struct:
    """A top-level kind: ObjectMeta, an optional spec, optionally a status with conditions."""
    all_fields = dict(_METADATA_ONLY, **fields)
    if spec is not None:
        all_fields["spec"] = _nested(Struct(f"{name}Spec", spec))
    if status:
        all_fields["status"] = _CONDITIONS_STATUS
    return Struct(name, all_fields)


def _workload(name: str, **spec: FieldMeta) -> Struct:
    """A controller kind whose spec holds a pod template and whose status has conditions."""
    return _kind(name, {"template": _nested(POD_TEMPLATE_SPEC), **spec}, status=True)


JOB = _workload("Job")
_CORE: dict[str, Struct] = {
    "Pod": Struct("Pod", {**_METADATA_ONLY, "spec": _nested(POD_SPEC),
                          "status": _nested(POD_STATUS)}),
    "PodTemplate": _kind("PodTemplate", template=_nested(POD_TEMPLATE_SPEC)),
    "ReplicationController": _workload("ReplicationController"),
    "Service": _kind("Service", {"ports": _merging("port")}, status=True),
    "Node": Struct("Node", {**_METADATA_ONLY,
                            "spec": _nested(Struct("NodeSpec", {"podCIDRs": _merging()})),
                            "status": _nested(Struct("NodeStatus", {
                                "conditions": _BY_TYPE, "addresses": _BY_TYPE}))}),
    "Namespace": _kind("Namespace", status=True),
    "PersistentVolumeClaim": _kind("PersistentVolumeClaim", status=True),
    "ComponentStatus": _kind("ComponentStatus", conditions=_BY_TYPE),
    "ServiceAccount": _kind("ServiceAccount", secrets=_BY_NAME),
}
for _name in ("Endpoints", "ConfigMap", "Secret", "Event", "PersistentVolume", "LimitRange",
              "ResourceQuota", "Binding"):
    _CORE[_name] = _kind(_name)

_KINDS: dict[tuple[str, str], dict[str, Struct]] = {
    ("", "v1"): _CORE,
    ("apps", "v1"): {
        "Deployment": _workload("Deployment", strategy=FieldMeta((RETAIN_KEYS,))),
        "ReplicaSet": _workload("ReplicaSet"),
        "DaemonSet": _workload("DaemonSet"),
        "StatefulSet": _workload("StatefulSet"),
    },
    ("batch", "v1"): {
        "Job": JOB,
        "CronJob": _kind("CronJob", {"jobTemplate": _nested(Struct("JobTemplateSpec", {
            "metadata": _nested(OBJECT_META), "spec": JOB.lookup("spec")}))}),
    },
    ("autoscaling", "v1"): {"Scale": _kind("Scale"),
                            "HorizontalPodAutoscaler": _kind("HorizontalPodAutoscaler")},
    ("coordination.k8s.io", "v1"): {"Lease": _kind("Lease")},
    ("discovery.k8s.io", "v1"): {"EndpointSlice": _kind("EndpointSlice")},
    ("rbac.authorization.k8s.io", "v1"): {
        name: _kind(name) for name in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
    ("policy", "v1"): {
        "Eviction": _kind("Eviction"),
        "PodDisruptionBudget": _kind("PodDisruptionBudget",
                                     {"selector": FieldMeta((REPLACE,))}, status=True),
    },
}


def schema_for(group: str, version: str, kind: str) -> Struct | None:
    """Return the root schema of a built-in kind ("" is the core group), or None if unknown.

    For None the caller falls back to applying the body as a JSON merge patch.
    """
    return _KINDS.get((group, version), {}).get(kind)
