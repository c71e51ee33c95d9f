"""JSON merge patch (RFC 7386): the RFC's examples, kubectl's label/scale bodies, properties."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.errors import BadRequest
from controlplane.api.patch import apply_merge_patch

# RFC 7386 Appendix A, as (original, patch, result) triples of JSON text.
RFC_7386_EXAMPLES = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
    ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_7386_EXAMPLES)
def test_rfc7386_appendix(original: str, patch: str, result: str) -> None:
    assert apply_merge_patch(json.loads(original), json.loads(patch)) == json.loads(result)


def test_rfc7386_section3_example() -> None:
    target = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert apply_merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_null_patch_is_bad_request_as_kube_apiserver_answers() -> None:
    # RFC 7386 would yield null (example 11); the apiserver refuses the body instead.
    with pytest.raises(BadRequest) as err:
        apply_merge_patch({"a": "foo"}, None)
    assert err.value.status()["code"] == 400
    assert err.value.status()["message"] == "Invalid JSON Patch"


def test_kubectl_label_patch() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p", "labels": {"run": "p"}}, "spec": {}}
    patched = apply_merge_patch(pod, {"metadata": {"labels": {"tier": "web"}}})
    assert patched["metadata"]["labels"] == {"run": "p", "tier": "web"}
    unlabeled = apply_merge_patch(patched, {"metadata": {"labels": {"tier": None}}})
    assert unlabeled["metadata"]["labels"] == {"run": "p"}


def test_kubectl_scale_patch_on_scale_subresource() -> None:
    scale = {"kind": "Scale", "apiVersion": "autoscaling/v1",
             "metadata": {"name": "x", "namespace": "default", "resourceVersion": "121"},
             "spec": {"replicas": 1}, "status": {"replicas": 1, "selector": "app=x"}}
    patched = apply_merge_patch(scale, {"spec": {"replicas": 3}})
    assert patched["spec"] == {"replicas": 3}
    assert patched["status"] == scale["status"]


def test_lists_are_replaced_whole() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}
    patched = apply_merge_patch(pod, {"spec": {"containers": [{"name": "a", "image": "z"}]}})
    assert patched["spec"]["containers"] == [{"name": "a", "image": "z"}]


def test_inputs_are_not_mutated_and_result_shares_nothing() -> None:
    original = {"a": {"b": [1, {"c": 2}]}, "d": {"e": 1}}
    patch = {"a": {"x": {"y": [3]}}, "d": None}
    before = (copy.deepcopy(original), copy.deepcopy(patch))
    result = apply_merge_patch(original, patch)
    assert (original, patch) == before
    result["a"]["b"][1]["c"] = 99
    result["a"]["x"]["y"].append(4)
    assert (original, patch) == before


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(max_size=3), _json, max_size=4)


@given(_objects)
def test_empty_patch_is_identity(original: dict[str, Any]) -> None:
    assert apply_merge_patch(original, {}) == original


@given(_objects, _objects)
def test_applying_twice_equals_applying_once(original: dict[str, Any],
                                             patch: dict[str, Any]) -> None:
    once = apply_merge_patch(original, patch)
    assert apply_merge_patch(once, patch) == once


@given(_objects, _objects)
def test_patched_keys_take_the_patch_and_others_stay(original: dict[str, Any],
                                                     patch: dict[str, Any]) -> None:
    result = apply_merge_patch(original, patch)
    for key, value in original.items():
        if key not in patch:
            assert result[key] == value
    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif not isinstance(value, dict):
            assert result[key] == value
