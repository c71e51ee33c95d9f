"""List identity and order for strategic merge patch: which items match, where they go.

Items of a merging list match by merge key (objects) or by value (scalars), compared as Go
compares decoded JSON (same type and value). After a merge, items the patch names keep the
patch's order, server-only items keep the live order, and the two are interleaved so a live item
stays ahead of the patch items it preceded; items new to the list therefore come first.
"""

from __future__ import annotations

from typing import Any

from controlplane.api.errors import Invalid
from controlplane.api.patch.failures import (
    NO_LIST_OF_LISTS,
    OPERATION_FAILED,
    StrategicMergeError,
    bad_arg_type,
    no_merge_key,
)
from controlplane.api.patch.gotext import go_value

DIRECTIVE = "$patch"


def partition(merged: list[Any], patch: list[Any],
              merge_key: str) -> tuple[list[Any], list[Any]]:
    """Split merged items into those the patch (or order list) names and the server-only ones."""
    in_patch: list[Any] = []
    server_only: list[Any] = []
    for item in merged:
        if merge_key:
            if not isinstance(item, dict):
                raise StrategicMergeError(bad_arg_type({}, item))
            if merge_key not in item:
                raise StrategicMergeError(no_merge_key(item, merge_key))
            found = find_by_key(patch, merge_key, item[merge_key]) >= 0
        else:
            found = any(same(item, p) for p in patch)
        (in_patch if found else server_only).append(item)
    return in_patch, server_only


def arrange(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
            server_order: list[Any], merge_key: str, kind: type) -> list[Any]:
    """Order a merged list: patch items by `patch_order`, server-only ones by `server_order`.

    The two runs are interleaved: a server-only item goes before the next patch item only if
    the live list (`server_order`) had it first, so items new to the list lead.
    """
    patch_items = _sort_by(patch_items, patch_order, merge_key, kind)
    server_only = _sort_by(server_only, server_order, merge_key, kind)
    result: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if right < len(patch_items) and left < len(server_only):
            li = _index(server_order, server_only[left], merge_key, kind)
            ri = _index(server_order, patch_items[right], merge_key, kind)
            take_left = li >= 0 and ri >= 0 and li < ri
        else:
            take_left = left < len(server_only)
        if take_left:
            result.append(server_only[left])
            left += 1
        else:
            result.append(patch_items[right])
            right += 1
    return result


def _sort_by(items: list[Any], order: list[Any], merge_key: str, kind: type) -> list[Any]:
    """Stable-sort `items` by their position in `order`; `$patch: delete` items go last."""
    deletes: list[Any] = []
    if kind is dict:
        for listed in (items, order):
            for item in listed:
                if not isinstance(item, dict):
                    raise StrategicMergeError(bad_arg_type({}, item))
                if merge_key not in item:
                    raise StrategicMergeError(no_merge_key(item, merge_key))
        items, deletes = split_deletes(items)
    positions = [_index(order, item, merge_key, kind) for item in items]
    if all(p >= 0 for p in positions):
        items = [item for _, item in sorted(zip(positions, items, strict=True),
                                            key=lambda pair: pair[0])]
    return items + deletes


def _index(values: list[Any], item: Any, merge_key: str, kind: type) -> int:
    """The position of `item` in `values`, by merge key for objects; -1 if absent."""
    def identity(value: Any) -> Any:
        if kind is dict:
            return value.get(merge_key) if isinstance(value, dict) else None
        return value

    wanted = identity(item)
    return next((i for i, v in enumerate(values) if same(identity(v), wanted)), -1)


def split_deletes(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """Split list-patch objects into plain ones and `$patch: delete` ones."""
    keep: list[Any] = []
    deletes: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise StrategicMergeError(bad_arg_type({}, item))
        is_delete = DIRECTIVE in item and same(item[DIRECTIVE], "delete")
        (deletes if is_delete else keep).append(item)
    return keep, deletes


def element_type(*lists: list[Any]) -> type:
    """The one Python type of every element of `lists`; lists of lists are refused."""
    found: type | None = None
    for values in lists:
        for value in values:
            if found is None:
                if isinstance(value, list):
                    raise Invalid(OPERATION_FAILED) from ValueError(NO_LIST_OF_LISTS)
                found = type(value)
            elif type(value) is not found:
                raise StrategicMergeError("list element types are not identical: "
                                          f"{go_value(list(lists))}")
    if found is None:
        raise StrategicMergeError("no elements in any of the given slices")
    return found


def merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    """Whether two items are the same list entry: equal merge keys, or equal scalars."""
    if not merge_key:
        return same(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise StrategicMergeError(bad_arg_type({}, item))
        if merge_key not in item:
            raise StrategicMergeError(no_merge_key(item, merge_key))
    return same(left[merge_key], right[merge_key])


def find_by_key(items: list[Any], merge_key: str, value: Any) -> int:
    """The index of the first object whose merge key has `value`; -1 if there is none."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise StrategicMergeError(f"value for key {index} is not a map")
        if merge_key in item and same(item[merge_key], value):
            return index
    return -1


def dedupe(values: list[Any]) -> list[Any]:
    """Drop repeated scalars, keeping each first occurrence."""
    unique: list[Any] = []
    for value in values:
        if not any(same(value, u) for u in unique):
            unique.append(value)
    return unique


def same(left: Any, right: Any) -> bool:
    """Go's `==` on decoded JSON values: equal only if the same type (int64 is not float64)."""
    return type(left) is type(right) and bool(left == right)
