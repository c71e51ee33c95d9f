"""Name, label, annotation and object-meta checks in Kubernetes' exact wording."""

from typing import Any

import pytest

from controlplane.api.errors import Cause, Invalid
from controlplane.api.validation import (
    format_value,
    go_quote,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_path_segment_name,
    validate_annotations,
    validate_labels,
    validate_object_meta,
)

SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_ERROR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
NAME_PART_ERROR = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',"
    "  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


@pytest.mark.parametrize("value", ["a", "example.com", "a-b.c-d", "0", "x" * 253])
def test_dns1123_subdomain_accepts(value: str) -> None:
    assert is_dns1123_subdomain(value) == []


@pytest.mark.parametrize("value, errors", [
    ("Bad_Name", [SUBDOMAIN_ERROR]),
    ("", [SUBDOMAIN_ERROR]),
    ("-a", [SUBDOMAIN_ERROR]),
    ("a..b", [SUBDOMAIN_ERROR]),
    ("x" * 254, ["must be no more than 253 characters"]),
    ("X" * 254, ["must be no more than 253 characters", SUBDOMAIN_ERROR]),
])
def test_dns1123_subdomain_rejects(value: str, errors: list[str]) -> None:
    assert is_dns1123_subdomain(value) == errors


def test_dns1123_label() -> None:
    assert is_dns1123_label("kube-system") == []
    assert is_dns1123_label("a.b") == ["must not contain dots"]
    assert is_dns1123_label("A") == [LABEL_ERROR]
    assert is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]


def test_dns1035_label_must_start_with_a_letter() -> None:
    assert is_dns1035_label("my-svc") == []
    assert is_dns1035_label("1svc") == [DNS1035_ERROR]
    assert is_dns1035_label("a" * 64) == ["must be no more than 63 characters"]


@pytest.mark.parametrize("value, errors", [
    ("app", []),
    ("app.kubernetes.io/name", []),
    ("My_Key.1", []),
    ("Bad_", [NAME_PART_ERROR]),
    ("/name", ["prefix part must be non-empty"]),
    ("example.com/", ["name part must be non-empty", NAME_PART_ERROR]),
    ("Example.com/x", ["prefix part " + SUBDOMAIN_ERROR]),
    ("a" * 64, ["name part must be no more than 63 characters"]),
    ("a/b/c", ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
               "must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',"
               "  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?"
               "[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. "
               "'example.com/MyName')"]),
])
def test_qualified_name(value: str, errors: list[str]) -> None:
    assert is_qualified_name(value) == errors


def test_label_value() -> None:
    assert is_valid_label_value("") == []
    assert is_valid_label_value("v1.2_x-3") == []
    assert is_valid_label_value("-x") == [LABEL_VALUE_ERROR]
    assert is_valid_label_value("é") == [LABEL_VALUE_ERROR]
    assert is_valid_label_value("v" * 64) == ["must be no more than 63 characters"]


def test_path_segment_name() -> None:
    assert is_valid_path_segment_name("system:controller:x") == []
    assert is_valid_path_segment_name("..") == ["may not be '..'"]
    assert is_valid_path_segment_name("a/b%") == ["may not contain '/'", "may not contain '%'"]


def test_go_quote_and_format_value() -> None:
    assert go_quote('a"b\\c\n\x01\u00a0é') == '"a\\"b\\\\c\\n\\x01\\u00a0é"'
    assert format_value(["orphan", "x"]) == '[]string{"orphan", "x"}'
    assert format_value(-1) == "-1"
    assert format_value(None) == "null"
    assert format_value(True) == "true"


def test_validate_labels_and_annotations() -> None:
    assert validate_labels({"app": "web"}, "metadata.labels") == []
    assert validate_labels({"Bad_": "x y"}, "metadata.labels") == [
        Cause("FieldValueInvalid", f'Invalid value: "Bad_": {NAME_PART_ERROR}', "metadata.labels"),
        Cause("FieldValueInvalid", f'Invalid value: "x y": {LABEL_VALUE_ERROR}',
              "metadata.labels"),
    ]
    assert validate_annotations({"Example.COM/Key": "anything at all"}, "a") == []
    assert validate_annotations({"bad key": ""}, "a") == [
        Cause("FieldValueInvalid", f'Invalid value: "bad key": {NAME_PART_ERROR}', "a")]
    assert validate_annotations({"k": "v" * (256 * 1024 - 1)}, "a") == []
    assert validate_annotations({"k": "v" * (256 * 1024)}, "a") == [
        Cause("FieldValueTooLong", "Too long: must have at most 262144 bytes", "a")]


def _meta(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "namespace": "default", **fields}


def test_valid_object_meta_has_no_causes() -> None:
    meta = _meta(labels={"app": "web"}, annotations={"note": "x"}, finalizers=["example.com/f"],
                 ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                   "uid": "u1", "controller": True}])
    assert validate_object_meta(meta, namespaced=True) == []


def test_name_format_cause_reads_like_kubernetes() -> None:
    causes = validate_object_meta(_meta(name="Bad_Name"), namespaced=True)
    assert causes == [Cause("FieldValueInvalid", f'Invalid value: "Bad_Name": {SUBDOMAIN_ERROR}',
                            "metadata.name")]
    message = Invalid.of("Pod", "", "Bad_Name", causes).message
    assert message == f'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ' \
                      f"{SUBDOMAIN_ERROR}"


def test_name_or_generate_name_is_required() -> None:
    assert validate_object_meta({"namespace": "default"}, namespaced=True) == [
        Cause("FieldValueRequired", "Required value: name or generateName is required",
              "metadata.name")]


def test_generate_name_is_checked_with_its_trailing_dash_masked() -> None:
    assert validate_object_meta(_meta(generateName="web-"), namespaced=True) == []
    causes = validate_object_meta(_meta(generateName="Web-"), namespaced=True)
    assert [c.field for c in causes] == ["metadata.generateName"]
    assert causes[0].message.startswith('Invalid value: "Web-": a lowercase RFC 1123 subdomain')


def test_name_validator_is_pluggable() -> None:
    causes = validate_object_meta(_meta(name="1svc"), namespaced=True,
                                  name_validator=is_dns1035_label)
    assert causes == [Cause("FieldValueInvalid", f'Invalid value: "1svc": {DNS1035_ERROR}',
                            "metadata.name")]


def test_namespace_required_validated_or_forbidden() -> None:
    assert validate_object_meta({"name": "web"}, namespaced=True) == [
        Cause("FieldValueRequired", "Required value", "metadata.namespace")]
    assert validate_object_meta(_meta(namespace="a.b"), namespaced=True) == [
        Cause("FieldValueInvalid", 'Invalid value: "a.b": must not contain dots',
              "metadata.namespace")]
    assert validate_object_meta(_meta(), namespaced=False) == [
        Cause("FieldValueForbidden", "Forbidden: not allowed on this type", "metadata.namespace")]
    assert validate_object_meta({"name": "node-1"}, namespaced=False) == []


def test_generation_must_not_be_negative() -> None:
    assert validate_object_meta(_meta(generation=-1), namespaced=True) == [
        Cause("FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0",
              "metadata.generation")]


def test_labels_annotations_and_finalizers_use_metadata_paths() -> None:
    causes = validate_object_meta(
        _meta(labels={"a": "-"}, annotations={"x/y/z": ""}, finalizers=["bad finalizer"]),
        namespaced=True)
    assert [c.field for c in causes] == [
        "metadata.labels", "metadata.annotations", "metadata.finalizers"]


def test_conflicting_deletion_finalizers() -> None:
    causes = validate_object_meta(_meta(finalizers=["orphan", "foregroundDeletion"]),
                                  namespaced=True)
    assert causes == [Cause(
        "FieldValueInvalid", 'Invalid value: []string{"orphan", "foregroundDeletion"}: finalizer '
        "orphan and foregroundDeletion cannot be both set", "metadata.finalizers")]


def test_owner_references_need_api_version_kind_name_and_uid() -> None:
    causes = validate_object_meta(_meta(ownerReferences=[{"apiVersion": "apps/"}]),
                                  namespaced=True)
    assert causes == [
        Cause("FieldValueInvalid", 'Invalid value: "apps/": version must not be empty',
              "metadata.ownerReferences.apiVersion"),
        Cause("FieldValueInvalid", 'Invalid value: "": must not be empty',
              "metadata.ownerReferences.kind"),
        Cause("FieldValueInvalid", 'Invalid value: "": must not be empty',
              "metadata.ownerReferences.name"),
        Cause("FieldValueInvalid", 'Invalid value: "": must not be empty',
              "metadata.ownerReferences.uid"),
    ]


def test_owner_references_allow_one_controller_and_no_events() -> None:
    refs = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": n, "uid": n,
             "controller": True} for n in ("a", "b")]
    causes = validate_object_meta(_meta(ownerReferences=refs), namespaced=True)
    assert len(causes) == 1
    assert causes[0].message.endswith('Only one reference can have Controller set to true. '
                                      'Found "true" in references for ReplicaSet/a and '
                                      "ReplicaSet/b")
    event = {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}
    causes = validate_object_meta(_meta(ownerReferences=[event]), namespaced=True)
    assert causes == [Cause(
        "FieldValueInvalid", "Invalid value: &OwnerReference{APIVersion:v1,Kind:Event,Name:e,"
        "UID:u,Controller:nil,BlockOwnerDeletion:nil,}: /v1, Kind=Event is disallowed from "
        "being an owner", "metadata.ownerReferences")]
