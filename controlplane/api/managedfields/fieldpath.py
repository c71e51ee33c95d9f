"""Field paths and field sets: the vocabulary of ownership, and their `FieldsV1` wire form.

A path is a tuple of path elements spelled as in FieldsV1: `f:<field>`, `k:<json of the merge
key>` (an item of an associative list), `v:<json value>` (an item of a set) and `i:<index>`. A
field set is a plain `set` of paths; a path in the set is a *member* (owned itself), and any
path that only prefixes members is structure. Canonical JSON inside `k:`/`v:` (compact, keys
sorted, HTML-escaped like Go's encoder) makes equal elements equal strings. The iteration order
and path text follow sigs.k8s.io/structured-merge-diff, so conflict messages read the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

Path = tuple[str, ...]
FieldSet = set[Path]

_RANKS = {"f": 0, "k": 1, "v": 2, "i": 3}


class FieldsError(ValueError):
    """A `fieldsV1` document that is not a well-formed field set."""


def go_json(value: Any) -> str:
    """Encode `value` as Go's encoding/json does for maps: compact, sorted, HTML-safe."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def field(name: str) -> str:
    """The element naming a field of a map or struct."""
    return "f:" + name


def key(merge_key: str, item: dict[str, Any]) -> str:
    """The element naming an associative-list item by its merge key."""
    return "k:" + go_json({merge_key: item[merge_key]})


def value(item: Any) -> str:
    """The element naming a set item by its value."""
    return "v:" + go_json(item)


def _canonical(element: str) -> str:
    kind, sep, body = element.partition(":")
    if not sep or kind not in _RANKS:
        raise FieldsError(f"unknown path element {element!r}")
    if kind in ("k", "v"):
        try:
            decoded = json.loads(body)
        except ValueError as err:
            raise FieldsError(f"invalid path element {element!r}: {err}") from err
        if kind == "k" and not isinstance(decoded, dict):
            raise FieldsError(f"invalid key in path element {element!r}")
        return f"{kind}:{go_json(decoded)}"
    if kind == "i" and not body.lstrip("-").isdigit():
        raise FieldsError(f"invalid index in path element {element!r}")
    return element


def _sort_key(element: str) -> tuple[int, str, int]:
    kind, _, body = element.partition(":")
    if kind == "i":
        return _RANKS[kind], "", int(body)
    return _RANKS[kind], body, 0


class _Node:
    """One level of a field set: the members owned here and the subtrees below."""

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.children: dict[str, _Node] = {}


def tree(paths: Iterable[Path]) -> _Node:
    """Arrange paths as a tree of members and children (the shape of FieldsV1)."""
    root = _Node()
    for path in paths:
        node = root
        for element in path[:-1]:
            node = node.children.setdefault(element, _Node())
        if path:
            node.members.add(path[-1])
    return root


def to_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """Encode a field set as a FieldsV1 object, elements in structured-merge-diff's order."""
    return _encode(tree(paths))


def _encode(node: _Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for element in sorted(node.members | node.children.keys(), key=_sort_key):
        inner: dict[str, Any] = {}
        if element in node.children:
            if element in node.members:
                inner["."] = {}
            inner.update(_encode(node.children[element]))
        out[element] = inner
    return out


def from_fields(fields: Any, prefix: Path = ()) -> FieldSet:
    """Decode a FieldsV1 object into a field set; raise FieldsError if it is malformed."""
    if not isinstance(fields, dict):
        raise FieldsError(f"expected an object at {path_string(prefix) or 'the root'}")
    out: FieldSet = set()
    for element, inner in fields.items():
        if element == ".":
            if not prefix:
                raise FieldsError("'.' at the root of a field set")
            out.add(prefix)
            continue
        path = prefix + (_canonical(element),)
        if inner == {}:
            out.add(path)
        else:
            out |= from_fields(inner, path)
    return out


def iterate(paths: Iterable[Path]) -> list[Path]:
    """List paths in structured-merge-diff's `Set.Iterate` order: members, then children."""
    out: list[Path] = []
    _walk(tree(paths), (), out)
    return out


def _walk(node: _Node, prefix: Path, out: list[Path]) -> None:
    out.extend(prefix + (m,) for m in sorted(node.members, key=_sort_key))
    for element in sorted(node.children, key=_sort_key):
        _walk(node.children[element], prefix + (element,), out)


def path_string(path: Path) -> str:
    """Render a path as Kubernetes prints it: `.spec.containers[name="web"].image`."""
    parts = []
    for element in path:
        kind, _, body = element.partition(":")
        if kind == "f":
            parts.append("." + body)
        elif kind == "k":
            fields = json.loads(body)
            parts.append("[" + ",".join(f"{k}={go_json(fields[k])}" for k in sorted(fields)) + "]")
        elif kind == "v":
            parts.append(f"[={go_json(json.loads(body))}]")
        else:
            parts.append(f"[{body}]")
    return "".join(parts)


def with_named_fields(paths: Iterable[Path]) -> FieldSet:
    """Add every field-name prefix of every path as a member (EnsureNamedFieldsAreMembers)."""
    out: FieldSet = set()
    for path in paths:
        out.add(path)
        for end in range(1, len(path)):
            if path[end - 1].startswith("f:"):
                out.add(path[:end])
    return out


def recursive_difference(paths: Iterable[Path], prefixes: Iterable[Path]) -> FieldSet:
    """Drop every path that equals or lies under one of `prefixes`."""
    cut = tuple(prefixes)
    return {p for p in paths if not any(p[:len(c)] == c for c in cut)}
