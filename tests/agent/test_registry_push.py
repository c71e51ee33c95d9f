"""The push protocol against a small in-process registry (the real one: integration-tests/)."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.images import layout, registry


def small_archive() -> layout.Archive:
    blob = b"layer-bytes"
    config = b'{"rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": layout.OCI_MANIFEST,
        "config": {"digest": layout.sha256_digest(config), "size": len(config)},
        "layers": [{"digest": layout.sha256_digest(blob), "size": len(blob)}],
    }).encode()
    digest = layout.sha256_digest(manifest)
    blobs = {layout.sha256_digest(b): b for b in (blob, config, manifest)}
    image = layout.Image(("x/y:1",), digest, layout.OCI_MANIFEST, len(manifest))
    return layout.Archive(images=[image], blobs=blobs)


class Recorder:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("HEAD", "/v2/{repo:.+}/blobs/{digest}", self.head)
        app.router.add_post("/v2/{repo:.+}/blobs/uploads/", self.start)
        app.router.add_put("/v2/{repo:.+}/blobs/uploads/{id}", self.finish)
        app.router.add_put("/v2/{repo:.+}/manifests/{tag}", self.manifest)
        return app

    async def head(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if request.match_info["digest"] in self.blobs else 404)

    async def start(self, request: web.Request) -> web.Response:
        return web.Response(status=202, headers={
            "Location": f"/v2/{request.match_info['repo']}/blobs/uploads/u1?_state=abc"})

    async def finish(self, request: web.Request) -> web.Response:
        assert request.query["_state"] == "abc"
        self.blobs[request.query["digest"]] = await request.read()
        return web.Response(status=201)

    async def manifest(self, request: web.Request) -> web.Response:
        if request.match_info["tag"] == "refused":
            return web.json_response({"errors": [{"code": "DENIED", "message": "no pushes"}]},
                                     status=403)
        self.manifests[request.match_info["tag"]] = (request.content_type, await request.read())
        return web.Response(status=201)


async def test_push_uploads_blobs_then_the_manifest() -> None:
    recorder = Recorder()
    archive = small_archive()
    async with TestServer(recorder.app(), host="127.0.0.1") as server:
        host = f"127.0.0.1:{server.port}"
        digest = await registry.push(archive, f"{host}/team/app:v1")
        assert digest == archive.images[0].manifest_digest
        assert set(recorder.blobs) == set(archive.blobs) - {digest}
        assert recorder.manifests["v1"] == (layout.OCI_MANIFEST, archive.blobs[digest])
        recorder.blobs.clear()
        await registry.push(archive, f"{host}/team/app:v2")  # HEAD finds nothing: uploads again
        assert recorder.blobs


async def test_refusal_carries_status_code_and_message() -> None:
    recorder = Recorder()
    async with TestServer(recorder.app(), host="127.0.0.1") as server:
        with pytest.raises(registry.RegistryError) as caught:
            await registry.push(small_archive(), f"127.0.0.1:{server.port}/team/app:refused")
    message = str(caught.value)
    assert "HTTP 403 Forbidden" in message and "DENIED: no pushes" in message


def test_references_and_schemes() -> None:
    ref = registry.Reference.parse("127.0.0.1:5000/a/b:c")
    assert (ref.host, ref.repository, ref.tag) == ("127.0.0.1:5000", "a/b", "c")
    assert registry.Reference.parse("busybox").host == "docker.io"
    assert registry.default_scheme("localhost:5000") == "http"
    assert registry.default_scheme("127.0.0.1:5000") == "http"
    assert registry.default_scheme("registry.example:443") == "https"
    with pytest.raises(registry.RegistryError, match="needs a tag"):
        registry.Reference.parse("h:1/x@sha256:" + "a" * 64)


