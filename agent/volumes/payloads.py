"""What a configMap, secret, downwardAPI or projected volume holds, as pure functions.

These are the kubelet's MakePayload (configMap, secret), CollectData (downwardAPI) and the
projected plugin's collectData: path -> FileProjection maps handed to the AtomicWriter. A
missing source is an error unless it is optional (then it projects nothing); an item naming a
missing key is an error unless the source is optional. Modes: the item's own, else the
volume's defaultMode, else 0644 (Kubernetes' default for all four types). Messages are
Kubernetes' own, raised as SourceError.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.envvars import ConfigError, container_resource_value, metadata_field_value, secret_data
from agent.volumes.atomic_writer import FileProjection
from agent.volumes.errors import SourceError

Object = Mapping[str, Any]
Lookup = Callable[[str, str], Object | None]
DEFAULT_MODE = 0o644
TOKEN_MODE_WITH_FS_GROUP = 0o600  # raised to 0640 by the fsGroup ownership pass


def aggregate(messages: Sequence[str]) -> str:
    """Kubernetes' error aggregate: one message as is, several deduplicated in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def mode_of(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def _key_payload(kind: str, data: Mapping[str, bytes], items: Sequence[Object],
                 default_mode: int, optional: bool) -> dict[str, FileProjection]:
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    payload: dict[str, FileProjection] = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            if kind == "configmap":
                raise SourceError(f"configmap references non-existent config key: {key}")
            raise SourceError(f"references non-existent secret key: {key}")
        payload[item.get("path", "")] = FileProjection(data[key],
                                                       mode_of(item.get("mode"), default_mode))
    return payload


def configmap_payload(source: Object, namespace: str, lookup: Lookup,
                      default_mode: int) -> dict[str, FileProjection]:
    """The files of a configMap source (a volume or a projected source)."""
    name, optional = source.get("name", ""), bool(source.get("optional"))
    configmap = lookup(namespace, name)
    if configmap is None:
        if not optional:
            raise SourceError(f'configmap "{name}" not found')
        configmap = {}
    data = {key: value.encode() for key, value in (configmap.get("data") or {}).items()}
    for key, value in (configmap.get("binaryData") or {}).items():
        try:
            data[key] = base64.b64decode(value or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SourceError(f"illegal base64 data in configmap key {key}") from exc
    return _key_payload("configmap", data, source.get("items") or [], default_mode, optional)


def secret_payload(source: Object, namespace: str, lookup: Lookup,
                   default_mode: int, *, name_field: str = "name") -> dict[str, FileProjection]:
    """The files of a secret source (`secretName` in a secret volume, `name` when projected)."""
    name, optional = source.get(name_field, ""), bool(source.get("optional"))
    secret = lookup(namespace, name)
    if secret is None:
        if not optional:
            raise SourceError(f'secret "{name}" not found')
        secret = {}
    try:
        data = secret_data(secret)
    except ConfigError as exc:
        raise SourceError(exc.message) from exc
    return _key_payload("secret", data, source.get("items") or [], default_mode, optional)


def downward_payload(items: Sequence[Object], pod: Object, default_mode: int,
                     node_allocatable: Mapping[str, Any]) -> dict[str, FileProjection]:
    """The files of a downwardAPI source: pod metadata fields and container resources."""
    payload: dict[str, FileProjection] = {}
    errors: list[str] = []
    for item in items:
        mode = mode_of(item.get("mode"), default_mode)
        data = b""
        try:
            if (field_ref := item.get("fieldRef")) is not None:
                data = metadata_field_value(pod, field_ref.get("fieldPath", ""),
                                            field_ref.get("apiVersion") or "v1").encode()
            elif (resource_ref := item.get("resourceFieldRef")) is not None:
                data = container_resource_value(pod, {}, resource_ref, node_allocatable).encode()
        except ConfigError as exc:
            errors.append(exc.message)
            continue
        payload[item.get("path", "")] = FileProjection(data, mode)
    if errors:
        raise SourceError(aggregate(errors))
    return payload


def projected_payload(source: Object, pod: Object, *, configmap: Lookup, secret: Lookup,
                      node_allocatable: Mapping[str, Any], tokens: Mapping[int, str],
                      fs_group: bool) -> dict[str, FileProjection]:
    """The files of a projected volume; `tokens` holds the service account token by source index."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    default_mode = mode_of(source.get("defaultMode"), DEFAULT_MODE)
    payload: dict[str, FileProjection] = {}
    errors: list[str] = []
    for index, projection in enumerate(source.get("sources") or []):
        try:
            if (cm := projection.get("configMap")) is not None:
                payload.update(configmap_payload(cm, namespace, configmap, default_mode))
            elif (sec := projection.get("secret")) is not None:
                payload.update(secret_payload(sec, namespace, secret, default_mode))
            elif (downward := projection.get("downwardAPI")) is not None:
                payload.update(downward_payload(downward.get("items") or [], pod, default_mode,
                                                node_allocatable))
            elif (token := projection.get("serviceAccountToken")) is not None:
                if index not in tokens:
                    raise SourceError("serviceAccountToken projection needs a token source, and "
                                      "this node has none")
                mode = TOKEN_MODE_WITH_FS_GROUP if fs_group else default_mode
                payload[token.get("path", "")] = FileProjection(tokens[index].encode(), mode)
            else:
                kinds = ", ".join(sorted(projection)) or "empty"
                raise SourceError(f"unsupported projected volume source: {kinds}")
        except SourceError as exc:
            errors.append(str(exc))
    if errors:
        raise SourceError(aggregate(errors))
    return payload
