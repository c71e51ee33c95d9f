"""Kubernetes' name, label, annotation and object-meta checks, in Kubernetes' exact wording.

The `is_*` functions return the messages of k8s.io/apimachinery/pkg/util/validation (an empty
list means valid); the `validate_*` functions turn them into `Cause`s the way
pkg/api/validation does, with Go's rendering of the bad value (`Invalid value: "Bad_Name": ...`),
so an `Invalid` Status reads as kube-apiserver's does. Lengths are counted in UTF-8 bytes, as
Go's `len` counts them. Pure: no I/O, no state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from controlplane.api.errors import (
    FIELD_DUPLICATE,
    FIELD_FORBIDDEN,
    FIELD_INVALID,
    FIELD_NOT_SUPPORTED,
    FIELD_REQUIRED,
    FIELD_TOO_LONG,
    Cause,
)

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_MAX_LENGTH = 63
QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024

FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character")
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)

NameValidator = Callable[[str], list[str]]


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Render Kubernetes' RegexError, double spaces between examples included."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _byte_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def is_dns1123_label(value: str) -> list[str]:
    """Check a DNS-1123 label (namespace names, most label-like names)."""
    errs = []
    if _byte_len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """Check a DNS-1123 subdomain (the name of most objects)."""
    errs = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """Check a DNS-1035 label (service names: they must start with a letter)."""
    errs = []
    if _byte_len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Check a qualified name: label and annotation keys, finalizers (`[prefix/]name`)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name " + regex_error(
            _QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + msg for msg in is_dns1123_subdomain(prefix))
    if not name:
        errs.append("name part must be non-empty")
    elif _byte_len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append("name part " + regex_error(
            _QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """Check a label value: at most 63 characters of the qualified-name charset, or empty."""
    errs = []
    if _byte_len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_valid_path_segment_name(value: str) -> list[str]:
    """Check a name that only has to be a URL path segment (RBAC roles and bindings)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def go_quote(value: str) -> str:
    """Quote a string as Go's strconv.Quote (`%q`) does."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v"}


def format_value(value: object) -> str:
    """Render a bad value as field.Error does: strings quoted, []string in Go syntax, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def invalid(field: str, value: object, detail: str) -> Cause:
    return Cause(FIELD_INVALID, f"Invalid value: {format_value(value)}: {detail}", field)


def required(field: str, detail: str = "") -> Cause:
    return Cause(FIELD_REQUIRED, "Required value" + (f": {detail}" if detail else ""), field)


def forbidden(field: str, detail: str) -> Cause:
    return Cause(FIELD_FORBIDDEN, "Forbidden" + (f": {detail}" if detail else ""), field)


def too_long(field: str, max_bytes: int) -> Cause:
    return Cause(FIELD_TOO_LONG, f"Too long: must have at most {max_bytes} bytes", field)


def duplicate(field: str, value: object) -> Cause:
    return Cause(FIELD_DUPLICATE, f"Duplicate value: {format_value(value)}", field)


def not_supported(field: str, value: object, supported: Iterable[str]) -> Cause:
    choices = ", ".join(go_quote(s) for s in supported)
    detail = f": supported values: {choices}" if choices else ""
    return Cause(FIELD_NOT_SUPPORTED, f"Unsupported value: {format_value(value)}{detail}", field)


def validate_labels(labels: Mapping[str, str], path: str) -> list[Cause]:
    """Check every label key (qualified name) and value, as ValidateLabels does."""
    causes: list[Cause] = []
    for key, value in labels.items():
        causes.extend(invalid(path, key, msg) for msg in is_qualified_name(key))
        causes.extend(invalid(path, value, msg) for msg in is_valid_label_value(value))
    return causes


def validate_annotations(annotations: Mapping[str, str], path: str) -> list[Cause]:
    """Check annotation keys (qualified names, case-insensitive) and their total size."""
    causes: list[Cause] = []
    for key in annotations:
        causes.extend(invalid(path, key, msg) for msg in is_qualified_name(key.lower()))
    total = sum(_byte_len(k) + _byte_len(v) for k, v in annotations.items())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def validate_finalizers(finalizers: Sequence[str], path: str) -> list[Cause]:
    """Check finalizer names and that orphan and foregroundDeletion are not both set."""
    causes: list[Cause] = []
    for name in finalizers:
        causes.extend(invalid(path, name, msg) for msg in is_qualified_name(name))
    if FINALIZER_ORPHAN in finalizers and FINALIZER_FOREGROUND in finalizers:
        causes.append(invalid(path, list(finalizers), f"finalizer {FINALIZER_ORPHAN} and "
                              f"{FINALIZER_FOREGROUND} cannot be both set"))
    return causes


def _owner_reference_text(ref: Mapping[str, Any]) -> str:
    def pointer(value: object) -> str:
        return "nil" if value is None else "*" + format_value(value)
    return (f"&OwnerReference{{APIVersion:{ref.get('apiVersion', '')},Kind:{ref.get('kind', '')},"
            f"Name:{ref.get('name', '')},UID:{ref.get('uid', '')},"
            f"Controller:{pointer(ref.get('controller'))},"
            f"BlockOwnerDeletion:{pointer(ref.get('blockOwnerDeletion'))},}}")


def _validate_owner_reference(ref: Mapping[str, Any], path: str) -> list[Cause]:
    api_version = str(ref.get("apiVersion") or "")
    kind = str(ref.get("kind") or "")
    version = api_version
    if api_version.count("/") == 1:
        group, version = api_version.split("/")
    elif api_version.count("/") > 1 or api_version == "/":
        group, version = "", ""
    else:
        group = ""
    causes: list[Cause] = []
    if not version:
        causes.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
    if not kind:
        causes.append(invalid(f"{path}.kind", kind, "must not be empty"))
    for key in ("name", "uid"):
        if not ref.get(key):
            causes.append(invalid(f"{path}.{key}", str(ref.get(key) or ""), "must not be empty"))
    if (group, version, kind) == ("", "v1", "Event"):
        causes.append(Cause(FIELD_INVALID, f"Invalid value: {_owner_reference_text(ref)}: "
                            "/v1, Kind=Event is disallowed from being an owner", path))
    return causes


def validate_owner_references(refs: Sequence[Mapping[str, Any]], path: str) -> list[Cause]:
    """Check each owner reference is complete and at most one is the controller."""
    causes: list[Cause] = []
    first_controller = ""
    for ref in refs:
        causes.extend(_validate_owner_reference(ref, path))
        if ref.get("controller") is True:
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if not first_controller:
                first_controller = current
                continue
            causes.append(invalid(path, list(refs), "Only one reference can have Controller set "
                                  f'to true. Found "true" in references for {first_controller} '
                                  f"and {current}"))
    return causes


def _mask_trailing_dash(name: str) -> str:
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


def validate_object_meta(meta: Mapping[str, Any], *, namespaced: bool,
                         name_validator: NameValidator = is_dns1123_subdomain,
                         path: str = "metadata") -> list[Cause]:
    """Check an object's metadata on create, after any generateName has been expanded.

    `name_validator` is one of the `is_*` name checks (for example `is_dns1035_label` for
    services); generateName is checked with it too, its trailing '-' masked as Kubernetes does.
    """
    causes: list[Cause] = []
    generate_name = str(meta.get("generateName") or "")
    if generate_name:
        causes.extend(invalid(f"{path}.generateName", generate_name, msg)
                      for msg in name_validator(_mask_trailing_dash(generate_name)))
    name = str(meta.get("name") or "")
    if not name:
        causes.append(required(f"{path}.name", "name or generateName is required"))
    else:
        causes.extend(invalid(f"{path}.name", name, msg) for msg in name_validator(name))
    namespace = str(meta.get("namespace") or "")
    if namespaced and not namespace:
        causes.append(required(f"{path}.namespace"))
    elif namespaced:
        causes.extend(invalid(f"{path}.namespace", namespace, msg)
                      for msg in is_dns1123_label(namespace))
    elif namespace:
        causes.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        causes.append(invalid(f"{path}.generation", generation,
                              "must be greater than or equal to 0"))
    causes.extend(validate_labels(meta.get("labels") or {}, f"{path}.labels"))
    causes.extend(validate_annotations(meta.get("annotations") or {}, f"{path}.annotations"))
    causes.extend(validate_owner_references(meta.get("ownerReferences") or [],
                                            f"{path}.ownerReferences"))
    causes.extend(validate_finalizers(meta.get("finalizers") or [], f"{path}.finalizers"))
    return causes
