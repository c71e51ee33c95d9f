"""Strategies of core/v1 kinds with policy of their own: namespaces, pods, nodes, services,
secrets, events. (ConfigMaps, endpoints and service accounts use the generic no-status policy.)"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from controlplane.api import validation
from controlplane.api.errors import FIELD_INVALID, Cause
from controlplane.apiserver.registry import pod_spec
from controlplane.apiserver.registry.strategy import (
    NoStatusStrategy,
    Object,
    Strategy,
    forbidden,
    immutable,
    required,
)


class NamespaceStrategy(Strategy):
    name_validator = staticmethod(validation.is_dns1123_label)
    selectable_fields = ("status.phase",)

    def default(self, obj: Object) -> None:
        obj.setdefault("spec", {})
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")

    def prepare_for_create(self, obj: Object) -> None:
        # Only at creation: the namespace controller removes it through /finalize later.
        super().prepare_for_create(obj)
        finalizers = obj["spec"].setdefault("finalizers", [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")

    def initial_status(self, obj: Object) -> Object:
        return {"phase": "Active"}

    def spec_changed(self, new: Object, old: Object) -> bool:
        return False


# Fields of a running pod's spec that an update may change (Kubernetes' ValidatePodUpdate).
_POD_MUTABLE = "spec.containers[*].image, spec.initContainers[*].image, " \
    "spec.activeDeadlineSeconds, spec.tolerations (only additions to existing tolerations), " \
    "spec.terminationGracePeriodSeconds (allow it to be set to 1 if it was previously negative)"


class PodStrategy(Strategy):
    selectable_fields = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                         "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                         "status.podIP", "status.nominatedNodeName")

    def default(self, obj: Object) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            pod_spec.default_pod_spec(spec)
            if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
                spec["serviceAccount"] = spec["serviceAccountName"]

    def initial_status(self, obj: Object) -> Object:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def validate(self, obj: Object) -> list[Cause]:
        return pod_spec.validate_pod_spec(obj.get("spec"), "spec")

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        causes = self.validate(new)
        if _without_mutable(new.get("spec") or {}) != _without_mutable(old.get("spec") or {}):
            causes.append(forbidden("spec", f"pod updates may not change fields other than "
                                            f"{_POD_MUTABLE}"))
        return causes

    def spec_changed(self, new: Object, old: Object) -> bool:
        return bool(new.get("spec") != old.get("spec"))

    def grace_period(self, obj: Object, requested: Any) -> int:
        """Seconds a deletion waits for the node: 0 (at once) when unscheduled or finished."""
        spec = obj.get("spec") or {}
        if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in (
                "Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, int(requested))
        return int(spec.get("terminationGracePeriodSeconds", 30))


def _without_mutable(spec: Object) -> Object:
    out = {k: v for k, v in spec.items()
           if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")}
    for key in ("containers", "initContainers"):
        if isinstance(out.get(key), list):
            out[key] = [{k: v for k, v in c.items() if k != "image"} if isinstance(c, dict)
                        else c for c in out[key]]
    return out


def qos_class(spec: Object) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            if limit is None or str(requests.get(name, limit)) != str(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class NodeStrategy(Strategy):
    name_validator = staticmethod(validation.is_dns1123_subdomain)
    selectable_fields = ("spec.unschedulable",)

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        old_cidr = (old.get("spec") or {}).get("podCIDR")
        new_cidr = (new.get("spec") or {}).get("podCIDR")
        if old_cidr and new_cidr != old_cidr:
            return [Cause(FIELD_INVALID, "Forbidden: node updates may not change podCIDR "
                          "except from \"\" to valid", "spec.podCIDRs")]
        return []

    def spec_changed(self, new: Object, old: Object) -> bool:
        return False  # nodes do not track generation


class ServiceStrategy(Strategy):
    name_validator = staticmethod(validation.is_dns1035_label)
    selectable_fields = ("spec.clusterIP", "spec.type")

    def default(self, obj: Object) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])

    def initial_status(self, obj: Object) -> Object:
        return {"loadBalancer": {}}

    def validate(self, obj: Object) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
            causes += required(obj, "spec.ports")
        for i, port in enumerate(spec.get("ports") or []):
            number = port.get("port") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 0 < number < 65536:
                causes.append(Cause(FIELD_INVALID, f"Invalid value: {number}: must be between 1 "
                                    "and 65535, inclusive", f"spec.ports[{i}].port"))
            if len(spec.get("ports") or []) > 1 and not (port or {}).get("name"):
                causes.append(Cause("FieldValueRequired", "Required value",
                                    f"spec.ports[{i}].name"))
        return causes

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        causes = self.validate(new)
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (new.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip not in (None, "", old_ip):
            causes += immutable(new_ip, old_ip, "spec.clusterIP")
        return causes


class SecretStrategy(NoStatusStrategy):
    selectable_fields = ("type",)

    def default(self, obj: Object) -> None:
        obj.setdefault("type", "Opaque")

    def validate(self, obj: Object) -> list[Cause]:
        causes = []
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                causes.append(Cause(FIELD_INVALID, "Invalid value: \"<secret contents redacted>\""
                                    ": illegal base64 data", f"data[{key}]"))
        return causes

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        causes = self.validate(new)
        if new.get("type") != old.get("type"):
            causes += immutable(new.get("type"), old.get("type"), "type")
        if old.get("immutable") and (new.get("data") != old.get("data")):
            causes.append(forbidden("data", "field is immutable when `immutable` is set"))
        return causes


class EventStrategy(NoStatusStrategy):
    allow_create_on_update = True
    selectable_fields = ("involvedObject.kind", "involvedObject.namespace",
                         "involvedObject.name", "involvedObject.uid",
                         "involvedObject.apiVersion", "involvedObject.resourceVersion",
                         "involvedObject.fieldPath", "reason", "reportingComponent",
                         "source", "type")

    def field_set(self, obj: Object) -> dict[str, str]:
        fields = super().field_set(obj)
        source: Any = obj.get("source") or {}
        fields["source"] = str(source.get("component", "")) if isinstance(source, dict) else ""
        return fields
