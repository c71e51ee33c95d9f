"""JSON patch (RFC 6902) over RFC 6901 pointers: the `application/json-patch+json` PATCH body.

Operations run in order on a private copy, so a failing one leaves the caller's object as it was.
Errors are kube-apiserver's: a body that is not a list of objects is 400 BadRequest with Go's
decoding message, more than 10000 operations is 413, and an operation that cannot be applied is
422 Invalid with the apiserver's generic text (it hides the detail; ours is the `__cause__`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from controlplane.api.errors import BadRequest, Invalid, RequestEntityTooLarge
from controlplane.api.patch.failures import OPERATION_FAILED

MAX_OPERATIONS = 10000
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


class OperationError(Exception):
    """Why one operation could not be applied; chained under the 422 Invalid we raise."""


def apply_json_patch(original: Any, operations: Any) -> Any:
    """Return `original` with the RFC 6902 `operations` (a decoded JSON array) applied."""
    ops = _decode(operations)
    if len(ops) > MAX_OPERATIONS:
        raise RequestEntityTooLarge(
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_OPERATIONS}, got {len(ops)}")
    doc = copy.deepcopy(original)
    for index, op in enumerate(ops):
        try:
            doc = _apply(doc, op)
        except OperationError as exc:
            raise Invalid(OPERATION_FAILED) from OperationError(f"operation {index}: {exc}")
    return doc


def _decode(operations: Any) -> list[dict[str, Any]]:
    """Check the body's shape as Go's decoder does; a `null` body (or element) decodes as empty."""
    if operations is None:
        return []
    if not isinstance(operations, list):
        raise BadRequest(_unmarshal_error(operations, "jsonpatch.Patch"))
    for op in operations:
        if op is not None and not isinstance(op, dict):
            raise BadRequest(_unmarshal_error(op, "jsonpatch.Operation"))
    return [op if op is not None else {} for op in operations]


def _unmarshal_error(value: Any, go_type: str) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "bool"}
    kind = kinds.get(type(value), "number")
    return f"json: cannot unmarshal {kind} into Go value of type {go_type}"


def _apply(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    if kind == "add":
        return _add(doc, _pointer(op, "path"), copy.deepcopy(_member(op, "value")))
    if kind == "remove":
        return _remove(doc, _pointer(op, "path"))[0]
    if kind == "replace":
        return _replace(doc, _pointer(op, "path"), copy.deepcopy(_member(op, "value")))
    if kind == "move":
        source, path = _pointer(op, "from"), _pointer(op, "path")
        if path[: len(source)] == source and len(path) > len(source):
            raise OperationError("cannot move a value into one of its own children")
        doc, value = _remove(doc, source)
        return _add(doc, path, value)
    if kind == "copy":
        value = copy.deepcopy(_get(doc, _pointer(op, "from")))
        return _add(doc, _pointer(op, "path"), value)
    if kind == "test":
        path, expected = _pointer(op, "path"), _member(op, "value")
        if not json_equal(_get(doc, path), expected):
            raise OperationError(f"test failed at {_render(path)}")
        return doc
    raise OperationError(f"unexpected op: {kind!r}")


def _member(op: dict[str, Any], name: str) -> Any:
    if name not in op:
        raise OperationError(f"{op.get('op')} operation is missing its {name!r} member")
    return op[name]


def _pointer(op: dict[str, Any], name: str) -> list[str]:
    """Parse the RFC 6901 pointer in member `name` into its unescaped reference tokens."""
    text = _member(op, name)
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise OperationError(f"{name} is not a JSON pointer: {text!r}")
    if not text:
        return []
    tokens = text[1:].split("/")
    if any(re.search(r"~(?![01])", token) for token in tokens):
        raise OperationError(f"{name} has an invalid ~ escape: {text!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _render(path: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in path)


def _get(doc: Any, path: list[str]) -> Any:
    for depth, token in enumerate(path):
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list) and _ARRAY_INDEX.fullmatch(token) and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            raise OperationError(f"no value at {_render(path[: depth + 1])}")
    return doc


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, token = _get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        if token == "-":
            parent.append(value)
        elif _ARRAY_INDEX.fullmatch(token) and int(token) <= len(parent):
            parent.insert(int(token), value)
        else:
            raise OperationError(f"invalid array index at {_render(path)}")
    else:
        raise OperationError(f"cannot add a member to a scalar at {_render(path[:-1])}")
    return doc


def _replace(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path)
    parent, token = _get(doc, path[:-1]), path[-1]
    parent[int(token) if isinstance(parent, list) else token] = value
    return doc


def _remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    """Remove the value at `path`; return the document and the removed value."""
    if not path:
        raise OperationError("cannot remove the whole document")
    parent, token = _get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict) and token in parent:
        return doc, parent.pop(token)
    if isinstance(parent, list) and _ARRAY_INDEX.fullmatch(token) and int(token) < len(parent):
        return doc, parent.pop(int(token))
    raise OperationError(f"no value at {_render(path)}")


def json_equal(left: Any, right: Any) -> bool:
    """Compare two JSON values as RFC 6902 `test` does: numbers by value, booleans apart."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return type(left) is type(right) and bool(left == right)
