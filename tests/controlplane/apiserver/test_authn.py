from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controlplane.api.errors import APIError
from controlplane.apiserver import pki
from controlplane.apiserver.authn import (
    TokenFile,
    UserInfo,
    authenticate_request,
    user_from_certificate,
)

TOKENS = '''\
s3cr3t,alice,1001,"devs,ops"
t0ken,bob,1002
,nobody,0
'''


# --- pure logic -----------------------------------------------------------------------------

def test_user_from_certificate_reads_cn_and_every_o() -> None:
    peercert = {"subject": ((("organizationName", "system:nodes"),),
                            (("organizationName", "extra"),),
                            (("commonName", "system:node:n1"),))}
    assert user_from_certificate(peercert) == UserInfo(
        "system:node:n1", ("system:nodes", "extra", "system:authenticated"))


@pytest.mark.parametrize("peercert", [None, {}, {"subject": ((("organizationName", "x"),),)}],
                         ids=["none", "unverified", "no-cn"])
def test_user_from_certificate_without_a_name_is_nobody(peercert: dict[str, Any] | None) -> None:
    assert user_from_certificate(peercert) is None


def test_token_file_parses_kubernetes_csv() -> None:
    tokens = TokenFile.parse(TOKENS)
    assert tokens.authenticate("Bearer s3cr3t") == UserInfo(
        "alice", ("devs", "ops", "system:authenticated"), uid="1001")
    assert tokens.authenticate("bearer t0ken") == UserInfo(
        "bob", ("system:authenticated",), uid="1002")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer wrong", "Basic s3cr3t",
                                    "s3cr3t", "Bearer s3cr3", "Bearer ünïcode"])
def test_token_file_rejects(header: str | None) -> None:
    assert TokenFile.parse(TOKENS).authenticate(header) is None


def test_token_file_load_and_short_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(TOKENS)
    assert TokenFile.load(path).authenticate("Bearer s3cr3t") is not None
    path.write_text("s3cr3t,alice\n")
    with pytest.raises(ValueError, match="at least 3 columns"):
        TokenFile.load(path)


# --- over a real TLS listener ---------------------------------------------------------------

async def _whoami(request: web.Request) -> web.Response:
    try:
        user = authenticate_request(request, request.app[TOKENS_KEY])
    except APIError as e:
        return web.json_response(e.status(), status=e.code)
    return web.json_response({"name": user.name, "groups": list(user.groups)})


TOKENS_KEY = web.AppKey("tokens", TokenFile)


@pytest.fixture
def certs(tmp_path: Path) -> pki.CertPaths:
    return pki.ensure_cert_dir(tmp_path / "pki", hosts=["127.0.0.1"],
                               server_url="https://127.0.0.1:6443")


@pytest.fixture
async def server(certs: pki.CertPaths) -> AsyncIterator[str]:
    app = web.Application()
    app[TOKENS_KEY] = TokenFile.parse(TOKENS)
    app.router.add_get("/whoami", _whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = pki.ssl_server_context(certs.apiserver_cert, certs.apiserver_key, certs.ca_cert)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"https://{host}:{port}/whoami"
    finally:
        await runner.cleanup()


def _client_ctx(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


async def _get(url: str, ctx: ssl.SSLContext,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            url, ssl=ctx, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_admin_certificate_is_kubernetes_admin(server: str, certs: pki.CertPaths) -> None:
    status, body = await _get(server, _client_ctx(certs.ca_cert, certs.admin_cert,
                                                  certs.admin_key))
    assert status == 200
    assert body["name"] == "kubernetes-admin"
    assert "system:masters" in body["groups"]
    assert "system:authenticated" in body["groups"]


async def test_node_certificate_is_the_node(server: str, certs: pki.CertPaths,
                                            tmp_path: Path) -> None:
    crt, key = tmp_path / "n1.crt", tmp_path / "n1.key"
    pki.issue_client_cert(certs.ca_cert, certs.ca_key, common_name="system:node:n1",
                          organizations=["system:nodes"], out_cert=crt, out_key=key)
    status, body = await _get(server, _client_ctx(certs.ca_cert, crt, key))
    assert (status, body["name"], body["groups"][0]) == (200, "system:node:n1", "system:nodes")


async def test_bearer_token_is_its_user(server: str, certs: pki.CertPaths) -> None:
    status, body = await _get(server, _client_ctx(certs.ca_cert),
                              headers={"Authorization": "Bearer s3cr3t"})
    assert status == 200
    assert body == {"name": "alice", "groups": ["devs", "ops", "system:authenticated"]}


@pytest.mark.parametrize("headers", [None, {"Authorization": "Bearer wrong"}],
                         ids=["nothing", "bad-token"])
async def test_no_credentials_is_401_status(server: str, certs: pki.CertPaths,
                                            headers: dict[str, str] | None) -> None:
    status, body = await _get(server, _client_ctx(certs.ca_cert), headers=headers)
    assert status == 401
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


async def test_certificate_from_another_ca_is_not_trusted(server: str, certs: pki.CertPaths,
                                                          tmp_path: Path) -> None:
    other = pki.ensure_cert_dir(tmp_path / "other", hosts=[], server_url="https://x")
    ctx = _client_ctx(certs.ca_cert, other.admin_cert, other.admin_key)
    try:
        status, _ = await _get(server, ctx)
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return  # the server refused the handshake (TLS 1.2) or aborted right after (TLS 1.3)
    assert status == 401
