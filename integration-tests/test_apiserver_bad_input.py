"""Bad requests against `pinnace apiserver`: each one a Kubernetes Status, and nothing written.

Raw HTTPS (aiohttp) so the bodies, content types and headers are exactly what we choose. Every
rejection is checked twice: the answer (code, reason, Status shape) and etcd's revision, read
before and after. etcd bumps its revision on every write, so an unchanged revision proves the
request left no trace. (The one write allowed to land in between is the apiserver's periodic
compaction bookkeeping, outside /registry/.) The property-based test at the end throws random
JSON-ish bodies at the create and patch endpoints of five resources and holds the server to the
same two rules.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
import yaml
from aetcd import rpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controlplane.apiserver.storage.etcd import EtcdStorage, grpc_target
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.etcd import Etcd

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
NOT_FOUND = "the server could not find the requested resource"
MiB = 1024 * 1024


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str) -> Any:
    """Parse as Go would: NaN and Infinity are not JSON."""
    return json.loads(text, parse_constant=_strict_constant)


@dataclass
class Answer:
    code: int
    body: Any
    text: str


class Revisions:
    """etcd's revision, and which writes moved it."""

    def __init__(self, endpoint: str) -> None:
        self.storage = EtcdStorage([endpoint])
        self._channel = grpc.aio.insecure_channel(grpc_target([endpoint]))
        self._kv = rpc.KVStub(self._channel)

    async def close(self) -> None:
        await self.storage.close()
        await self._channel.close()

    async def current(self) -> int:
        return await self.storage.current_revision()

    async def written_since(self, revision: int) -> dict[str, int]:
        """{key: mod revision} of every key etcd holds that was written after `revision`."""
        response = await self._kv.Range(rpc.RangeRequest(
            key=b"\x00", range_end=b"\x00", keys_only=True, min_mod_revision=revision + 1))
        return {kv.key.decode(): kv.mod_revision for kv in response.kvs}

    async def unexplained(self, before: int, after: int) -> dict[str, int]:
        """The writes between two revisions other than the compactor's `compact_rev_key`, as
        {key: revision}; "?" stands for writes no key shows (a delete, an overwritten key)."""
        if after == before:
            return {}
        written = await self.written_since(before)
        bookkeeping = {rev for key, rev in written.items() if not key.startswith("/registry/")}
        found = {key: rev for key, rev in written.items() if rev not in bookkeeping}
        if len(bookkeeping) + len(found) < after - before:
            found["?"] = after
        return found


class API:
    """Raw requests to the apiserver, and etcd's revision to tell whether anything was written."""

    def __init__(self, http: aiohttp.ClientSession, revisions: Revisions) -> None:
        self.http = http
        self.revisions = revisions

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str | None = JSON, **params: str) -> Answer:
        data = body if isinstance(body, bytes) or body is None else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if content_type else {}
        skip = () if content_type else ("Content-Type",)
        async with self.http.request(method, path, data=data, headers=headers, params=params,
                                     skip_auto_headers=skip) as response:
            text = await response.text()
        try:
            parsed = strict_json(text)
        except ValueError:
            parsed = None
        return Answer(response.status, parsed, text)

    async def rejected(self, method: str, path: str, body: Any = None, *, code: int,
                       reason: str, content_type: str | None = JSON,
                       **params: str) -> dict[str, Any]:
        """Send a request that must fail with `code`/`reason`; check etcd saw no write."""
        before = await self.revisions.current()
        answer = await self.request(method, path, body, content_type=content_type, **params)
        after = await self.revisions.current()
        assert answer.code == code, answer.text
        status = answer.body
        assert isinstance(status, dict), answer.text
        assert (status["kind"], status["apiVersion"], status["status"]) == (
            "Status", "v1", "Failure")
        assert (status["code"], status["reason"]) == (code, reason), answer.text
        written = await self.revisions.unexplained(before, after)
        assert not written, f"a rejected {method} {path} wrote {written}: {answer.text}"
        return status

    async def ok(self, method: str, path: str, body: Any = None, *,
                 content_type: str | None = JSON) -> dict[str, Any]:
        answer = await self.request(method, path, body, content_type=content_type)
        assert answer.code in (200, 201), answer.text
        assert isinstance(answer.body, dict)
        return answer.body


@pytest.fixture
async def http(apiserver: APIServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=apiserver.ssl_context())
    async with aiohttp.ClientSession(apiserver.url, connector=connector) as session:
        yield session


@pytest.fixture
async def api(http: aiohttp.ClientSession, etcd: Etcd) -> AsyncIterator[API]:
    revisions = Revisions(etcd.endpoint)
    try:
        yield API(http, revisions)
    finally:
        await revisions.close()


@pytest.fixture
async def ns(api: API) -> str:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def deployment_body(name: str, app: str = "web") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def causes_of(status: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["field"], c["reason"]) for c in status["details"]["causes"]}


# -- bodies that do not decode ---------------------------------------------------------------------


async def test_malformed_json_and_yaml_are_400(api: API, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for body, content_type in [(b'{"metadata": {"name": "x"}', JSON),
                               (b"\xff\xfe not utf-8", JSON),
                               (b"metadata: {name: [x\n", YAML),
                               (b"metadata:\n  name: x\n\tdata: 1\n", YAML),
                               (b'{"metadata": {"name": "x"}', None)]:  # None: JSON implied
        status = await api.rejected("POST", path, body, code=400, reason="BadRequest",
                                    content_type=content_type)
        assert "parse error" in status["message"]
    for body in (b"[]", b'"configmap"', b"42", b"null"):
        await api.rejected("POST", path, body, code=400, reason="BadRequest")
    await api.rejected("PUT", f"{path}/x", b"{", code=400, reason="BadRequest")
    await api.rejected("POST", path, b"\x00\x01junk", code=400, reason="BadRequest",
                       content_type=PROTOBUF)
    await api.rejected("POST", path, b"metadata: {}", code=415, reason="UnsupportedMediaType",
                       content_type="text/plain")


async def test_wrong_type_values_are_400(api: API, ns: str) -> None:
    """Kubernetes decodes into typed structs; a value of the wrong JSON type never gets stored."""
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for body, where in [({"metadata": {"name": "n"}, "data": {"k": 1}}, "ConfigMap.data"),
                        ({"metadata": {"name": "n"}, "data": "text"}, "ConfigMap.data"),
                        ({"metadata": {"name": 5}}, "ObjectMeta.metadata.name"),
                        ({"metadata": "meta"}, "ConfigMap.metadata"),
                        ({"metadata": {"name": "n", "labels": {"a": 1}}},
                         "ObjectMeta.metadata.labels"),
                        ({"metadata": {"name": "n", "ownerReferences": [5]}},
                         "ObjectMeta.metadata.ownerReferences")]:
        status = await api.rejected("POST", path, body, code=400, reason="BadRequest")
        assert status["message"].startswith(
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal')
        assert f"Go struct field {where} of type" in status["message"]
    await api.rejected("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                       {"metadata": {"name": "d"}, "spec": {"replicas": "three"}},
                       code=400, reason="BadRequest")


async def test_bodies_go_would_not_decode_are_400(api: API, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for body in (b'{"metadata": {"name": "n"}, "data": {"k": NaN}}',
                 b'{"metadata": {"name": "n"}, "x": -Infinity}',
                 b'{"metadata": {"name": "n"}, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                 b'{"metadata": {"name": "n"}, "x": ' + b"[" * 500 + b"]" * 500 + b"}"):
        await api.rejected("POST", path, body, code=400, reason="BadRequest")
    for body in (b"metadata: {name: n}\nx: .nan\n",
                 b"metadata: {name: n}\nx: " + b"[" * 500 + b"]" * 500 + b"\n",
                 b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
                     b"%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n"
                     % ((c, c) + (c - 1,) * 10) for c in range(ord("b"), ord("j")))):
        await api.rejected("POST", path, body, code=400, reason="BadRequest",
                           content_type=YAML)
    # YAML timestamps stay strings, as sigs.k8s.io/yaml leaves them; null map values are "".
    created = await api.ok("POST", path, b"metadata: {name: dated, labels: {a: null}}\n"
                           b"data: {day: 2020-01-01}\n", content_type=YAML)
    assert created["data"] == {"day": "2020-01-01"}
    assert created["metadata"]["labels"] == {"a": ""}
    # DeleteOptions are decoded too.
    for options in ({"preconditions": "x"}, {"gracePeriodSeconds": "soon"},
                    {"dryRun": "All"}, [1]):
        await api.rejected("DELETE", f"{path}/dated", options, code=400, reason="BadRequest")


async def test_subresource_bodies_are_decoded(api: API, ns: str) -> None:
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment_body("sub"))
    scale = f"/apis/apps/v1/namespaces/{ns}/deployments/sub/scale"
    await api.rejected("PATCH", scale, {"spec": 5}, code=422, reason="Invalid",
                       content_type=MERGE_PATCH)
    await api.rejected("PATCH", scale, {"spec": {"replicas": "many"}}, code=422,
                       reason="Invalid", content_type=MERGE_PATCH)
    await api.rejected("PATCH", scale, {"spec": {"replicas": -1}}, code=422, reason="Invalid",
                       content_type=MERGE_PATCH)
    await api.rejected("PUT", scale, {"spec": "x"}, code=400, reason="BadRequest")
    await api.ok("POST", f"/api/v1/namespaces/{ns}/pods", {
        "metadata": {"name": "bindme"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    binding = f"/api/v1/namespaces/{ns}/pods/bindme/binding"
    await api.rejected("POST", binding, {"target": "node-1"}, code=400, reason="BadRequest")
    await api.rejected("POST", binding, {"target": {}}, code=422, reason="Invalid")
    eviction = f"/api/v1/namespaces/{ns}/pods/bindme/eviction"
    await api.rejected("POST", eviction, {"deleteOptions": "now"}, code=400,
                       reason="BadRequest")
    for sub in ("status", "scale", "log", "binding"):
        await api.rejected("GET", f"/api/v1/namespaces/{ns}/configmaps/x/{sub}", code=404,
                           reason="NotFound")


async def test_api_version_or_kind_not_of_the_url_is_400(api: API, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    status = await api.rejected("POST", path, {"apiVersion": "apps/v1", "kind": "ConfigMap",
                                               "metadata": {"name": "x"}},
                                code=400, reason="BadRequest")
    assert status["message"] == ("the API version in the data (apps/v1) does not match the "
                                 "expected API version (v1)")
    status = await api.rejected("POST", path, {"apiVersion": "v1", "kind": "Secret",
                                               "metadata": {"name": "x"}},
                                code=400, reason="BadRequest")
    assert status["message"] == ("the kind in the data (Secret) does not match the expected "
                                 "kind (ConfigMap)")
    body = deployment_body("d")
    body["apiVersion"] = "extensions/v1beta1"
    await api.rejected("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body, code=400,
                       reason="BadRequest")


async def test_names_that_are_not_dns_labels_are_422_with_causes(api: API, ns: str) -> None:
    status = await api.rejected("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                {"metadata": {"name": "Bad_Name"}}, code=422, reason="Invalid")
    assert status["details"]["kind"] == "ConfigMap" and status["details"]["name"] == "Bad_Name"
    [cause] = status["details"]["causes"]
    assert (cause["field"], cause["reason"]) == ("metadata.name", "FieldValueInvalid")
    assert cause["message"].startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 '
                                       "subdomain must consist of")
    status = await api.rejected("POST", f"/api/v1/namespaces/{ns}/services",
                                {"metadata": {"name": "1svc"},
                                 "spec": {"ports": [{"port": 80}]}}, code=422, reason="Invalid")
    assert status["details"]["kind"] == "Service"
    assert "a DNS-1035 label must consist of" in status["details"]["causes"][0]["message"]
    status = await api.rejected("POST", "/api/v1/namespaces", {"metadata": {"name": "a.b"}},
                                code=422, reason="Invalid")
    assert status["details"]["kind"] == "Namespace"
    assert status["details"]["causes"][0]["message"] == (
        'Invalid value: "a.b": must not contain dots')
    status = await api.rejected("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                                deployment_body("UPPER"), code=422, reason="Invalid")
    assert (status["details"]["kind"], status["details"]["group"]) == ("Deployment", "apps")


async def test_missing_required_fields_are_422_listing_every_cause(api: API, ns: str) -> None:
    status = await api.rejected("POST", f"/api/v1/namespaces/{ns}/pods",
                                {"metadata": {}, "spec": {"containers": [{"name": "c"}, {}]}},
                                code=422, reason="Invalid")
    assert status["details"]["kind"] == "Pod"
    assert causes_of(status) == {("metadata.name", "FieldValueRequired"),
                                 ("spec.containers[0].image", "FieldValueRequired"),
                                 ("spec.containers[1].name", "FieldValueRequired"),
                                 ("spec.containers[1].image", "FieldValueRequired")}
    assert status["message"].count("Required value") == 4
    status = await api.rejected("POST", f"/api/v1/namespaces/{ns}/pods",
                                {"metadata": {"name": "nospec"}}, code=422, reason="Invalid")
    assert causes_of(status) == {("spec.containers", "FieldValueRequired")}
    status = await api.rejected("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                                {"metadata": {"name": "empty"}, "spec": {}},
                                code=422, reason="Invalid")
    assert causes_of(status) == {("spec.selector", "FieldValueRequired"),
                                 ("spec.template.metadata.labels", "FieldValueInvalid"),
                                 ("spec.template.spec.containers", "FieldValueRequired")}
    status = await api.rejected("POST", f"/api/v1/namespaces/{ns}/services",
                                {"metadata": {"name": "svc"}, "spec": {"ports": [
                                    {"port": 80}, {"port": 70000}]}},
                                code=422, reason="Invalid")
    assert causes_of(status) == {("spec.ports[0].name", "FieldValueRequired"),
                                 ("spec.ports[1].name", "FieldValueRequired"),
                                 ("spec.ports[1].port", "FieldValueInvalid")}


async def test_bodies_over_3_mib_are_413(api: API, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    big = {"metadata": {"name": "big"}, "data": {"k": "x" * (3 * MiB)}}
    status = await api.rejected("POST", path, big, code=413, reason="RequestEntityTooLarge")
    assert status["message"] == "the request body is too large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the server must count
        encoded = json.dumps(big).encode()
        for start in range(0, len(encoded), 64 * 1024):
            yield encoded[start:start + 64 * 1024]

    before = await api.revisions.current()
    async with api.http.post(path, data=chunks(), headers={"Content-Type": JSON}) as response:
        assert response.status == 413
        assert (await response.json())["reason"] == "RequestEntityTooLarge"
    assert not await api.revisions.unexplained(before, await api.revisions.current())
    await api.ok("POST", path, {"metadata": {"name": "small"}})
    await api.rejected("PATCH", f"{path}/small", {"data": {"k": "x" * (3 * MiB)}}, code=413,
                       reason="RequestEntityTooLarge", content_type=MERGE_PATCH)


# -- query parameters ------------------------------------------------------------------------------


async def test_invalid_selectors_are_400(api: API, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for selector in ("a in (", "a b", "A_/b=c", "x=(", "a=" + "v" * 64):
        await api.rejected("GET", path, code=400, reason="BadRequest", labelSelector=selector)
        await api.rejected("GET", path, code=400, reason="BadRequest", labelSelector=selector,
                           watch="true")
    for selector in ("foo", "metadata.name"):
        await api.rejected("GET", path, code=400, reason="BadRequest", fieldSelector=selector)
    status = await api.rejected("GET", path, code=400, reason="BadRequest",
                                fieldSelector="spec.nodeName=n1")
    assert status["message"] == ('"spec.nodeName" is not a known field selector: only '
                                 '"metadata.name", "metadata.namespace"')
    status = await api.rejected("GET", f"/api/v1/namespaces/{ns}/pods", code=400,
                                reason="BadRequest", fieldSelector="spec.nodeNames=n1")
    assert status["message"] == "field label not supported: spec.nodeNames"
    await api.rejected("GET", path, code=400, reason="BadRequest", fieldSelector="spec.x=1",
                       watch="true")
    await api.rejected("DELETE", path, code=400, reason="BadRequest", fieldSelector="data.k=v")
    await api.rejected("GET", path, code=400, reason="BadRequest", limit="ten")
    await api.rejected("GET", path, code=400, reason="BadRequest", resourceVersion="abc")
    await api.rejected("POST", path, {"metadata": {"name": "dry"}}, code=400,
                       reason="BadRequest", dryRun="Some")


# -- patches ---------------------------------------------------------------------------------------


async def test_bad_patches_are_refused_as_kubernetes_refuses_them(api: API, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", path, deployment_body("p"))
    target = f"{path}/p"
    # JSON patch: not an array -> 400; an operation that cannot apply -> 422 (generic message).
    status = await api.rejected("PATCH", target, {"op": "add"}, code=400, reason="BadRequest",
                                content_type=JSON_PATCH)
    assert status["message"] == ("json: cannot unmarshal object into Go value of type "
                                 "jsonpatch.Patch")
    await api.rejected("PATCH", target, [1, 2], code=400, reason="BadRequest",
                       content_type=JSON_PATCH)
    for operations in ([{"op": "bogus", "path": "/spec"}],
                       [{"op": "remove", "path": "/spec/nothing"}],
                       [{"op": "test", "path": "/spec/replicas", "value": 7}],
                       [{"op": "add", "path": "no-slash", "value": 1}]):
        await api.rejected("PATCH", target, operations, code=422, reason="Invalid",
                           content_type=JSON_PATCH)
    # `null` is no patch at all for JSON and strategic merge patches (nothing written).
    before = await api.revisions.current()
    for content_type in (JSON_PATCH, STRATEGIC_PATCH):
        answer = await api.request("PATCH", target, "null", content_type=content_type)
        assert answer.code == 200, answer.text
    after = await api.revisions.current()
    assert after == before, await api.revisions.unexplained(before, after)
    # Merge patch: not an object -> 400.
    for body in ([1], '"text"', "3", "null"):
        await api.rejected("PATCH", target, body, code=400, reason="BadRequest",
                           content_type=MERGE_PATCH)
    await api.rejected("PATCH", target, b"{bad", code=400, reason="BadRequest",
                       content_type=MERGE_PATCH)
    # Strategic merge patch: a list item without its merge key is a bare Go error in
    # kube-apiserver: 500 with an empty reason (controlplane/api/patch/failures.py).
    status = await api.rejected(
        "PATCH", target, {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
        code=500, reason="", content_type=STRATEGIC_PATCH)
    assert status["message"] == "map: map[image:x] does not contain declared merge key: name"
    status = await api.rejected(
        "PATCH", target, {"spec": {"template": {"spec": {"$setElementOrder/containers": 5}}}},
        code=500, reason="", content_type=STRATEGIC_PATCH)
    assert status["message"] == "expected a []interface {}, but received a int64"
    # A patch whose result has the wrong types, or names another object.
    status = await api.rejected("PATCH", target, {"spec": "x"}, code=422, reason="Invalid",
                                content_type=MERGE_PATCH)
    assert status["details"]["causes"][0]["field"] == "patch"
    await api.rejected("PATCH", target, {"metadata": "x"}, code=422, reason="Invalid",
                       content_type=MERGE_PATCH)
    await api.rejected("PATCH", target, [{"op": "replace", "path": "/spec/replicas",
                                          "value": "two"}],
                       code=422, reason="Invalid", content_type=JSON_PATCH)
    status = await api.rejected("PATCH", target, {"metadata": {"name": "other"}}, code=400,
                                reason="BadRequest", content_type=MERGE_PATCH)
    assert status["message"] == ("the name of the object (other) does not match the name on "
                                 "the URL (p)")
    await api.rejected("PATCH", target, [{"op": "remove", "path": "/metadata"}], code=400,
                       reason="BadRequest", content_type=JSON_PATCH)
    await api.rejected("PATCH", target, {"spec": {}}, code=415, reason="UnsupportedMediaType",
                       content_type=JSON)
    await api.rejected("PATCH", target, "spec: {}", code=400, reason="BadRequest",
                       content_type=APPLY_PATCH)  # no fieldManager
    await api.rejected("PATCH", f"{path}/absent", {"spec": {}}, code=404, reason="NotFound",
                       content_type=MERGE_PATCH)


async def test_changing_an_immutable_field_is_422(api: API, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    live = await api.ok("POST", path, deployment_body("imm"))
    moved = deployment_body("imm", app="other")
    moved["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    status = await api.rejected("PUT", f"{path}/imm", moved, code=422, reason="Invalid")
    assert ("spec.selector", "FieldValueInvalid") in causes_of(status)
    assert "field is immutable" in status["message"]
    await api.rejected("PATCH", f"{path}/imm", {"spec": {
        "selector": {"matchLabels": {"app": "other"}},
        "template": {"metadata": {"labels": {"app": "other"}}}}}, code=422, reason="Invalid",
        content_type=MERGE_PATCH)


# -- conflicts, unknown paths, authentication ------------------------------------------------------


async def test_duplicate_create_is_409_already_exists(api: API, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    await api.ok("POST", path, {"metadata": {"name": "dup"}})
    status = await api.rejected("POST", path, {"metadata": {"name": "dup"}, "data": {"a": "b"}},
                                code=409, reason="AlreadyExists")
    assert status["message"] == 'configmaps "dup" already exists'
    assert status["details"] == {"name": "dup", "kind": "configmaps"}
    await api.rejected("POST", path, {"metadata": {"name": "dup"}}, code=409,
                       reason="AlreadyExists", dryRun="All")


async def test_stale_update_is_409_conflict(api: API, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    first = await api.ok("POST", path, {"metadata": {"name": "cas"}, "data": {"a": "1"}})
    await api.ok("PUT", f"{path}/cas", {**first, "data": {"a": "2"}})
    status = await api.rejected("PUT", f"{path}/cas", {**first, "data": {"a": "3"}},
                                code=409, reason="Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "cas": the object has been modified; '
        "please apply your changes to the latest version and try again")
    await api.rejected("DELETE", f"{path}/cas", {"preconditions": {
        "resourceVersion": first["metadata"]["resourceVersion"]}}, code=409, reason="Conflict")
    await api.rejected("PUT", f"{path}/other", {"metadata": {"name": "cas"}}, code=400,
                       reason="BadRequest")


async def test_unknown_resources_and_groups_are_404(api: API, ns: str) -> None:
    for method, path in [("GET", f"/api/v1/namespaces/{ns}/widgets"),
                         ("POST", f"/api/v1/namespaces/{ns}/widgets"),
                         ("GET", "/api/v1/widgets"),
                         ("GET", "/apis/example.com/v1/widgets"),
                         ("POST", f"/apis/example.com/v1/namespaces/{ns}/widgets"),
                         ("GET", "/apis/example.com/v1"),
                         ("GET", "/apis/example.com"),
                         ("GET", "/apis/apps/v2/deployments"),
                         ("GET", f"/api/v1/namespaces/{ns}/configmaps/x/bogus"),
                         ("GET", "/nonsense")]:
        status = await api.rejected(method, path, {"metadata": {"name": "w"}}, code=404,
                                    reason="NotFound")
        assert status["message"] == NOT_FOUND, path
    await api.rejected("POST", "/api/v1/namespaces/absent-ns/configmaps",
                       {"metadata": {"name": "x"}}, code=404, reason="NotFound")


async def test_no_client_certificate_is_401(apiserver: APIServerProcess, api: API,
                                            ns: str) -> None:
    anonymous = ssl.create_default_context(cafile=str(apiserver.cert_dir / "ca.crt"))
    connector = aiohttp.TCPConnector(ssl=anonymous)
    async with aiohttp.ClientSession(apiserver.url, connector=connector) as session:
        stranger = API(session, api.revisions)
        await stranger.rejected("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                {"metadata": {"name": "anon"}}, code=401, reason="Unauthorized")
        await stranger.rejected("GET", "/api/v1/pods", code=401, reason="Unauthorized")
        session.headers["Authorization"] = "Bearer not-a-token"
        await stranger.rejected("DELETE", f"/api/v1/namespaces/{ns}", code=401,
                                reason="Unauthorized")


# -- property: random bodies never break the server ------------------------------------------------

KEYS = st.sampled_from([
    "metadata", "spec", "status", "kind", "apiVersion", "name", "namespace", "labels",
    "annotations", "finalizers", "ownerReferences", "data", "containers", "image", "selector",
    "matchLabels", "template", "replicas", "ports", "port", "type", "$patch", "$retainKeys",
    "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers"]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
           | st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=5), max_leaves=16)
NAMES = st.sampled_from(["fuzz", "fuzz-a", "Bad_Name", "", "a.b", "x" * 70]) | st.text(max_size=8)
STRINGS = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
METADATA = st.fixed_dictionaries({}, optional={
    "name": NAMES | VALUES, "generateName": NAMES, "namespace": NAMES | VALUES,
    "labels": STRINGS | VALUES, "annotations": STRINGS | VALUES,
    "finalizers": st.lists(NAMES, max_size=3) | VALUES, "ownerReferences": VALUES,
    "resourceVersion": st.text(max_size=6) | VALUES, "uid": VALUES,
    "creationTimestamp": VALUES, "deletionTimestamp": VALUES})
CONTAINERS = st.lists(st.fixed_dictionaries({}, optional={
    "name": NAMES | VALUES, "image": NAMES | VALUES, "ports": VALUES, "resources": VALUES,
    "imagePullPolicy": st.sampled_from(["Always", "Sometimes"]) | VALUES, "env": VALUES}),
    max_size=3) | VALUES
POD_SPEC = st.fixed_dictionaries({}, optional={
    "containers": CONTAINERS, "restartPolicy": VALUES, "volumes": VALUES, "nodeName": VALUES})
SPEC = st.fixed_dictionaries({}, optional={
    "containers": CONTAINERS, "replicas": st.integers(-3, 5) | VALUES,
    "selector": st.fixed_dictionaries({"matchLabels": STRINGS | VALUES}) | VALUES,
    "template": st.fixed_dictionaries({}, optional={
        "metadata": METADATA | VALUES, "spec": POD_SPEC | VALUES}) | VALUES,
    "ports": st.lists(st.fixed_dictionaries({}, optional={
        "port": st.integers(-1, 70000) | VALUES, "name": NAMES, "targetPort": VALUES}),
        max_size=2) | VALUES,
    "type": st.sampled_from(["ClusterIP", "NodePort", "Bogus"]) | VALUES,
    "finalizers": VALUES, "strategy": VALUES, "clusterIP": VALUES})
OBJECTS = st.fixed_dictionaries({}, optional={
    "apiVersion": st.sampled_from(["v1", "apps/v1", "x/y"]) | VALUES,
    "kind": st.sampled_from(["Pod", "Deployment", "ConfigMap", "Service", "Namespace"]) | VALUES,
    "metadata": METADATA | VALUES, "spec": SPEC | VALUES, "status": VALUES,
    "data": STRINGS | VALUES, "binaryData": VALUES, "immutable": VALUES})
BODIES = OBJECTS | VALUES
POINTERS = st.sampled_from([
    "", "/", "/metadata", "/metadata/name", "/metadata/namespace", "/metadata/labels",
    "/metadata/labels/a", "/metadata/finalizers/-", "/metadata/ownerReferences", "/spec",
    "/spec/replicas", "/spec/selector", "/spec/containers/0", "/spec/containers/-",
    "/spec/template/spec/containers/0/name", "/spec/ports/0/port", "/data", "/data/k",
    "/status", "/kind", "/apiVersion"]) | st.text(max_size=8)
OPERATIONS = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"])},
    optional={"path": POINTERS | VALUES, "from": POINTERS, "value": BODIES}),
    max_size=4) | VALUES


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """A Kubernetes protobuf body: magic, then runtime.Unknown{typeMeta, raw}."""
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return b"k8s\x00" + _field(1, type_meta) + _field(2, raw)


def _yaml(value: Any) -> bytes:
    return yaml.safe_dump(value).encode()


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


REMOVE = object()  # a mutation that deletes the key


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document: its keys and list indices, nested."""
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


def _mutated(seed: dict[str, Any], mutations: list[tuple[tuple[Any, ...], Any]]) -> Any:
    """`seed` with each (path, value) set, REMOVE deleting; missing containers are made."""
    doc: Any = json.loads(json.dumps(seed))
    for path, value in mutations:
        if not path:
            doc = value if value is not REMOVE else {}
            continue
        node = doc
        for key in path[:-1]:
            child = node[key] if isinstance(node, dict) and key in node or isinstance(
                node, list) and isinstance(key, int) and key < len(node) else None
            if not isinstance(child, dict | list):
                child = {}
                if isinstance(node, dict):
                    node[key] = child
                elif isinstance(key, int) and key < len(node):
                    node[key] = child
            node = child
        last = path[-1]
        if isinstance(node, dict):
            if value is REMOVE:
                node.pop(last, None)
            else:
                node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            if value is REMOVE:
                del node[last]
            else:
                node[last] = value
    return doc


def _pointer(path: tuple[Any, ...]) -> str:
    return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in path)


@dataclass(frozen=True)
class Endpoint:
    resource: str
    collection: str  # the create URL; the patch URL is collection/<name>
    api_version: str
    kind: str
    seed: dict[str, Any]  # the object the patch endpoint patches

    def mutants(self, *, rename: bool) -> st.SearchStrategy[Any]:
        """The seed with a few paths changed (random values, removals, added keys).

        Near-valid objects get past decoding, so validation, admission and storage are
        exercised too; `rename` gives each a fresh valid name (creates that may succeed).
        """
        typed = {**self.seed, "apiVersion": self.api_version, "kind": self.kind}
        paths = _paths(typed) + [("metadata", "labels", "a"), ("metadata", "annotations", "a"),
                                 ("metadata", "finalizers"), ("spec", "x"), ("extra",)]
        values = VALUES | st.just(REMOVE) | NAMES | st.integers(-1, 70000)
        names = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
        mutations = st.lists(st.tuples(st.sampled_from(paths), values), max_size=3)
        if rename:
            mutations = st.tuples(names, mutations).map(
                lambda nm: [(("metadata", "name"), nm[0]), *nm[1]])
        return mutations.map(lambda m: _mutated(typed, m))

    def operations(self) -> st.SearchStrategy[Any]:
        pointers = st.sampled_from([_pointer(p) for p in _paths(self.seed)]) | POINTERS
        op = st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"])},
            optional={"path": pointers | VALUES, "from": pointers, "value": BODIES})
        return st.lists(op, max_size=4) | OPERATIONS

    def protobuf(self) -> st.SearchStrategy[bytes]:
        return (st.binary(max_size=64)
                | st.binary(max_size=64).map(lambda raw: b"k8s\x00" + raw)
                | st.binary(max_size=64).map(
                    lambda raw: envelope(self.api_version, self.kind, raw)))

    def requests(self, verb: str) -> st.SearchStrategy[tuple[str | None, bytes]]:
        """(content type, body) pairs for `verb`: mostly the content types the verb takes,
        sometimes any other; mostly mutated seeds, sometimes anything JSON-ish or junk."""
        junk = st.binary(max_size=32)
        objects = self.mutants(rename=verb == "create")
        bodies = st.one_of(objects, objects, OBJECTS, VALUES)
        if verb == "create":
            return st.one_of(
                st.tuples(st.sampled_from([JSON, None, "application/json; charset=utf-8"]),
                          bodies.map(_json)),
                st.tuples(st.sampled_from([JSON, None]), bodies.map(_json)),
                st.tuples(st.just(YAML), bodies.map(_yaml) | junk),
                st.tuples(st.just(PROTOBUF), self.protobuf()),
                st.tuples(st.sampled_from([MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH,
                                           APPLY_PATCH, "text/plain"]), bodies.map(_json)))
        return st.one_of(
            st.tuples(st.sampled_from([MERGE_PATCH, STRATEGIC_PATCH]), bodies.map(_json)),
            st.tuples(st.sampled_from([MERGE_PATCH, STRATEGIC_PATCH]), bodies.map(_json)),
            st.tuples(st.just(JSON_PATCH), self.operations().map(_json)),
            st.tuples(st.just(APPLY_PATCH), bodies.map(_yaml) | junk),
            st.tuples(st.sampled_from([JSON, YAML, PROTOBUF, None, "text/plain"]),
                      bodies.map(_json) | junk))


FUZZ_NS = f"fuzz-{uuid.uuid4().hex[:8]}"
FUZZ_EXAMPLES = int(os.environ.get("PINNACE_FUZZ_EXAMPLES", "200"))  # per endpoint and verb
_CONTAINER = {"name": "c", "image": "busybox"}
ENDPOINTS = [
    Endpoint("pods", f"/api/v1/namespaces/{FUZZ_NS}/pods", "v1", "Pod",
             {"metadata": {"name": "fuzz-seed"}, "spec": {"containers": [_CONTAINER]}}),
    Endpoint("deployments", f"/apis/apps/v1/namespaces/{FUZZ_NS}/deployments", "apps/v1",
             "Deployment", {**deployment_body("fuzz-seed"), "apiVersion": "apps/v1"}),
    Endpoint("configmaps", f"/api/v1/namespaces/{FUZZ_NS}/configmaps", "v1", "ConfigMap",
             {"metadata": {"name": "fuzz-seed"}, "data": {"k": "v"}}),
    Endpoint("services", f"/api/v1/namespaces/{FUZZ_NS}/services", "v1", "Service",
             {"metadata": {"name": "fuzz-seed"}, "spec": {"ports": [{"port": 80}]}}),
    Endpoint("namespaces", "/api/v1/namespaces", "v1", "Namespace",
             {"metadata": {"name": f"{FUZZ_NS}-seed"}}),
]


class Fuzzer:
    """One event loop, HTTPS session and etcd client for every example of the property test."""

    def __init__(self, apiserver: APIServerProcess, etcd: Etcd) -> None:
        self.runner = asyncio.Runner()
        self.api: API = self.runner.run(self._open(apiserver, etcd))

    @staticmethod
    async def _open(apiserver: APIServerProcess, etcd: Etcd) -> API:
        connector = aiohttp.TCPConnector(ssl=apiserver.ssl_context())
        return API(aiohttp.ClientSession(apiserver.url, connector=connector),
                   Revisions(etcd.endpoint))

    def close(self) -> None:
        async def _close() -> None:
            await self.api.http.close()
            await self.api.revisions.close()

        try:
            self.runner.run(_close())
        finally:
            self.runner.close()

    def seed(self) -> None:
        async def _seed() -> None:
            await self.api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": FUZZ_NS}})
            for endpoint in ENDPOINTS:
                await self.api.ok("POST", endpoint.collection, endpoint.seed)

        self.runner.run(_seed())

    def send(self, method: str, path: str, content_type: str | None,
             body: bytes) -> tuple[Answer, dict[str, int]]:
        """Send one request; return the answer and the writes it made (see Revisions)."""
        async def _send() -> tuple[Answer, dict[str, int]]:
            before = await self.api.revisions.current()
            answer = await self.api.request(method, path, body, content_type=content_type,
                                            fieldManager="fuzz")
            after = await self.api.revisions.current()
            return answer, await self.api.revisions.unexplained(before, after)

        return self.runner.run(_send())


@pytest.fixture(scope="module")
def fuzzer(apiserver: APIServerProcess, etcd: Etcd) -> Iterator[Fuzzer]:
    fuzz = Fuzzer(apiserver, etcd)
    try:
        fuzz.seed()
        yield fuzz
    finally:
        fuzz.close()


def _allocator_round_trip(endpoint: Endpoint, answer: Answer, written: dict[str, int]) -> bool:
    """A service create that failed after its ClusterIP was taken gives the IP back: two writes
    to the allocator's range in etcd, as kube-apiserver's allocator makes them too."""
    return endpoint.resource == "services" and answer.code == 409 and all(
        key.startswith("/registry/ranges/") or key == "?" for key in written)


def _bare_patch_error(answer: Answer, content_type: str | None) -> bool:
    """kube-apiserver's own 500: a strategic merge error it passes on with no reason."""
    return (answer.code == 500 and isinstance(answer.body, dict)
            and answer.body.get("reason") == "" and content_type in (STRATEGIC_PATCH,
                                                                      APPLY_PATCH))


@pytest.mark.parametrize("verb", ["create", "patch"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.resource)
@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_random_bodies_never_5xx_and_4xx_write_nothing(fuzzer: Fuzzer, endpoint: Endpoint,
                                                       verb: str, data: st.DataObject) -> None:
    content_type, body = data.draw(endpoint.requests(verb), label="request")
    if verb == "create":
        method, path = "POST", endpoint.collection
    else:
        method, path = "PATCH", f"{endpoint.collection}/{endpoint.seed['metadata']['name']}"
    answer, written = fuzzer.send(method, path, content_type, body)
    event(f"{answer.code} {answer.body.get('reason', '') if isinstance(answer.body, dict) else ''}")
    assert answer.body is not None, f"not strict JSON: {answer.text[:300]}"
    assert answer.code < 500 or _bare_patch_error(answer, content_type), answer.text[:600]
    if answer.code >= 400:
        assert answer.body["kind"] == "Status" and answer.body["code"] == answer.code
        assert not written or _allocator_round_trip(endpoint, answer, written), (
            f"a {answer.code} wrote {written}: {answer.text[:300]}")
    else:
        assert (answer.body["apiVersion"], answer.body["kind"]) == (
            endpoint.api_version, endpoint.kind)
