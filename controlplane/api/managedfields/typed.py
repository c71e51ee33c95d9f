"""Schema-guided walks over JSON objects: field sets, comparison, merge and item removal.

Each value's shape comes from the strategic-merge-patch metadata (`patch.schema_for`), as
structured-merge-diff takes it from the OpenAPI list types: a list whose field merges by a
patchMergeKey is associative (items owned by key), a merging list of scalars is a set (items
owned by value), any other list is atomic (owned whole); maps are granular unless their field's
strategy is `replace`. Scalars, atomic values and list items are leaves a manager can own; an
empty map or list counts as a leaf when compared, so `{}` versus absent is a change. Nothing
here mutates its inputs; a list item missing its merge key raises `SchemaError`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Final

from controlplane.api.managedfields.fieldpath import (
    FieldSet,
    Path,
    key,
    path_string,
    recursive_difference,
    tree,
    value,
    with_named_fields,
)
from controlplane.api.managedfields.fieldpath import field as field_element
from controlplane.api.patch.schema import MERGE, NO_META, REPLACE, FieldMeta, Struct


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()  # a field the object does not have (JSON null is None)
ATOMIC, ASSOCIATIVE, SET = "atomic", "associative", "set"


class SchemaError(ValueError):
    """A value that does not fit its schema, worded as structured-merge-diff words it."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path_string(path)}: {detail}" if path else detail)


@dataclass
class Comparison:
    """What changed from one object to another, as sets of leaf and item paths."""

    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    def exclude(self, prefixes: FieldSet) -> Comparison:
        """Forget changes at or under `prefixes` (fields the strategy resets)."""
        return Comparison(recursive_difference(self.added, prefixes),
                          recursive_difference(self.modified, prefixes),
                          recursive_difference(self.removed, prefixes))


def root_meta(struct: Struct | None) -> FieldMeta:
    """The metadata of a whole object of a kind (None: a kind we hold no facts about)."""
    return FieldMeta(type=struct or Struct("object"))


def _child(meta: FieldMeta, name: str) -> FieldMeta:
    return meta.type.lookup(name) if meta.type is not None else NO_META


def _element(meta: FieldMeta) -> FieldMeta:
    return FieldMeta(type=meta.type)


def _is_map(v: Any, meta: FieldMeta) -> bool:
    return isinstance(v, dict) and meta.strategy != REPLACE


def _list_kind(meta: FieldMeta, *lists: Any) -> str:
    if MERGE not in meta.strategies:
        return ATOMIC
    if meta.merge_key:
        return ASSOCIATIVE
    items = [item for v in lists if isinstance(v, list) for item in v]
    return ATOMIC if any(isinstance(i, dict | list) for i in items) else SET


def _item_element(item: Any, n: int, kind: str, meta: FieldMeta, path: Path) -> str:
    if kind == SET:
        return value(item)
    if not isinstance(item, dict) or meta.merge_key not in item:
        raise SchemaError(path, f"element {n}: associative list with keys has an element that "
                                f'omits key field "{meta.merge_key}" (and doesn\'t have default '
                                "value)")
    return key(meta.merge_key, item)


def _index(items: Any, kind: str, meta: FieldMeta, path: Path, strict: bool) -> dict[str, Any]:
    """Items by path element; duplicates are an error in `strict` mode, else the first wins."""
    out: dict[str, Any] = {}
    for n, item in enumerate(items if isinstance(items, list) else []):
        element = _item_element(item, n, kind, meta, path)
        if element in out:
            if strict:
                raise SchemaError(path, f"duplicate entries for key {path_string((element,))}")
            continue
        out[element] = item
    return out


def field_set(obj: Any, meta: FieldMeta, *, strict: bool = False) -> FieldSet:
    """Return the leaves and list items `obj` sets (structured-merge-diff's ToFieldSet)."""
    out: FieldSet = set()
    _collect(obj, meta, (), out, strict)
    return out


def _collect(v: Any, meta: FieldMeta, path: Path, out: FieldSet, strict: bool) -> None:
    if _is_map(v, meta):
        for name, child in v.items():
            _collect(child, _child(meta, name), path + (field_element(name),), out, strict)
        return
    kind = _list_kind(meta, v) if isinstance(v, list) else ATOMIC
    if kind == ATOMIC:
        if path:
            out.add(path)
        return
    for element, item in _index(v, kind, meta, path, strict).items():
        out.add(path + (element,))
        if kind == ASSOCIATIVE:
            _collect(item, _element(meta), path + (element,), out, strict)


def _shape(left: Any, right: Any, meta: FieldMeta) -> str:
    """How to compare a pair: as a granular map, a granular list, or one leaf."""
    present = [v for v in (left, right) if v is not ABSENT and v is not None]
    if not any(present):  # both absent, null or empty: the empty/null distinction is a leaf
        return ATOMIC
    if all(_is_map(v, meta) for v in present):
        return "map"
    if all(isinstance(v, list) for v in present) and _list_kind(meta, *present) != ATOMIC:
        return "list"
    return ATOMIC


def compare(left: Any, right: Any, meta: FieldMeta, *, builtin: bool) -> Comparison:
    """Return what changed from `left` to `right` (structured-merge-diff's Compare).

    A map that appears is itself recorded as added when Kubernetes would have found it absent
    before. For a `builtin` kind, Go decodes nested structs as zero values that are already
    there, so only what `_optional` takes for a map or pointer, or anything inside a new list
    item, counts; for other kinds (no Go types) every new map does.
    """
    out = Comparison()
    _compare(left, right, meta, (), out, builtin, False)
    return out


def _compare(left: Any, right: Any, meta: FieldMeta, path: Path, out: Comparison,
             builtin: bool, fresh: bool) -> None:
    shape = _shape(left, right, meta)
    if shape == "map":
        lmap = left if isinstance(left, dict) else {}
        rmap = right if isinstance(right, dict) else {}
        if path and not isinstance(left, dict):
            if fresh or not builtin or _optional(rmap, meta):
                out.added.add(path)
        elif path and not isinstance(right, dict):
            out.removed.add(path)
        for name in dict.fromkeys([*lmap, *rmap]):
            _compare(lmap.get(name, ABSENT), rmap.get(name, ABSENT), _child(meta, name),
                     path + (field_element(name),), out, builtin, fresh)
    elif shape == "list":
        _compare_list(left, right, meta, path, out, builtin, fresh)
    elif left is ABSENT:
        if right is not ABSENT:
            out.added.add(path)
    elif right is ABSENT:
        out.removed.add(path)
    elif not _equal(left, right):
        out.modified.add(path)


def _optional(value: dict[str, Any], meta: FieldMeta) -> bool:
    """Guess whether a Go field holding this map is nil when unset (a map or a pointer).

    Structs our schema lists (spec, template, metadata) are embedded values, zeroed rather
    than absent; a map of scalars is taken for a Go map or a small optional struct.
    """
    return meta.type is None and not any(isinstance(v, dict | list) for v in value.values())


def _compare_list(left: Any, right: Any, meta: FieldMeta, path: Path, out: Comparison,
                  builtin: bool, fresh: bool) -> None:
    if not isinstance(left, list):
        out.added.add(path)
    elif not isinstance(right, list):
        out.removed.add(path)
    kind = _list_kind(meta, left, right)
    litems = _index(left, kind, meta, path, False)
    ritems = _index(right, kind, meta, path, False)
    for element in dict.fromkeys([*litems, *ritems]):
        lv, rv = litems.get(element, ABSENT), ritems.get(element, ABSENT)
        item_path = path + (element,)
        if kind == SET:
            _compare(lv, rv, NO_META, item_path, out, builtin, fresh)
            continue
        if lv is ABSENT:
            out.added.add(item_path)
        elif rv is ABSENT:
            out.removed.add(item_path)
        _compare(lv, rv, _element(meta), item_path, out, builtin, fresh or lv is ABSENT)


def _equal(left: Any, right: Any) -> bool:
    """JSON equality as structured-merge-diff sees it: numbers by value, bools apart."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_equal, left, right))
    return type(left) is type(right) and bool(left == right)


def equal(left: Any, right: Any) -> bool:
    """Whether two objects hold the same values (numbers compared by value)."""
    return _equal(left, right)


def merge(live: Any, config: Any, meta: FieldMeta, path: Path = ()) -> Any:
    """Return `live` with `config` merged in: config's leaves win, other values stay."""
    if live is ABSENT:
        return copy.deepcopy(config)
    if config is None and (_is_map(live, meta) or isinstance(live, list)
                           and _list_kind(meta, live) != ATOMIC):
        return live  # null merges into a granular map or list as nothing
    if _is_map(live, meta) and _is_map(config, meta):
        out = dict(live)
        for name, v in config.items():
            out[name] = merge(live.get(name, ABSENT), v, _child(meta, name),
                              path + (field_element(name),))
        return out
    if isinstance(live, list) and isinstance(config, list):
        kind = _list_kind(meta, live, config)
        if kind != ATOMIC:
            return _merge_list(live, config, kind, meta, path)
    return copy.deepcopy(config)


def _merge_list(live: list[Any], config: list[Any], kind: str, meta: FieldMeta,
                path: Path) -> list[Any]:
    litems = _index(live, kind, meta, path, False)
    citems = _index(config, kind, meta, path, False)
    out = []
    for element in _merge_order(list(litems), list(citems)):
        lv, cv = litems.get(element, ABSENT), citems.get(element, ABSENT)
        if cv is ABSENT:
            out.append(lv)
        elif kind == SET:
            out.append(copy.deepcopy(cv))
        else:
            out.append(merge(lv, cv, _element(meta), path + (element,)))
    return out


def _merge_order(live: list[str], config: list[str]) -> list[str]:
    """Order merged items as structured-merge-diff does.

    Items the config names come in the config's order; live-only items keep their place
    relative to the shared items around them.
    """
    in_live, in_config = set(live), set(config)
    shared = [e for e in config if e in in_live]
    out: list[str] = []
    li = ci = si = 0
    while li < len(live) or ci < len(config):
        next_shared = shared[si] if si < len(shared) else None
        if li < len(live) and ci < len(config):
            if live[li] == config[ci]:
                out.append(live[li])
                li, ci, si = li + 1, ci + 1, si + 1
                continue
            if live[li] in in_config and next_shared not in (None, live[li]):
                li += 1
                continue
        if li < len(live) and (live[li] not in in_config or ci >= len(config)):
            if live[li] not in in_config:
                out.append(live[li])
            li += 1
            continue
        out.append(config[ci])
        if config[ci] == next_shared:
            si += 1
        ci += 1
    return out


def remove_items(obj: Any, paths: FieldSet, meta: FieldMeta) -> Any:
    """Return `obj` without the fields and items in `paths` (and what lies under them).

    A map or list emptied by the removal goes too, as Go's `omitempty` would drop it.
    """
    return _remove(obj, tree(paths), meta, ())


def _remove(v: Any, node: Any, meta: FieldMeta, path: Path) -> Any:
    if _is_map(v, meta):
        out = {}
        for name, child in v.items():
            element = field_element(name)
            if element in node.members:
                continue
            sub = node.children.get(element)
            kept = child if sub is None else _remove(child, sub, _child(meta, name),
                                                     path + (element,))
            emptied = sub is not None and bool(child) and isinstance(kept, dict | list) and not kept
            if not emptied:
                out[name] = kept
        return out
    kind = _list_kind(meta, v) if isinstance(v, list) else ATOMIC
    if kind == ATOMIC:
        return v
    items = []
    for n, item in enumerate(v):
        element = _item_element(item, n, kind, meta, path)
        if element in node.members:
            continue
        sub = node.children.get(element) if kind == ASSOCIATIVE else None
        items.append(item if sub is None else _remove(item, sub, _element(meta),
                                                      path + (element,)))
    return items


def prune(merged: Any, last: FieldSet, managed: FieldSet, meta: FieldMeta) -> Any:
    """Remove what an applier set last time but no longer sets, unless someone owns it.

    `last` is the applier's previous set and `managed` every manager's current set (the
    applier's new one included). Only fields the applier owned go: an unowned field under a
    removed one is added back (structured-merge-diff's prune, addBackOwnedItems and
    addBackDanglingItems, with named fields counted as members).
    """
    if not last:
        return merged
    last_named = with_named_fields(last)
    merged_set = with_named_fields(field_set(merged, meta))
    pruned = remove_items(merged, last_named, meta)
    owned = with_named_fields(managed) | with_named_fields(field_set(pruned, meta))
    pruned = remove_items(merged, merged_set - owned, meta)
    gone = merged_set - with_named_fields(field_set(pruned, meta))
    return remove_items(merged, gone & last_named, meta)


def drop_applied_nulls(obj: Any, config: Any, meta: FieldMeta, path: Path = ()) -> Any:
    """Return `obj` without the map entries `config` set to null, as decoding into Go would."""
    if _is_map(obj, meta) and _is_map(config, meta):
        out = dict(obj)
        for name, v in config.items():
            if v is None and out.get(name, ABSENT) is None:
                del out[name]
            elif name in out:
                out[name] = drop_applied_nulls(out[name], v, _child(meta, name),
                                               path + (field_element(name),))
        return out
    if isinstance(obj, list) and isinstance(config, list):
        if _list_kind(meta, obj, config) == ASSOCIATIVE:
            citems = _index(config, ASSOCIATIVE, meta, path, False)
            return [drop_applied_nulls(item, citems.get(key(meta.merge_key, item), ABSENT),
                                       _element(meta), path)
                    if isinstance(item, dict) and meta.merge_key in item else item
                    for item in obj]
    return obj
