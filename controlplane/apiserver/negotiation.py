"""Request bodies in, response formats out: JSON, YAML and Kubernetes protobuf bodies decoded
into JSON dicts; Accept headers asking for a meta.k8s.io Table recognised.

Clients are lax (the Python client sends no Content-Type; kubectl's DeleteOptions carry no
kind), so a missing Content-Type means JSON and missing kind/apiVersion are filled from the URL
by the handler. Every decoding failure is a 400 with a message naming the problem. What decodes
is plain JSON data, as Go would have it: no NaN or Infinity, YAML timestamps kept as strings and
map keys as strings, and at most MAX_DEPTH levels deep (the registry's code recurses).
A big response body goes out in chunks and is let go once sent (`response_body`): an idle
keep-alive connection would otherwise hold on to it, and to a TLS buffer as big.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

from controlplane.api import errors, protobuf
from controlplane.apiserver.storage import codec

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit for a request body
MAX_DEPTH = 100  # nesting of objects and arrays; built-in kinds stay far below it
CHUNK = 64 * 1024  # bodies above this go out in pieces of this size
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


def _not_json(constant: str) -> Any:
    raise ValueError(f"invalid character {constant[0]!r} looking for beginning of value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: Go's float64 cannot hold it either
        raise ValueError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return value


def decode_json(body: bytes, what: str = "json") -> Any:
    try:
        value = codec.loads(body, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise errors.BadRequest(f"couldn't get version/kind; {what} parse error: exceeded max "
                                "depth") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise errors.BadRequest(f"couldn't get version/kind; {what} parse error: {exc}") from None
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH:  # else it cannot be nested that deep
        _check_depth(value, what)
    return value


class _Loader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it into JSON: timestamps stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def decode_yaml(body: bytes) -> Any:
    try:
        value = yaml.load(body.decode(), Loader=_Loader)  # _Loader is a SafeLoader
        value = _json_data(value, [4 * len(body) + 1000])
    except RecursionError:
        raise errors.BadRequest("couldn't get version/kind; yaml parse error: exceeded max "
                                "depth") from None
    except (UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        detail = str(exc).replace("\n", " ")
        raise errors.BadRequest(f"couldn't get version/kind; yaml parse error: {detail}") from None
    _check_depth(value, "yaml")
    return value


def _json_data(value: Any, budget: list[int]) -> Any:
    """`value` (from YAML) as JSON data: string keys, lists, finite numbers, text.

    `budget` counts down the nodes built; aliases that expand past it are refused, as Go's YAML
    refuses "excessive aliasing" (a few bytes of anchors can otherwise name billions of nodes).
    """
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("yaml: document contains excessive aliasing")
    if isinstance(value, dict):
        return {_json_key(k): _json_data(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_data(v, budget) for v in value]
    if isinstance(value, set):
        return {_json_key(k): None for k in value}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value}")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def _json_key(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, str | int | float):
        return str(key)
    raise ValueError(f"yaml: invalid map key: {key!r}")


def _check_depth(value: Any, what: str) -> None:
    """Refuse documents nested deeper than MAX_DEPTH (without recursing ourselves)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(
            node, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise errors.BadRequest(f"couldn't get version/kind; {what} parse error: exceeded "
                                    f"max depth of {MAX_DEPTH}")
        stack.extend((child, depth + 1) for child in children)


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
    # `null` decodes in Go (to no patch); the patch functions give it kube-apiserver's meaning.
    expected, go_type = (list, "jsonpatch.Patch") if kind == JSON_PATCH else (
        dict, "map[string]interface {}")
    if parsed is not None and not isinstance(parsed, expected):
        raise errors.BadRequest(f"json: cannot unmarshal {_json_kind(parsed)} into Go value of "
                                f"type {go_type}")
    return kind, parsed


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "bool"}
    return kinds.get(type(value), "number")


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


class _ChunkedBody(payload.Payload):
    """A response body written CHUNK bytes at a time, each sent before the next is encrypted,
    and dropped once written.

    The TLS layer encrypts what it is given into a memory buffer that only goes when the
    connection does, and aiohttp keeps a connection's last response until its next request:
    a 6 MB list would cost 12 MB per keep-alive connection for as long as it stays open.
    """

    def __init__(self, value: bytes) -> None:
        super().__init__(value)
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        view = memoryview(self._value)[:content_length]
        try:
            for start in range(0, len(view), CHUNK):
                await writer.write(view[start:start + CHUNK])
                await writer.drain()
        finally:
            self._value = b""


def response_body(body: bytes) -> bytes | payload.Payload:
    """`body` as a `web.Response` should be given it: big ones in chunks."""
    return _ChunkedBody(body) if len(body) > CHUNK else body
