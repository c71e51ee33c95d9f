"""JSON patch (RFC 6902) and pointers (RFC 6901): RFC examples, apiserver errors, properties."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.errors import BadRequest, Invalid, RequestEntityTooLarge
from controlplane.api.patch import MAX_OPERATIONS, apply_json_patch
from controlplane.api.patch.failures import OPERATION_FAILED
from controlplane.api.patch.jsonpatch import OperationError

# RFC 6902 Appendix A (A.13, a duplicate "op" member, cannot survive JSON decoding).
RFC_6902_EXAMPLES = {
    "A.1 add an object member": (
        '{"foo":"bar"}', '[{"op":"add","path":"/baz","value":"qux"}]',
        '{"baz":"qux","foo":"bar"}'),
    "A.2 add an array element": (
        '{"foo":["bar","baz"]}', '[{"op":"add","path":"/foo/1","value":"qux"}]',
        '{"foo":["bar","qux","baz"]}'),
    "A.3 remove an object member": (
        '{"baz":"qux","foo":"bar"}', '[{"op":"remove","path":"/baz"}]', '{"foo":"bar"}'),
    "A.4 remove an array element": (
        '{"foo":["bar","qux","baz"]}', '[{"op":"remove","path":"/foo/1"}]',
        '{"foo":["bar","baz"]}'),
    "A.5 replace a value": (
        '{"baz":"qux","foo":"bar"}', '[{"op":"replace","path":"/baz","value":"boo"}]',
        '{"baz":"boo","foo":"bar"}'),
    "A.6 move a value": (
        '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}',
        '[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]',
        '{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}'),
    "A.7 move an array element": (
        '{"foo":["all","grass","cows","eat"]}',
        '[{"op":"move","from":"/foo/1","path":"/foo/3"}]',
        '{"foo":["all","cows","eat","grass"]}'),
    "A.8 test a value: success": (
        '{"baz":"qux","foo":["a",2,"c"]}',
        '[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]',
        '{"baz":"qux","foo":["a",2,"c"]}'),
    "A.10 add a nested member object": (
        '{"foo":"bar"}', '[{"op":"add","path":"/child","value":{"grandchild":{}}}]',
        '{"foo":"bar","child":{"grandchild":{}}}'),
    "A.11 ignore unrecognized elements": (
        '{"foo":"bar"}', '[{"op":"add","path":"/baz","value":"qux","xyz":123}]',
        '{"foo":"bar","baz":"qux"}'),
    "A.14 ~ escape ordering": (
        '{"/":9,"~1":10}', '[{"op":"test","path":"/~01","value":10}]', '{"/":9,"~1":10}'),
    "A.16 add an array value": (
        '{"foo":["bar"]}', '[{"op":"add","path":"/foo/-","value":["abc","def"]}]',
        '{"foo":["bar",["abc","def"]]}'),
}

RFC_6902_ERRORS = {
    "A.9 test a value: error": ('{"baz":"qux"}', '[{"op":"test","path":"/baz","value":"bar"}]'),
    "A.12 add to a nonexistent target": (
        '{"foo":"bar"}', '[{"op":"add","path":"/baz/bat","value":"qux"}]'),
    "A.15 comparing strings and numbers": (
        '{"/":9,"~1":10}', '[{"op":"test","path":"/~01","value":"10"}]'),
}


@pytest.mark.parametrize(("original", "patch", "result"), RFC_6902_EXAMPLES.values(),
                         ids=RFC_6902_EXAMPLES.keys())
def test_rfc6902_appendix(original: str, patch: str, result: str) -> None:
    assert apply_json_patch(json.loads(original), json.loads(patch)) == json.loads(result)


@pytest.mark.parametrize(("original", "patch"), RFC_6902_ERRORS.values(),
                         ids=RFC_6902_ERRORS.keys())
def test_rfc6902_appendix_errors_are_422_invalid(original: str, patch: str) -> None:
    with pytest.raises(Invalid) as err:
        apply_json_patch(json.loads(original), json.loads(patch))
    assert isinstance(err.value.__cause__, OperationError)
    status = err.value.status()
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == OPERATION_FAILED


# RFC 6901 section 5: the example document and what each pointer refers to.
RFC_6901_DOCUMENT = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4,
                     "i\\j": 5, 'k"l': 6, " ": 7, "m~n": 8}
RFC_6901_POINTERS = [("", RFC_6901_DOCUMENT), ("/foo", ["bar", "baz"]), ("/foo/0", "bar"),
                     ("/", 0), ("/a~1b", 1), ("/c%d", 2), ("/e^f", 3), ("/g|h", 4),
                     ("/i\\j", 5), ('/k"l', 6), ("/ ", 7), ("/m~0n", 8)]


@pytest.mark.parametrize(("pointer", "value"), RFC_6901_POINTERS)
def test_rfc6901_pointers(pointer: str, value: Any) -> None:
    apply_json_patch(RFC_6901_DOCUMENT, [{"op": "test", "path": pointer, "value": value}])


@pytest.mark.parametrize("body", [{"op": "add"}, "add", 7, True])
def test_body_not_a_list_is_400_with_go_decoding_message(body: Any) -> None:
    kind = {dict: "object", str: "string", int: "number", bool: "bool"}[type(body)]
    with pytest.raises(BadRequest) as err:
        apply_json_patch({}, body)
    assert err.value.message == (
        f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")


def test_operation_not_an_object_is_400() -> None:
    with pytest.raises(BadRequest) as err:
        apply_json_patch({}, ["add"])
    assert err.value.message == (
        "json: cannot unmarshal string into Go value of type jsonpatch.Operation")


def test_null_body_is_an_empty_patch() -> None:
    assert apply_json_patch({"a": 1}, None) == {"a": 1}


def test_too_many_operations_is_413() -> None:
    ops = [{"op": "test", "path": "", "value": {}}] * (MAX_OPERATIONS + 1)
    with pytest.raises(RequestEntityTooLarge) as err:
        apply_json_patch({}, ops)
    assert err.value.code == 413
    assert err.value.message == ("Request entity too large: The allowed maximum operations in "
                                 "a JSON patch is 10000, got 10001")


@pytest.mark.parametrize("op", [
    {"op": "frobnicate", "path": "/a"},
    {"path": "/a", "value": 1},
    None,
    {"op": "add", "path": "/a"},  # no value
    {"op": "add", "path": "a", "value": 1},  # not a pointer
    {"op": "remove", "path": "/missing"},
    {"op": "remove", "path": ""},
    {"op": "replace", "path": "/missing", "value": 1},
    {"op": "move", "from": "/a", "path": "/a/b"},  # into its own child
    {"op": "copy", "from": "/missing", "path": "/b"},
    {"op": "add", "path": "/list/3", "value": 1},  # past the end
    {"op": "add", "path": "/list/01", "value": 1},  # leading zero
    {"op": "remove", "path": "/list/-"},
    {"op": "test", "path": "/a~2", "value": 1},  # bad escape
])
def test_failing_operations_are_422(op: Any) -> None:
    with pytest.raises(Invalid):
        apply_json_patch({"a": {"x": 1}, "list": [1, 2]}, [op])


def test_kubectl_style_json_patch_on_a_deployment() -> None:
    deploy: dict[str, Any] = {
        "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}]}}}}
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.28"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "web"},
        {"op": "add", "path": "/spec/template/spec/containers/-",
         "value": {"name": "sidecar", "image": "busybox"}},
        {"op": "copy", "from": "/metadata/labels", "path": "/spec/template/metadata"},
        {"op": "remove", "path": "/metadata/labels/app"},
    ]
    patched = apply_json_patch(deploy, ops)
    assert patched["spec"]["replicas"] == 3
    assert patched["metadata"]["labels"] == {"tier": "web"}
    assert patched["spec"]["template"]["metadata"] == {"app": "web", "tier": "web"}
    assert [c["image"] for c in patched["spec"]["template"]["spec"]["containers"]] == [
        "nginx:1.28", "busybox"]
    assert deploy["spec"]["replicas"] == 1  # untouched


def test_a_failing_operation_leaves_the_input_untouched() -> None:
    original = {"a": [1, 2], "b": {"c": 1}}
    before = copy.deepcopy(original)
    with pytest.raises(Invalid):
        apply_json_patch(original, [{"op": "remove", "path": "/a/0"},
                                    {"op": "test", "path": "/b/c", "value": 2}])
    assert original == before


def test_test_treats_numbers_by_value_and_booleans_apart() -> None:
    apply_json_patch({"n": 1}, [{"op": "test", "path": "/n", "value": 1.0}])
    with pytest.raises(Invalid):
        apply_json_patch({"n": 1}, [{"op": "test", "path": "/n", "value": True}])
    with pytest.raises(Invalid):
        apply_json_patch({"n": {"a": 1}}, [{"op": "test", "path": "/n", "value": {"a": 1, "b": 2}}])


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(max_size=3), _json, max_size=4)


def _pointers(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every (pointer, value) pair inside `value`, the root included."""
    found = [(prefix, value)]
    children: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        children = [(k.replace("~", "~0").replace("/", "~1"), v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(str(i), v) for i, v in enumerate(value)]
    for token, child in children:
        found += _pointers(child, f"{prefix}/{token}")
    return found


@given(_objects, st.data())
def test_testing_the_current_value_succeeds(doc: dict[str, Any], data: st.DataObject) -> None:
    pointer, value = data.draw(st.sampled_from(_pointers(doc)))
    assert apply_json_patch(doc, [{"op": "test", "path": pointer, "value": value}]) == doc


@given(_objects, st.data(), _json)
def test_add_then_remove_restores_an_object(doc: dict[str, Any], data: st.DataObject,
                                            value: Any) -> None:
    containers = [(p, v) for p, v in _pointers(doc) if isinstance(v, dict)]
    pointer, target = data.draw(st.sampled_from(containers))
    key = "new" + "x" * len(target)
    ops = [{"op": "add", "path": f"{pointer}/{key}", "value": value},
           {"op": "remove", "path": f"{pointer}/{key}"}]
    assert apply_json_patch(doc, ops) == doc


@given(_objects, st.data())
def test_move_to_the_same_place_is_identity(doc: dict[str, Any], data: st.DataObject) -> None:
    pointer, _ = data.draw(st.sampled_from(_pointers(doc)[1:] or [("", None)]))
    if pointer:
        assert apply_json_patch(doc, [{"op": "move", "from": pointer, "path": pointer}]) == doc
