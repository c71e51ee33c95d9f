"""Strategic merge patch: `application/strategic-merge-patch+json`, the body kubectl apply sends.

Semantics follow k8s.io/apimachinery/pkg/util/strategicpatch as the apiserver runs it (parallel
lists merged, unmatched nulls ignored): maps merge, `null` deletes, lists with patchStrategy
merge merge element-wise by their merge key (or as a set of scalars), other lists are replaced,
and the `$patch`, `$retainKeys`, `$setElementOrder/` and `$deleteFromPrimitiveList/` directives
are honoured. The work is done on private copies; the caller's objects are never changed.
Errors carry the apiserver's code, reason and Go-formatted message (see failures.py).
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api.errors import BadRequest
from controlplane.api.patch.failures import (
    BAD_PRIMITIVE_LIST,
    BAD_RETAIN_KEYS,
    BAD_SET_ELEMENT_ORDER,
    StrategicMergeError,
    bad_arg_type,
    no_merge_key,
)
from controlplane.api.patch.gotext import go_value
from controlplane.api.patch.listorder import (
    DIRECTIVE,
    arrange,
    dedupe,
    element_type,
    find_by_key,
    merge_key_equal,
    partition,
    same,
    split_deletes,
)
from controlplane.api.patch.schema import MERGE, REPLACE, FieldMeta, Struct

Object = dict[str, Any]

RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"

_EMPTY = Struct("struct")


def apply_strategic_merge_patch(original: Object, patch: Any, schema: Struct) -> Object:
    """Return `original` with the strategic merge `patch` applied, lists merged per `schema`."""
    if patch is None:  # the JSON literal null decodes to an empty patch
        return copy.deepcopy(original)
    if not isinstance(patch, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(patch), "number")
        raise BadRequest(f"json: cannot unmarshal {kind} into Go value of type "
                         "map[string]interface {}")
    return _merge_map(copy.deepcopy(original), copy.deepcopy(patch), schema)


def _merge_map(original: Object, patch: Object, schema: Struct) -> Object:
    """Merge `patch` into `original`; both are private copies and are changed in place."""
    if DIRECTIVE in patch:
        return _map_directive(patch)
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)
    for key, value in patch.items():
        _merge_field(original, key, value, schema)
    return original


def _map_directive(patch: Object) -> Object:
    directive = patch[DIRECTIVE]
    if same(directive, "replace"):
        del patch[DIRECTIVE]
        return patch
    if same(directive, "delete"):
        return {}
    raise StrategicMergeError(f"unknown patch type: {go_value(directive)} in map: "
                              f"{go_value(patch)}")


def _merge_field(original: Object, key: str, value: Any, schema: Struct) -> None:
    """Merge one patch entry, `key: value`, into `original`."""
    delete_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
    if delete_list:
        key = _directive_target(key, DELETE_FROM_PRIMITIVE_LIST, BAD_PRIMITIVE_LIST)
    if value is None:
        original.pop(key, None)
        return
    if key not in original or type(original[key]) is not type(value):
        if not delete_list:
            _set_or_drop(original, key, value)
        return
    current, meta = original[key], schema.lookup(key)
    if isinstance(current, dict):
        merged = value if meta.strategy == REPLACE else _merge_map(current, value, _of(meta))
        original[key] = merged
    elif isinstance(current, list):
        original[key] = _merge_list_field(current, value, meta, delete_list)
    else:
        original[key] = value


def _set_or_drop(original: Object, key: str, value: Any) -> None:
    """Take a patch value the original has nothing to merge with: nulls and directives go."""
    _discard_nulls(value)
    keep, value = _strip_directives(value)
    if keep:
        original[key] = value
    else:
        original.pop(key, None)


def _apply_retain_keys(original: Object, patch: Object) -> None:
    """Honour `$retainKeys`: drop the original's keys it does not list."""
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list):
        raise BadRequest(BAD_RETAIN_KEYS)
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in retained:
            raise BadRequest(BAD_RETAIN_KEYS)
    for key in [k for k in original if k not in retained]:
        del original[key]


def _merge_ordered_lists(original: Object, patch: Object, schema: Struct) -> None:
    """Merge each list named by a `$setElementOrder/<field>` and put it in the given order."""
    for directive in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise StrategicMergeError(bad_arg_type([], order))
        key = _directive_target(directive, SET_ELEMENT_ORDER, BAD_SET_ELEMENT_ORDER)
        in_original, in_patch = key in original, key in patch
        for found, value in ((in_original, original.get(key)), (in_patch, patch.get(key))):
            if found and not isinstance(value, list):
                raise StrategicMergeError(bad_arg_type([], value))
        current: list[Any] = original[key] if in_original else []
        changes: list[Any] = patch[key] if in_patch else []
        meta = schema.lookup(key)
        _check_order(changes, order, meta.merge_key)
        if in_original and in_patch:
            merged = _merge_list_field(current, changes, meta, False)
        elif in_patch:
            merged = _strip_directives(changes)[1]
        elif in_original:
            merged = current
        else:
            continue
        kind = element_type(current, changes)
        if kind is not dict or meta.merge_key:
            patch_items, server_only = partition(merged, order, meta.merge_key)
            merged = arrange(patch_items, server_only, order, current, meta.merge_key, kind)
        original[key] = merged
        patch.pop(key, None)


def _check_order(changes: list[Any], order: list[Any], merge_key: str) -> None:
    """Refuse a patch list whose items do not appear in the `$setElementOrder` order."""
    if not changes or not order:
        return
    items = split_deletes(changes)[0] if merge_key else changes
    at, seen = 0, 0
    while at < len(items) and seen < len(order):
        if isinstance(items[at], dict) and DIRECTIVE in items[at]:
            at += 1
            continue
        if merge_key_equal(items[at], order[seen], merge_key):
            at += 1
        seen += 1
    if at < len(items):
        raise StrategicMergeError(f"The order in patch list:\n{go_value(changes)}\n doesn't "
                                  f"match {SET_ELEMENT_ORDER} list:\n{go_value(order)}\n")


def _merge_list_field(current: list[Any], changes: list[Any], meta: FieldMeta,
                      delete_list: bool) -> list[Any]:
    if meta.strategy == MERGE or delete_list:
        return _merge_list(current, changes, _of(meta), meta.merge_key, delete_list)
    return changes


def _merge_list(original: list[Any], patch: list[Any], schema: Struct, merge_key: str,
                delete_list: bool) -> list[Any]:
    """Merge a patch list into a list with patchStrategy merge, keeping a stable order."""
    if not original and not patch:
        return original
    kind = element_type(original, patch)
    if kind is not dict:
        if delete_list:
            return [v for v in original if not any(same(v, d) for d in patch)]
        merged = dedupe(original + patch)
    else:
        if not merge_key:
            raise StrategicMergeError("cannot merge lists without merge key for struct")
        original, patch = _list_directives(original, patch, merge_key)
        merged = _merge_elements(list(original), patch, merge_key, schema)
    patch_items, server_only = partition(merged, patch, merge_key)
    return arrange(patch_items, server_only, patch, original, merge_key, kind)


def _list_directives(original: list[Any], patch: list[Any],
                     merge_key: str) -> tuple[list[Any], list[Any]]:
    """Apply `$patch: delete` / `replace` elements; return the original and the plain patch."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
        elif same(item[DIRECTIVE], "delete"):
            if merge_key not in item:
                raise StrategicMergeError(no_merge_key(item, merge_key))
            original = list(original)
            while (at := find_by_key(original, merge_key, item[merge_key])) >= 0:
                del original[at]
        elif same(item[DIRECTIVE], "replace"):
            replace = True
        elif same(item[DIRECTIVE], "merge"):
            raise StrategicMergeError("merging lists cannot yet be specified in the patch")
        else:
            raise StrategicMergeError(f"unknown patch type: {go_value(item[DIRECTIVE])} in map: "
                                      f"{go_value(item)}")
    return (plain, []) if replace else (original, plain)


def _merge_elements(merged: list[Any], patch: list[Any], merge_key: str,
                    schema: Struct) -> list[Any]:
    """Merge each patch element into the element with its merge key, or append it."""
    for item in patch:
        if merge_key not in item:
            raise StrategicMergeError(no_merge_key(item, merge_key))
        at = find_by_key(merged, merge_key, item[merge_key])
        if at < 0:
            merged.append(item)
        else:
            merged[at] = _merge_map(merged[at], item, schema)
    return merged


def _strip_directives(value: Any) -> tuple[bool, Any]:
    """Remove `$patch` maps from a value taken whole; False if the value itself is one."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return False, None
        for key in list(value):
            keep, value[key] = _strip_directives(value[key])
            if not keep:
                del value[key]
        return True, value
    if isinstance(value, list):
        stripped = (_strip_directives(v) for v in value)
        return True, [v for keep, v in stripped if keep]
    return True, value


def _discard_nulls(value: Any) -> None:
    """Drop `null` members of maps, at any depth (nulls in scalar lists stay)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _directive_target(key: str, prefix: str, malformed: str) -> str:
    """The field a `<prefix>/<field>` directive key names; 400 if the key is malformed."""
    head, sep, field = key.partition("/")
    if not sep or head != prefix:
        raise BadRequest(malformed)
    return field


def _of(meta: FieldMeta) -> Struct:
    return meta.type if meta.type is not None else _EMPTY
