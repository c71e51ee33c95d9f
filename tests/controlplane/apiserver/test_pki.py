from __future__ import annotations

import base64
import ipaddress
import json
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controlplane.apiserver import pki

SERVER = "https://10.0.0.5:6443"
ALL_FILES = ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key",
             "admin.kubeconfig")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(d: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(d.iterdir())}


@pytest.fixture
def certs(tmp_path: Path) -> pki.CertPaths:
    return pki.ensure_cert_dir(tmp_path / "pki", hosts=["10.0.0.5", "node1.example", "fd00::5"],
                               server_url=SERVER)


def test_generates_every_file_with_keys_private(certs: pki.CertPaths) -> None:
    assert sorted(p.name for p in certs.cert_dir.iterdir()) == sorted(ALL_FILES)
    for name in ("ca.key", "apiserver.key", "admin.key", "admin.kubeconfig"):
        assert stat.S_IMODE((certs.cert_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(certs.cert_dir.stat().st_mode) == 0o700


def test_ca_is_a_p256_ca_named_pinnace_ca(certs: pki.CertPaths) -> None:
    ca = _cert(certs.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pinnace-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert lifetime.days >= 3650


def test_serving_cert_has_default_and_requested_sans(certs: pki.CertPaths) -> None:
    cert = _cert(certs.apiserver_cert)
    cert.verify_directly_issued_by(_cert(certs.ca_cert))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "node1.example"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("fd00::5")}
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_admin_cert_is_kubernetes_admin_in_system_masters(certs: pki.CertPaths) -> None:
    cert = _cert(certs.admin_cert)
    cert.verify_directly_issued_by(_cert(certs.ca_cert))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kubernetes-admin"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_second_call_changes_no_file(certs: pki.CertPaths) -> None:
    before = _snapshot(certs.cert_dir)
    again = pki.ensure_cert_dir(certs.cert_dir, hosts=["10.0.0.5", "node1.example"],
                                server_url=SERVER)
    assert again == certs
    assert _snapshot(certs.cert_dir) == before


def test_existing_ca_is_reused_and_only_missing_files_are_created(certs: pki.CertPaths) -> None:
    before = _snapshot(certs.cert_dir)
    certs.admin_kubeconfig.unlink()
    certs.apiserver_key.unlink()
    pki.ensure_cert_dir(certs.cert_dir, hosts=["10.0.0.5"], server_url=SERVER)
    after = _snapshot(certs.cert_dir)
    for name in ("ca.crt", "ca.key", "admin.crt", "admin.key"):
        assert after[name] == before[name], name
    assert after["apiserver.crt"] != before["apiserver.crt"]  # reissued with its new key
    _cert(certs.apiserver_cert).verify_directly_issued_by(_cert(certs.ca_cert))
    assert certs.admin_kubeconfig.exists()


def test_half_a_ca_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.key").write_text("operator's key")
    with pytest.raises(FileExistsError, match="ca.crt does not"):
        pki.ensure_cert_dir(tmp_path, hosts=[], server_url=SERVER)
    assert (tmp_path / "ca.key").read_text() == "operator's key"


def test_issue_node_client_cert(certs: pki.CertPaths, tmp_path: Path) -> None:
    out_cert, out_key = tmp_path / "node1.crt", tmp_path / "node1.key"
    pki.issue_client_cert(certs.ca_cert, certs.ca_key, common_name="system:node:node1",
                          organizations=["system:nodes"], out_cert=out_cert, out_key=out_key)
    cert = _cert(out_cert)
    cert.verify_directly_issued_by(_cert(certs.ca_cert))
    assert cert.subject.rfc4514_string() == "CN=system:node:node1,O=system:nodes"
    assert stat.S_IMODE(out_key.stat().st_mode) == 0o600
    ssl.create_default_context().load_cert_chain(out_cert, out_key)  # the pair matches


def test_kubeconfig_embeds_ca_and_admin_pair(certs: pki.CertPaths) -> None:
    config = yaml.safe_load(certs.admin_kubeconfig.read_text())
    assert config["current-context"] == "kubernetes-admin@pinnace"
    (cluster,) = config["clusters"]
    assert cluster["name"] == "pinnace"
    assert cluster["cluster"]["server"] == SERVER
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == (
        certs.ca_cert.read_bytes())
    (user,) = config["users"]
    assert user["name"] == "kubernetes-admin"
    assert base64.b64decode(user["user"]["client-key-data"]) == certs.admin_key.read_bytes()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_parses_the_admin_kubeconfig(certs: pki.CertPaths) -> None:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(certs.admin_kubeconfig), "config", "view", "--raw",
         "--minify", "-o", "json"], check=True, capture_output=True, text=True, timeout=30).stdout
    view = json.loads(out)
    assert view["current-context"] == "kubernetes-admin@pinnace"
    assert view["clusters"][0]["cluster"]["server"] == SERVER
    assert view["users"][0]["user"]["client-certificate-data"]
    assert view["contexts"][0]["context"] == {"cluster": "pinnace", "user": "kubernetes-admin"}


def test_server_context_is_tls12_plus_with_optional_client_certs(certs: pki.CertPaths) -> None:
    ctx = pki.ssl_server_context(certs.apiserver_cert, certs.apiserver_key, certs.ca_cert)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
