"""A container's environment, computed as the kubelet's makeEnvironmentVariables does.

Order: service link variables (FOO_SERVICE_HOST, FOO_PORT_80_TCP_ADDR ...), then envFrom
(configMaps and secrets, each key with the source's prefix), then env in declaration order; a
later definition replaces the value of an earlier one but keeps its place. `$(VAR)` in a plain
value expands against everything defined before it (`$$` is a literal `$`, unknown references
stay as written); values from valueFrom are never expanded. Every failure is a `ConfigError`
carrying Kubernetes' own message, which the agent shows as CreateContainerConfigError. The
downward-API field and resource helpers here are shared with downwardAPI volumes.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from controlplane.api import quantity
from controlplane.api.validation import go_quote, is_qualified_name

Object = Mapping[str, Any]
Lookup = Callable[[str, str], Object | None]
Warn = Callable[[str, str], None]  # (event reason, message): a Warning event on the pod

# The kubelet always gives pods the apiserver's service, whatever enableServiceLinks says.
MASTER_SERVICE = ("default", "kubernetes")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")


class ConfigError(Exception):
    """The container cannot be configured; `str()` is Kubernetes' message for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- $(VAR) expansion ----------------------------------------------------------------------------


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand `$(NAME)` with `mapping` as Kubernetes' expansion package does; `$$` escapes `$`."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":
                out.append("$")
            elif following == "(" and (close := text.find(")", cursor + 2)) != -1:
                out.append(mapping(text[cursor + 2:close]))
                cursor = close - 1
            else:  # `$x` or an unterminated `$(`: kept as written
                out.append("$" + following)
            cursor += 1
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """Look a name up in each context in turn; unknown names stay as `$(NAME)`."""
    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"$({name})"
    return lookup


# -- service links -------------------------------------------------------------------------------


def _env_name(name: str) -> str:
    upper = name.replace(".", "_").replace("-", "_").upper()
    return "_" + upper if upper[:1].isdigit() else upper


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _has_cluster_ip(service: Object) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def service_env(services: Iterable[Object], namespace: str, *,
                enable_service_links: bool) -> dict[str, str]:
    """The docker-link style variables for the services a pod in `namespace` sees."""
    chosen: dict[str, Object] = {}
    for service in services:
        if not _has_cluster_ip(service):
            continue
        meta = service.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if (ns, name) == MASTER_SERVICE:
            chosen.setdefault(name, service)
        elif ns == namespace and enable_service_links:
            chosen[name] = service
    env: dict[str, str] = {}
    for name in sorted(chosen):
        spec = chosen[name].get("spec") or {}
        ports = spec.get("ports") or []
        if not ports:
            continue
        ip, prefix = spec["clusterIP"], _env_name(name)
        env[prefix + "_SERVICE_HOST"] = ip
        env[prefix + "_SERVICE_PORT"] = str(ports[0].get("port", 0))
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port.get("port", 0))
        for index, port in enumerate(ports):
            number = int(port.get("port", 0))
            protocol = port.get("protocol") or "TCP"
            url = f"{protocol.lower()}://{_host_port(ip, number)}"
            if index == 0:
                env[prefix + "_PORT"] = url
            port_prefix = f"{prefix}_PORT_{number}_{protocol.upper()}"
            env[port_prefix] = url
            env[port_prefix + "_PROTO"] = protocol.lower()
            env[port_prefix + "_PORT"] = str(number)
            env[port_prefix + "_ADDR"] = ip
    return env


# -- downward API --------------------------------------------------------------------------------


def _split_subscript(path: str) -> tuple[str, str] | None:
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    return (head, key) if sep and head else None


def _format_map(values: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={go_quote(values[key])}" for key in sorted(values))


def metadata_field_value(pod: Object, field_path: str, api_version: str = "v1") -> str:
    """A fieldRef as downwardAPI volumes resolve it: the pod's own metadata fields."""
    if api_version not in ("", "v1"):
        raise ConfigError(f"unsupported pod version: {api_version}")
    meta = pod.get("metadata") or {}
    subscripted = _split_subscript(field_path)
    if subscripted is not None:
        path, key = subscripted
        if path not in ("metadata.annotations", "metadata.labels"):
            raise ConfigError(f"field label does not support subscript: {field_path}")
        problems = is_qualified_name(key.lower() if path == "metadata.annotations" else key)
        if problems:
            raise ConfigError(f"invalid key subscript in {field_path}: {';'.join(problems)}")
        return str((meta.get(path.split(".")[1]) or {}).get(key, ""))
    if field_path == "spec.host":
        field_path = "spec.nodeName"
    if field_path in ("metadata.annotations", "metadata.labels"):
        return _format_map(meta.get(field_path.split(".")[1]) or {})
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(field_path.split(".")[1], ""))
    if field_path in ("spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
                      "spec.schedulerName", "status.phase", "status.hostIP", "status.hostIPs",
                      "status.podIP", "status.podIPs"):
        raise ConfigError(f"unsupported fieldPath: {field_path}")
    raise ConfigError(f"field label not supported: {field_path}")


def _find_container(pod: Object, name: str) -> Object:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if container.get("name") == name:
            return dict(container)
    raise ConfigError(f"container {name} not found")


def _ceil_div(value: int, divisor: int) -> int:
    return -(-value // divisor)


def container_resource_value(pod: Object, container: Object, ref: Object,
                             node_allocatable: Mapping[str, Any]) -> str:
    """A resourceFieldRef: the limit (node allocatable when unset) or request over the divisor."""
    name = ref.get("containerName") or ""
    target = _find_container(pod, name) if name else container
    resources = target.get("resources") or {}
    limits = dict(resources.get("limits") or {})
    # API defaulting: a request left unset is the container's own limit.
    requests = {**limits, **(resources.get("requests") or {})}
    for resource in _DEFAULTED_LIMITS:
        if resource not in limits and resource in node_allocatable:
            limits[resource] = node_allocatable[resource]
    wanted = ref.get("resource") or ""
    kind, _, resource = wanted.partition(".")
    if kind not in ("limits", "requests") or not (
            resource in _DEFAULTED_LIMITS or resource.startswith("hugepages-")):
        raise ConfigError(f"unsupported container resource : {wanted}")
    try:
        amount = quantity.parse((limits if kind == "limits" else requests).get(resource, 0))
        divisor = ref.get("divisor")
        per = quantity.parse(divisor) if divisor not in (None, "") else Fraction(0)
    except quantity.QuantityError as exc:
        raise ConfigError(str(exc)) from exc
    if per == 0:
        per = Fraction(1)
    # Value() and MilliValue() round up before the (ceiling) division, as apimachinery does.
    scale = 1000 if resource == "cpu" else 1
    return str(_ceil_div(math.ceil(amount * scale), max(1, math.ceil(per * scale))))


# -- sources -------------------------------------------------------------------------------------


def secret_data(secret: Object) -> dict[str, bytes]:
    """A Secret's data, base64-decoded."""
    data: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"illegal base64 data in secret key {key}") from exc
    return data


def is_env_var_name(name: str) -> bool:
    """Kubernetes' IsEnvVarName."""
    return (_ENV_VAR_NAME.fullmatch(name) is not None and name not in (".", "..")
            and not name.startswith(".."))


class _Sources:
    """The configMaps and secrets one container reads, each fetched once."""

    def __init__(self, namespace: str, configmap: Lookup, secret: Lookup) -> None:
        self.namespace = namespace
        self._lookups = {"configmap": configmap, "secret": secret}
        self._seen: dict[tuple[str, str], dict[str, str] | None] = {}

    def get(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        """The object's string data; None when it is missing and optional."""
        if (kind, name) not in self._seen:
            found = self._lookups[kind](self.namespace, name)
            if found is None:
                data = None
            elif kind == "secret":
                data = {k: v.decode("utf-8", "replace") for k, v in secret_data(found).items()}
            else:
                data = dict(found.get("data") or {})
            self._seen[(kind, name)] = data
        data = self._seen[(kind, name)]
        if data is None and not optional:
            raise ConfigError(f'{kind} "{name}" not found')
        return data


def _env_from(container: Object, sources: _Sources, env: dict[str, str],
              warn: Warn | None) -> None:
    for entry in container.get("envFrom") or []:
        prefix = entry.get("prefix") or ""
        for field, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
            ref = entry.get(field)
            if ref is None:
                continue
            data = sources.get(kind, ref.get("name", ""), bool(ref.get("optional")))
            invalid: list[str] = []
            for key, value in (data or {}).items():
                if not is_env_var_name(prefix + key):
                    invalid.append(prefix + key)
                    continue
                env[prefix + key] = value
            if invalid and warn is not None:
                label = "configMap" if kind == "configmap" else "secret"
                warn("InvalidEnvironmentVariableNames",
                     f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {label} "
                     f"{sources.namespace}/{ref.get('name', '')} were skipped since they are "
                     "considered invalid environment variable names.")
            break


def _key_ref(ref: Object, kind: str, sources: _Sources) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    optional = bool(ref.get("optional"))
    data = sources.get(kind, name, optional)
    if data is None:
        return None
    if key not in data:
        if optional:
            return None
        label = "ConfigMap" if kind == "configmap" else "Secret"
        raise ConfigError(f"couldn't find key {key} in {label} {sources.namespace}/{name}")
    return data[key]


def resolve_env(pod: Object, container: Object, *, configmap: Lookup, secret: Lookup,
                services: Sequence[Object], node_name: str, host_ip: str, pod_ip: str,
                pod_ips: Sequence[str], node_allocatable: Mapping[str, Any] | None = None,
                host_ips: Sequence[str] | None = None,
                warn: Warn | None = None) -> list[tuple[str, str]]:
    """Return the container's environment as (name, value) pairs, in order.

    `services` may hold services of any namespace: those of the pod's own (when
    spec.enableServiceLinks is not false) and default/kubernetes are used. `warn` receives
    the InvalidEnvironmentVariableNames event when envFrom skips keys.
    """
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = meta.get("namespace", "")
    services_env = service_env(services, namespace,
                               enable_service_links=spec.get("enableServiceLinks") is not False)
    env: dict[str, str] = dict(services_env)
    sources = _Sources(namespace, configmap, secret)
    _env_from(container, sources, env, warn)
    pod_ips = [ip for ip in pod_ips if ip] or ([pod_ip] if pod_ip else [])
    node_ips = [ip for ip in (host_ips or ()) if ip] or ([host_ip] if host_ip else [])
    runtime_fields = {
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.host": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": node_ips[0] if node_ips else "",
        "status.hostIPs": ",".join(node_ips),
        "status.podIP": pod_ips[0] if pod_ips else "",
        "status.podIPs": ",".join(pod_ips),
    }
    for var in container.get("env") or []:
        name, value_from = var.get("name", ""), var.get("valueFrom")
        value: str | None = var.get("value") or ""
        if value:
            value = expand(value, mapping_for(env))
        elif value_from:
            if (field_ref := value_from.get("fieldRef")) is not None:
                path = field_ref.get("fieldPath", "")
                version = field_ref.get("apiVersion") or "v1"
                if path in runtime_fields and version == "v1":
                    value = runtime_fields[path]
                else:
                    value = metadata_field_value(pod, path, version)
            elif (resource_ref := value_from.get("resourceFieldRef")) is not None:
                value = container_resource_value(pod, container, resource_ref,
                                                 node_allocatable or {})
            elif (cm_ref := value_from.get("configMapKeyRef")) is not None:
                value = _key_ref(cm_ref, "configmap", sources)
            elif (secret_ref := value_from.get("secretKeyRef")) is not None:
                value = _key_ref(secret_ref, "secret", sources)
        if value is not None:
            env[name] = value
    return list(env.items())
