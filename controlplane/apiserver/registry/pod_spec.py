"""Defaults and validation of a PodSpec, shared by pods and every pod template (deployments, ...).

Values are Kubernetes' own defaults (pkg/apis/core/v1/defaults.go): restartPolicy Always,
dnsPolicy ClusterFirst, terminationGracePeriodSeconds 30, schedulerName default-scheduler, an
imagePullPolicy that depends on the tag, TCP ports, File termination messages.
"""

from __future__ import annotations

from typing import Any

from controlplane.api import validation
from controlplane.api.errors import FIELD_DUPLICATE, FIELD_INVALID, FIELD_NOT_SUPPORTED, Cause
from controlplane.apiserver.registry.strategy import required

Object = dict[str, Any]
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")


def default_pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged image, IfNotPresent otherwise (digests included)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def default_container(container: Object) -> None:
    if container.get("image"):
        container.setdefault("imagePullPolicy", default_pull_policy(str(container["image"])))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            http = probe.get("httpGet")
            if isinstance(http, dict):
                http.setdefault("path", "/")
                http.setdefault("scheme", "HTTP")


def default_pod_spec(spec: Object) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                default_container(container)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("configMap", "secret"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 0o644)
        if isinstance(volume.get("hostPath"), dict):
            volume["hostPath"].setdefault("type", "")


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    """Every field error of a PodSpec at `path` (e.g. `spec` or `spec.template.spec`)."""
    if spec is None:  # absent: Go's zero PodSpec, which lacks containers
        spec = {}
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "Required value", path)]
    causes = required({"containers": spec.get("containers")}, "containers")
    causes = [Cause(c.reason, c.message, f"{path}.containers") for c in causes]
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            causes += _validate_container(container, f"{path}.{key}[{i}]", names)
    causes += _one_of(spec, "restartPolicy", RESTART_POLICIES, path)
    causes += _one_of(spec, "dnsPolicy", DNS_POLICIES, path)
    for i, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name") if isinstance(volume, dict) else None
        if not name:
            causes.append(Cause("FieldValueRequired", "Required value",
                                f"{path}.volumes[{i}].name"))
    return causes


def _validate_container(container: Any, path: str, names: set[str]) -> list[Cause]:
    if not isinstance(container, dict):
        return [Cause(FIELD_INVALID, "Invalid value: must be an object", path)]
    causes: list[Cause] = []
    name = container.get("name")
    if not name:
        causes.append(Cause("FieldValueRequired", "Required value", f"{path}.name"))
    else:
        for message in validation.is_dns1123_label(str(name)):
            causes.append(Cause(FIELD_INVALID, f'Invalid value: "{name}": {message}',
                                f"{path}.name"))
        if name in names:
            causes.append(Cause(FIELD_DUPLICATE, f'Duplicate value: "{name}"', f"{path}.name"))
        names.add(str(name))
    if not container.get("image"):
        causes.append(Cause("FieldValueRequired", "Required value", f"{path}.image"))
    causes += _one_of(container, "imagePullPolicy", PULL_POLICIES, path)
    for i, port in enumerate(container.get("ports") or []):
        number = port.get("containerPort") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 0 < number < 65536:
            causes.append(Cause(FIELD_INVALID, f"Invalid value: {number}: must be between 1 "
                                "and 65535, inclusive", f"{path}.ports[{i}].containerPort"))
    return causes


def _one_of(obj: Object, key: str, allowed: tuple[str, ...], path: str) -> list[Cause]:
    value = obj.get(key)
    if value is None or value in allowed:
        return []
    supported = ", ".join(f'"{a}"' for a in allowed)
    return [Cause(FIELD_NOT_SUPPORTED,
                  f'Unsupported value: "{value}": supported values: {supported}',
                  f"{path}.{key}")]
