"""Strategic merge patch rules: list order, directives and kube-apiserver's error answers.

The ordering cases restate behaviour pinned by apimachinery's strategicpatch tests (server-side
application of the patch to the live object), over a schema shaped like theirs.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.errors import APIError, BadRequest, Invalid
from controlplane.api.patch import (
    StrategicMergeError,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from controlplane.api.patch.failures import OPERATION_FAILED
from controlplane.api.patch.schema import MERGE, RETAIN_KEYS, FieldMeta, Struct

_INNER = Struct("MergeItem", {"mergingList": FieldMeta((MERGE,), "name"),
                              "mergingIntList": FieldMeta((MERGE,))})
ITEM = Struct("MergeItem", {
    "mergingList": FieldMeta((MERGE,), "name", _INNER),
    "mergingIntList": FieldMeta((MERGE,)),
    "retainKeysMap": FieldMeta((RETAIN_KEYS,), type=_INNER),
    "retainKeysMergingList": FieldMeta((MERGE, RETAIN_KEYS), "name", _INNER),
})


def _named(*names: Any, **fields: Any) -> list[dict[str, Any]]:
    return [{"name": n, **fields.get(str(n), {})} for n in names]


CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "add multiple items in a list and preserve order": (
        {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
        {"$setElementOrder/mergingList": _named(1, 4, 2, 3),
         "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]},
        {"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "value": 4},
                         {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
    "set elements order in a list with server-only items": (
        {"mergingList": _named(1, 3, 4, 2, 9)},
        {"$setElementOrder/mergingList": _named(4, 2, 3, 1)},
        {"mergingList": _named(4, 2, 3, 1, 9)}),
    "set elements order in a list with server-only items 2": (
        {"mergingList": _named(1, 2, 9, 3, 4)},
        {"$setElementOrder/mergingList": _named(2, 1, 4, 3)},
        {"mergingList": _named(2, 1, 9, 4, 3)}),
    "set elements order in a list with server-only items 3": (
        {"mergingList": _named(1, 2, 7, 9, 8, 3, 4)},
        {"$setElementOrder/mergingList": _named(2, 1, 4, 3)},
        {"mergingList": _named(2, 1, 7, 9, 8, 4, 3)}),
    "set element order names an item absent from the list": (
        {"mergingList": _named(1, 3)},
        {"$setElementOrder/mergingList": _named(3, 2, 1),
         "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
        {"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    "nested patch merge with empty list": (
        {"name": "hi", "mergingList": [{"name": "hello2"}]},
        {"$setElementOrder/mergingList": [{"name": "hello"}, {"name": "doesntexist"}],
         "mergingList": [{"name": "hello"}]},
        {"name": "hi", "mergingList": [{"name": "hello"}, {"name": "hello2"}]}),
    "delete and reorder in one list": (
        {"mergingList": [{"name": "a", "value": "a"}, {"name": "b", "value": "b"}]},
        {"$setElementOrder/mergingList": [{"name": "b"}],
         "mergingList": [{"$patch": "delete", "name": "a"}]},
        {"mergingList": [{"name": "b", "value": "b"}]}),
    "merge lists of scalars": (
        {"mergingIntList": [1, 2, 4]},
        {"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3]},
        {"mergingIntList": [1, 2, 3, 4]}),
    "delete items in lists of scalars": (
        {"mergingIntList": [1, 2, 3, 3, 4]},
        {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
        {"mergingIntList": [1, 2, 4]}),
    "delete from a list without a merge strategy": (
        {"nonMergingIntList": [1, 2, 3]},
        {"$deleteFromPrimitiveList/nonMergingIntList": [2]},
        {"nonMergingIntList": [1, 3]}),
    "delete from a null or absent list adds nothing": (
        {"mergingIntList": None, "foo": ["bar"]},
        {"$deleteFromPrimitiveList/mergingIntList": [3],
         "$deleteFromPrimitiveList/other": [3]},
        {"mergingIntList": None, "foo": ["bar"]}),
    "retainKeys map clears a defaulted field": (
        {"retainKeysMap": {"name": "type1", "value": "foo"}},
        {"retainKeysMap": {"$retainKeys": ["name", "other"], "name": "type2", "other": "bar"}},
        {"retainKeysMap": {"name": "type2", "other": "bar"}}),
    "retainKeys list of maps clears a field": (
        {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a", "other": "x"}]},
        {"$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}],
         "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo"}]},
        {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
    "nested merging lists merge by key": (
        {"mergingList": [{"name": 1, "mergingList": [{"name": "x", "value": 1}],
                          "mergingIntList": [1]}]},
        {"mergingList": [{"name": 1, "mergingList": [{"name": "x", "other": 2}],
                          "mergingIntList": [2]}]},
        {"mergingList": [{"name": 1, "mergingList": [{"name": "x", "value": 1, "other": 2}],
                          "mergingIntList": [2, 1]}]}),
}


@pytest.mark.parametrize(("current", "patch", "result"), CASES.values(), ids=CASES.keys())
def test_upstream_cases(current: dict[str, Any], patch: dict[str, Any],
                        result: dict[str, Any]) -> None:
    assert apply_strategic_merge_patch(current, patch, ITEM) == result


def _error(patch: Any, current: dict[str, Any] | None = None) -> APIError:
    with pytest.raises(APIError) as err:
        apply_strategic_merge_patch(current or {"mergingList": _named(1)}, patch, ITEM)
    return err.value


@pytest.mark.parametrize(("patch", "message"), [
    ({"retainKeysMap": {"$retainKeys": "name"}}, "invalid patch format of retainKeys"),
    ({"retainKeysMap": {"$retainKeys": ["name"], "value": 1}},
     "invalid patch format of retainKeys"),
    ({"$setElementOrdermergingList": []}, "invalid patch format of setElementOrder list"),
    ({"$deleteFromPrimitiveListmergingIntList": [1]}, "invalid patch format of primitive list"),
])
def test_malformed_directives_are_400(patch: dict[str, Any], message: str) -> None:
    err = _error(patch, {"retainKeysMap": {"name": "a"}})
    assert isinstance(err, BadRequest)
    assert (err.code, err.message) == (400, message)


@pytest.mark.parametrize(("patch", "message"), [
    ({"mergingList": [{"value": "b"}]},
     "map: map[value:b] does not contain declared merge key: name"),
    ({"mergingList": [{"$patch": "delete"}]},
     "map: map[$patch:delete] does not contain declared merge key: name"),
    ({"mergingList": [{"$patch": "merge"}]}, "merging lists cannot yet be specified in the patch"),
    ({"mergingList": [{"$patch": "frob", "name": 1}]},
     "unknown patch type: frob in map: map[$patch:frob name:1]"),
    ({"retainKeysMap": {"$patch": "frob"}}, "unknown patch type: frob in map: map[$patch:frob]"),
    ({"$setElementOrder/mergingList": "x"}, "expected a []interface {}, but received a string"),
    ({"mergingList": [{"name": 1}, "x"]},
     "list element types are not identical: [[map[name:1]] [map[name:1] x]]"),
    ({"$setElementOrder/mergingList": _named(1, 2), "mergingList": _named(2, 1)},
     "The order in patch list:\n[map[name:2] map[name:1]]\n doesn't match $setElementOrder "
     "list:\n[map[name:1] map[name:2]]\n"),
])
def test_go_errors_are_500_with_no_reason(patch: dict[str, Any], message: str) -> None:
    err = _error(patch, {"mergingList": _named(1), "retainKeysMap": {"name": "a"}})
    assert isinstance(err, StrategicMergeError)
    status = err.status()
    assert (status["code"], status["reason"], status["message"]) == (500, "", message)


def test_lists_of_lists_are_422_invalid() -> None:
    err = _error({"mergingIntList": [[1]]}, {"mergingIntList": [[0]]})
    assert isinstance(err, Invalid)
    assert (err.code, err.message) == (422, OPERATION_FAILED)


@pytest.mark.parametrize(("patch", "kind"), [([], "array"), ("x", "string"), (1, "number")])
def test_a_patch_that_is_not_an_object_is_400(patch: Any, kind: str) -> None:
    err = _error(patch)
    assert isinstance(err, BadRequest)
    assert err.message == f"json: cannot unmarshal {kind} into Go value of type " \
                          "map[string]interface {}"


_keys = st.text(st.characters(codec="ascii", exclude_characters="$"), max_size=3)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)
_objects = st.dictionaries(_keys, _values, max_size=4)


@given(_objects, _objects)
def test_without_lists_or_directives_smp_is_merge_patch(original: dict[str, Any],
                                                        patch: dict[str, Any]) -> None:
    assert apply_strategic_merge_patch(original, patch, ITEM) == apply_merge_patch(original,
                                                                                   patch)


@given(_objects)
def test_empty_patch_is_identity(original: dict[str, Any]) -> None:
    assert apply_strategic_merge_patch(original, {}, ITEM) == original


@given(st.lists(st.integers(0, 5), max_size=6), st.lists(st.integers(0, 5), max_size=6))
def test_scalar_merge_lists_are_unions(current: list[int], patch: list[int]) -> None:
    merged = apply_strategic_merge_patch({"mergingIntList": current},
                                         {"mergingIntList": patch}, ITEM)["mergingIntList"]
    assert set(merged) == set(current) | set(patch)
    assert len(merged) == len(set(merged))
