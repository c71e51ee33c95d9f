"""Typed decoding of request bodies: Go's type errors, nulls as zero values, JSON as Go reads it."""

from typing import Any

import pytest

from controlplane.api.errors import BadRequest, Invalid
from controlplane.apiserver import negotiation, typecheck


def pod(**extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]},
            **extra}


@pytest.mark.parametrize("body,error", [
    ({"metadata": {"name": 5}},
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string"),
    ({"metadata": "x"},
     "json: cannot unmarshal string into Go struct field Pod.metadata of type v1.ObjectMeta"),
    ({"metadata": {"labels": {"a": True}}},
     "json: cannot unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string"),
    ({"spec": {"containers": "c"}},
     "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type "
     "[]v1.Container"),
    ({"spec": {"containers": [{"name": ["c"]}]}},
     "json: cannot unmarshal array into Go struct field Container.spec.containers.name of type "
     "string"),
    ({"spec": {"terminationGracePeriodSeconds": 1.5}},
     "json: cannot unmarshal number 1.5 into Go struct field PodSpec.spec."
     "terminationGracePeriodSeconds of type int64"),
    ({"spec": {"containers": [{"ports": [{"containerPort": 2**40}]}]}},
     "json: cannot unmarshal number 1099511627776 into Go struct field ContainerPort.spec."
     "containers.ports.containerPort of type int32"),
    ({"metadata": {"creationTimestamp": "yesterday"}},
     'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse it as RFC 3339'),
    ({"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}},
     "quantities must match the regular expression "
     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
])
def test_first_type_error_in_go_words(body: dict[str, Any], error: str) -> None:
    assert typecheck.decode("", "v1", "Pod", body) == error


def test_well_typed_bodies_decode_and_nulls_become_zero_values() -> None:
    body = pod(status=None)
    body["metadata"].update(labels={"a": None}, finalizers=[None], creationTimestamp=None,
                            managedFields=[{"fieldsV1": {"f:x": [1, {"y": None}]}}])
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m", "memory": 2e9}}
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostIP": None}]
    body["extra"] = {"anything": None}  # unknown keys are fieldValidation's business
    assert typecheck.decode("", "v1", "Pod", body) == ""
    assert "status" not in body and "creationTimestamp" not in body["metadata"]
    assert body["metadata"]["labels"] == {"a": ""} and body["metadata"]["finalizers"] == [""]
    assert body["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    assert body["extra"] == {"anything": None}
    assert typecheck.decode("example.com", "v1", "Widget", {"spec": 5}) == ""  # no schema


def test_create_bodies_are_400_and_patch_results_422() -> None:
    with pytest.raises(BadRequest) as bad:
        typecheck.decode_body("apps", "v1", "Deployment", {"spec": {"replicas": "3"}})
    assert bad.value.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32")
    with pytest.raises(Invalid) as invalid:
        typecheck.decode_patched("", "v1", "ConfigMap", {"data": []})
    [cause] = invalid.value.causes
    assert cause.field == "patch" and cause.message.startswith('Invalid value: "{\\"data\\":[]}"')
    assert typecheck.decode_as("meta.DeleteOptions", {"dryRun": "All"}).endswith(
        "DeleteOptions.dryRun of type []string")


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b"[" * 101 + b"]" * 101,
                                  b"[" * 100000 + b"]" * 100000])
def test_json_that_go_would_not_read_is_400(body: bytes) -> None:
    with pytest.raises(BadRequest):
        negotiation.decode_json(body)


def test_yaml_reads_as_sigs_k8s_io_yaml_does() -> None:
    decoded = negotiation.decode_yaml(b"day: 2020-01-01\nkeys: {1: a, null: b}\nset: !!set {x}\n")
    assert decoded == {"day": "2020-01-01", "keys": {"1": "a", "null": "b"}, "set": {"x": None}}
    bomb = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n" % ((c, c) + (c - 1,) * 10)
        for c in range(ord("b"), ord("j")))
    for body in (b"a: .nan", b"a: " + b"[" * 101 + b"]" * 101, bomb):
        with pytest.raises(BadRequest):
            negotiation.decode_yaml(body)
