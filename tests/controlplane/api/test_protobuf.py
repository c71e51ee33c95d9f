"""Tests for controlplane.api.protobuf: kubectl's protobuf bodies decode to the JSON it would send.

data/protobuf/*.bin are real request bodies from kubectl v1.32.4 (the command for each is in
CAPTURED), captured by a logging stand-in server; each *.json beside it is the Go JSON of the same
object (`--dry-run=client -o json`, `creationTimestamp: null` removed). Also covered: malformed
bodies give only BadRequest, unknown fields are skipped, and the well-known types' JSON forms.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.errors import BadRequest, UnsupportedMediaType
from controlplane.api.protobuf import decode_object, wellknown
from controlplane.api.protobuf.decode import KINDS, MESSAGES
from controlplane.api.protobuf.schema import KEEP, LIST, MAP, SCALARS, SPECIALS

DATA = Path(__file__).parent / "data" / "protobuf"

CAPTURED = {
    "deployment": "create deployment web --image=nginx:1.27",
    "deployment-replicas0-port": "create deployment multi --image=nginx:1.27 "
                                 "--image=busybox:1.36 --replicas=0 --port=8080",
    "configmap": "create configmap cfg --from-literal=a=1 --from-literal=greeting='héllo wörld' "
                 "--from-file=small.bin  # small.bin holds x 00 ff",
    "configmap-empty": "create configmap empty",
    "secret-generic": "create secret generic sec --from-literal=user=admin "
                      "--from-literal=pass='s3cr3t!' --type=Opaque",
    "secret-docker-registry": "create secret docker-registry reg --docker-server=r.io "
                              "--docker-username=u --docker-password=p",
    "namespace": "create namespace team-a",
    "service-clusterip": "create service clusterip websvc --tcp=80:8080 --tcp=443:8443",
    "service-clusterip-headless": "create service clusterip headless --clusterip=None",
    "service-nodeport": "create service nodeport np --tcp=80:8080 --node-port=30080",
    "service-loadbalancer": "create service loadbalancer lb --tcp=80:8080",
    "service-externalname": "create service externalname ext --external-name=example.com",
    "job": "create job once --image=busybox:1.36 -- echo hi",
    "job-from-cronjob": "create job fromcj --from=cronjob/nightly",
    # The stand-in served a CronJob whose pod template uses most of PodSpec (probes, volumes,
    # affinity, quantities, security contexts); kubectl copied it into the Job it encoded.
    "job-from-cronjob-full-podspec": "create job richjob --from=cronjob/rich",
    "cronjob": "create cronjob nightly --image=busybox:1.36 --schedule='*/5 * * * *' "
               "--restart=OnFailure -- date",
    "serviceaccount": "create serviceaccount robot",
    # No --dry-run for tokens: the expected JSON was checked by hand against Go's JSON tags.
    "token": "create token robot --duration=10m --audience=api --audience=vault",
    "token-bound-object": "create token robot --bound-object-kind=Pod --bound-object-name=p1 "
                          "--bound-object-uid=abc",
    "autoscale": "autoscale deployment web --min=2 --max=5 --cpu-percent=70",
    "autoscale-max-only": "autoscale deployment web --max=3",
    "role": "create role r --verb=get,list --resource=pods,deployments.apps",
    "clusterrole": "create clusterrole cr --verb=get --non-resource-url=/logs/*",
    "rolebinding": "create rolebinding rb --role=r --user=alice --serviceaccount=default:robot",
    "clusterrolebinding": "create clusterrolebinding crb --clusterrole=cr --group=devs",
    "quota": "create quota q --hard=cpu=1,memory=1Gi,pods=10 --scopes=BestEffort",
    "priorityclass": "create priorityclass high --value=1000 --description=hi "
                     "--preemption-policy=Never",
    "poddisruptionbudget": "create pdb p --selector=app=web --min-available=50%",
    "ingress": "create ingress ing --rule=foo.com/bar*=svc:8080,tls=secret1 --class=nginx",
}


def body(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


# A minimal protobuf encoder, to build bodies kubectl does not produce.
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def vfield(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def lfield(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = lfield(1, api_version) + lfield(2, kind)
    return b"k8s\x00" + lfield(1, type_meta) + lfield(2, raw) + lfield(3, b"") + lfield(4, b"")


def deployment(raw: bytes) -> dict[str, Any]:
    return decode_object(envelope("apps/v1", "Deployment", raw))


# Real kubectl bodies.
def test_every_fixture_is_listed_with_its_command() -> None:
    assert sorted(p.stem for p in DATA.glob("*.bin")) == sorted(CAPTURED)
    assert sorted(p.stem for p in DATA.glob("*.json")) == sorted(CAPTURED)


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_captured_kubectl_body_decodes_to_the_json_kubectl_would_send(name: str) -> None:
    expected = json.loads((DATA / f"{name}.json").read_text())
    assert decode_object(body(name)) == expected


def test_create_deployment_drops_go_zero_values_but_keeps_pointers_and_structs() -> None:
    obj = decode_object(body("deployment"))
    assert list(obj)[:2] == ["kind", "apiVersion"]
    assert obj["metadata"] == {"name": "web", "labels": {"app": "web"}}  # no generateName: ""
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["strategy"] == {} and obj["status"] == {}
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container == {"name": "nginx", "image": "nginx:1.27", "resources": {}}
    zero = decode_object(body("deployment-replicas0-port"))
    assert zero["spec"]["replicas"] == 0  # *int32 written explicitly: kept


def test_secret_and_binary_configmap_data_are_base64() -> None:
    assert decode_object(body("secret-generic"))["data"] == {"user": "YWRtaW4=",
                                                             "pass": "czNjcjN0IQ=="}
    cm = decode_object(body("configmap"))
    assert cm["data"]["greeting"] == "héllo wörld"
    assert cm["binaryData"] == {"small.bin": "eAD/"}


def test_int_or_string_both_forms_from_real_bodies() -> None:
    assert decode_object(body("service-clusterip"))["spec"]["ports"][0]["targetPort"] == 8080
    assert decode_object(body("poddisruptionbudget"))["spec"]["minAvailable"] == "50%"
    pod = decode_object(body("job-from-cronjob-full-podspec"))["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert main["livenessProbe"]["httpGet"]["port"] == "http"  # Probe's handler is inline
    assert main["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
    assert pod["terminationGracePeriodSeconds"] == 0
    assert pod["volumes"][3]["configMap"]["name"] == "cfg"  # inline LocalObjectReference


# Malformed bodies.
@pytest.mark.parametrize("data, message", [
    (b"", "magic"),
    (b"{\"kind\":\"Pod\"}", "magic"),
    (b"k8s\x00\x0a", "truncated varint"),
    (b"k8s\x00\x0a\x05ab", "runs past the end"),
    (b"k8s\x00\x0b", "wire type 3"),
    (b"k8s\x00\x00\x01", "field number 0"),
    (b"k8s\x00\x08\x01", "wire type 0"),
    (b"k8s\x00" + vfield(1, 1) + b"\xff" * 11, "wire type 0"),
    (b"k8s\x00" + lfield(5, b"") + b"\x28" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    (envelope("v1", "", b""), "names no kind"),
])
def test_malformed_bodies_raise_bad_request(data: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as caught:
        decode_object(data)
    assert "\n" not in caught.value.message


def test_wrong_wire_type_names_the_field() -> None:
    with pytest.raises(BadRequest, match=r"spec\.replicas"):
        deployment(lfield(2, lfield(1, "3")))  # replicas as a string
    with pytest.raises(BadRequest, match=r"metadata\.name"):
        deployment(lfield(1, vfield(1, 7)))


def test_unknown_kind_and_content_encoding_are_unsupported_media_types() -> None:
    with pytest.raises(UnsupportedMediaType, match="'Pod'"):
        decode_object(envelope("v1", "Pod", b""))
    with pytest.raises(UnsupportedMediaType, match="'Deployment' in 'extensions/v1beta1'"):
        decode_object(envelope("extensions/v1beta1", "Deployment", b""))
    gz = b"k8s\x00" + lfield(1, lfield(1, "v1") + lfield(2, "Secret")) + lfield(3, "gzip")
    with pytest.raises(UnsupportedMediaType, match="gzip"):
        decode_object(gz)


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_every_truncation_of_a_real_body_is_bad_request_or_a_dict(name: str) -> None:
    data = body(name)
    for end in range(len(data)):
        try:
            result = decode_object(data[:end])
        except BadRequest:
            continue
        assert isinstance(result, dict)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_the_magic_are_an_api_error_or_a_dict(tail: bytes) -> None:
    try:
        result = decode_object(b"k8s\x00" + tail)
    except (BadRequest, UnsupportedMediaType):
        return
    json.dumps(result)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(KINDS)), st.binary(max_size=400))
def test_random_object_bytes_in_a_real_envelope_are_bad_request_or_a_dict(
        kind: tuple[str, str], raw: bytes) -> None:
    try:
        result = decode_object(envelope(kind[0], kind[1], raw))
    except BadRequest:
        return
    assert result["kind"] == kind[1]
    json.dumps(result)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(CAPTURED)), st.integers(min_value=4), st.integers(0, 255))
def test_a_flipped_byte_in_a_real_body_is_bad_request_or_a_dict(
        name: str, where: int, byte: int) -> None:
    data = bytearray(body(name))
    data[where % len(data)] = byte
    try:
        result = decode_object(bytes(data))
    except (BadRequest, UnsupportedMediaType):
        return
    json.dumps(result)


# Protobuf rules the captures do not exercise.
def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (vfield(99, 5) + varint(98 << 3 | 1) + b"\0" * 8 + varint(97 << 3 | 5)
               + b"\0" * 4 + lfield(96, b"\xff\xff"))
    meta = lfield(1, unknown + lfield(1, "web") + unknown)
    assert deployment(unknown + meta + unknown)["metadata"] == {"name": "web"}


def test_negative_ints_packed_lists_and_last_scalar_wins() -> None:
    spec = vfield(1, -1) + vfield(5, 2) + vfield(5, 7)  # replicas, minReadySeconds twice
    assert deployment(lfield(2, spec))["spec"] == {"replicas": -1, "minReadySeconds": 7}
    # PodSecurityContext.supplementalGroups (repeated int64), packed and unpacked.
    psc = lfield(4, varint(1) + varint(2)) + vfield(4, 3)
    template = lfield(2, lfield(14, psc))
    pod = deployment(lfield(2, lfield(3, template)))["spec"]["template"]["spec"]
    assert pod["securityContext"]["supplementalGroups"] == [1, 2, 3]


def test_a_repeated_singular_message_merges_and_zero_overrides_drop() -> None:
    meta = lfield(1, lfield(1, "a") + lfield(3, "ns")) + lfield(1, lfield(1, "b"))
    assert deployment(meta)["metadata"] == {"name": "b", "namespace": "ns"}
    assert deployment(lfield(1, lfield(1, "a") + lfield(1, "")))["metadata"] == {}


def test_time_fields_and_managed_fields() -> None:
    created = lfield(8, vfield(1, 1767323045) + vfield(2, 999))
    managed = lfield(17, lfield(1, "kubectl") + lfield(2, "Update") + lfield(4, vfield(1, 0))
                     + lfield(6, "FieldsV1") + lfield(7, lfield(1, b'{"f:metadata":{}}')))
    meta = deployment(lfield(1, created + lfield(9, b"") + managed))["metadata"]
    assert meta == {
        "creationTimestamp": "2026-01-02T03:04:05Z",  # deletionTimestamp {} is zero: absent
        "managedFields": [{"manager": "kubectl", "operation": "Update",
                           "time": "1970-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {}}}]}
    with pytest.raises(BadRequest, match="not JSON"):
        deployment(lfield(1, lfield(17, lfield(7, lfield(1, b"{")))))
    with pytest.raises(BadRequest, match="out of range"):
        deployment(lfield(1, lfield(8, vfield(1, 1 << 62))))


def test_map_entries_with_missing_parts_use_zero_values() -> None:
    labels = lfield(11, lfield(1, "k")) + lfield(11, lfield(2, "v"))
    assert deployment(lfield(1, labels))["metadata"]["labels"] == {"k": "", "": "v"}


def test_int_or_string_forms() -> None:
    assert wellknown.int_or_string(vfield(2, 80), "p") == 80
    assert wellknown.int_or_string(b"", "p") == 0
    assert wellknown.int_or_string(vfield(1, 1) + lfield(3, "http"), "p") == "http"
    with pytest.raises(BadRequest, match="IntOrString type 2"):
        wellknown.int_or_string(vfield(1, 2), "p")


def test_quantity_micro_time_and_duration() -> None:
    assert wellknown.quantity(lfield(1, "500m"), "q") == "500m"
    assert wellknown.quantity(b"", "q") == "0"
    assert wellknown.micro_time(vfield(1, 1767323045) + vfield(2, 123456789), "t") == (
        "2026-01-02T03:04:05.123456Z")
    assert wellknown.micro_time(b"", "t") is None
    assert wellknown.time(vfield(1, -62135596800), "t") is None  # Go's zero time
    assert wellknown.duration(vfield(1, 90 * 10**9), "d") == "1m30s"
    assert [wellknown.go_duration(n) for n in (0, 5, 1500, 2_500_000, 10**9, 3600 * 10**9,
                                                -(3661 * 10**9 + 5 * 10**8))] == [
        "0s", "5ns", "1.5µs", "2.5ms", "1s", "1h0m0s", "-1h1m1.5s"]


# The tables themselves.
def test_schema_references_resolve_and_have_no_cycles() -> None:
    for key, root in KINDS.items():
        assert root in MESSAGES, key

    def walk(message: str, path: tuple[str, ...]) -> None:
        assert message not in path, " -> ".join((*path, message))
        for name, kind, flags in MESSAGES[message].values():
            assert not flags & KEEP or kind in SCALARS, (message, name)
            assert not (flags & LIST and flags & MAP), (message, name)
            if kind not in SCALARS and kind not in SPECIALS:
                assert kind in MESSAGES, (message, name, kind)
                walk(kind, (*path, message))

    for root in set(KINDS.values()):
        walk(root, ())
