"""Request bodies in, response formats out: JSON, YAML and Kubernetes protobuf bodies decoded
into JSON dicts; Accept headers asking for a meta.k8s.io Table recognised.

Clients are lax (the Python client sends no Content-Type; kubectl's DeleteOptions carry no
kind), so a missing Content-Type means JSON and missing kind/apiVersion are filled from the URL
by the handler. Every decoding failure is a 400 with a message naming the problem.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from controlplane.api import errors, protobuf

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit for a request body
JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`; missing -> JSON."""
    if not content_type:
        return JSON
    return content_type.split(";", 1)[0].strip().lower() or JSON


def decode_json(body: bytes, what: str = "json") -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"couldn't get version/kind; {what} parse error: {exc}") from None


def decode_yaml(body: bytes) -> Any:
    try:
        return yaml.safe_load(body.decode())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).replace("\n", " ")
        raise errors.BadRequest(f"couldn't get version/kind; yaml parse error: {detail}") from None


def decode_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a create/update body into an object dict."""
    if len(body) > MAX_BODY:
        raise errors.RequestEntityTooLarge("the request body is too large")
    kind = media_type(content_type)
    if kind == PROTOBUF:
        return protobuf.decode_object(body)
    if kind in (JSON, "*/*"):
        obj = decode_json(body)
    elif kind in (YAML, "application/x-yaml", "text/yaml"):
        obj = decode_yaml(body)
    else:
        raise errors.UnsupportedMediaType(
            f'the body of the request was in an unknown format - accepted media types include: '
            f'{JSON}, {YAML}, {PROTOBUF}')
    if not isinstance(obj, dict):
        raise errors.BadRequest("couldn't get version/kind; json parse error: the body is not "
                                "a JSON object")
    return obj


def decode_patch(body: bytes, content_type: str | None) -> tuple[str, Any]:
    """Return (patch type, parsed patch) for a PATCH body."""
    if len(body) > MAX_BODY:
        raise errors.RequestEntityTooLarge("the request body is too large")
    kind = media_type(content_type)
    if kind not in PATCH_TYPES:
        raise errors.UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(PATCH_TYPES)}")
    if kind == APPLY_PATCH:
        parsed = decode_yaml(body)
        if not isinstance(parsed, dict):
            raise errors.BadRequest("error decoding YAML: the apply patch is not an object")
        return kind, parsed
    parsed = decode_json(body)
    if kind == JSON_PATCH and not isinstance(parsed, list):
        raise errors.BadRequest("json: cannot unmarshal object into Go value of type "
                                "jsonpatch.Patch")
    if kind != JSON_PATCH and not isinstance(parsed, dict):
        raise errors.BadRequest("json: cannot unmarshal non-object into Go value of type "
                                "map[string]interface {}")
    return kind, parsed


def wants_table(accept: str | None) -> bool:
    """True when the Accept header's first acceptable type is a meta.k8s.io Table."""
    if not accept:
        return False
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if "as=Table" in params and "g=meta.k8s.io" in params:
            return True
        if part.split(";")[0].strip() in (JSON, "*/*", PROTOBUF):
            return False
    return False
