"""The cluster's certificates: one CA, the apiserver's serving pair, client pairs and kubeconfigs.

`ensure_cert_dir` is idempotent: the CA (ca.crt + ca.key) is generated only when neither file
exists, and otherwise reused; any other missing pair or the admin kubeconfig is then issued from
it, and a file that exists is never rewritten. All keys are ECDSA P-256. Every file is written
atomically (temp file + rename), and keys and kubeconfigs (which embed a key) get mode 0600.
Clients authenticate with certificates whose CN is the user and whose O entries are the groups,
as kube-apiserver reads them (`kubernetes-admin` in `system:masters`, nodes as `system:node:<n>`
in `system:nodes`). Leaf certificates last one year, as kubeadm's do; nothing renews them yet.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CA_COMMON_NAME = "pinnace-ca"
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
# Backdate notBefore so a node whose clock is a little behind still accepts a fresh certificate.
CLOCK_SKEW = datetime.timedelta(hours=1)
# Names every serving certificate carries, whatever the caller's `hosts`.
DEFAULT_SANS = (
    "localhost", "127.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertPaths:
    """Where `ensure_cert_dir` keeps each file of a cluster's PKI."""

    cert_dir: Path
    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    admin_kubeconfig: Path

    @classmethod
    def of(cls, cert_dir: Path) -> CertPaths:
        return cls(
            cert_dir=cert_dir,
            ca_cert=cert_dir / "ca.crt", ca_key=cert_dir / "ca.key",
            apiserver_cert=cert_dir / "apiserver.crt", apiserver_key=cert_dir / "apiserver.key",
            admin_cert=cert_dir / "admin.crt", admin_key=cert_dir / "admin.key",
            admin_kubeconfig=cert_dir / "admin.kubeconfig",
        )


def ensure_cert_dir(cert_dir: Path, *, hosts: list[str], cluster_name: str = "pinnace",
                    server_url: str) -> CertPaths:
    """Create whatever of the cluster's CA, serving pair, admin pair and kubeconfig is missing.

    `hosts` are the apiserver's addresses and names (IPs become IP SANs, the rest DNS SANs).
    A directory holding only one of ca.crt and ca.key is refused rather than overwritten.
    """
    paths = CertPaths.of(cert_dir)
    cert_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    have_crt, have_key = paths.ca_cert.exists(), paths.ca_key.exists()
    if have_crt != have_key:
        present, absent = (paths.ca_cert, paths.ca_key) if have_crt else (
            paths.ca_key, paths.ca_cert)
        raise FileExistsError(f"{present} exists but {absent} does not; refusing to replace the CA")
    fresh_ca = not have_crt
    if fresh_ca:
        _write_ca(paths.ca_cert, paths.ca_key)
        log.info("generated cluster CA cert=%s", paths.ca_cert)
    # A new CA invalidates every pair signed by an old one, so those are reissued too.
    if fresh_ca or not (paths.apiserver_cert.exists() and paths.apiserver_key.exists()):
        sans = _unique([*DEFAULT_SANS, *hosts])
        _issue(paths.ca_cert, paths.ca_key, common_name="kube-apiserver", organizations=[],
               sans=sans, usage=ExtendedKeyUsageOID.SERVER_AUTH,
               out_cert=paths.apiserver_cert, out_key=paths.apiserver_key)
        log.info("issued apiserver serving certificate sans=%s", ",".join(sans))
    if fresh_ca or not (paths.admin_cert.exists() and paths.admin_key.exists()):
        issue_client_cert(paths.ca_cert, paths.ca_key, common_name=ADMIN_USER,
                          organizations=[ADMIN_GROUP], out_cert=paths.admin_cert,
                          out_key=paths.admin_key)
    if fresh_ca or not paths.admin_kubeconfig.exists():
        write_kubeconfig(paths.admin_kubeconfig, server=server_url, ca_cert=paths.ca_cert,
                         client_cert=paths.admin_cert, client_key=paths.admin_key,
                         user=ADMIN_USER, cluster=cluster_name)
    return paths


def issue_client_cert(ca_cert_path: Path, ca_key_path: Path, *, common_name: str,
                      organizations: list[str], out_cert: Path, out_key: Path) -> None:
    """Issue a client certificate for user `common_name` in groups `organizations`."""
    _issue(ca_cert_path, ca_key_path, common_name=common_name, organizations=organizations,
           sans=[], usage=ExtendedKeyUsageOID.CLIENT_AUTH, out_cert=out_cert, out_key=out_key)
    log.info("issued client certificate user=%s groups=%s", common_name, ",".join(organizations))


def issue_serving_cert(ca_cert_path: Path, ca_key_path: Path, *, common_name: str,
                       hosts: list[str], out_cert: Path, out_key: Path) -> None:
    """Issue a serving certificate for `hosts` (IPs become IP SANs, the rest DNS SANs), such
    as a node agent's (`common_name` `system:node:<name>`, hosts its name and addresses)."""
    sans = _unique(hosts)
    _issue(ca_cert_path, ca_key_path, common_name=common_name, organizations=[], sans=sans,
           usage=ExtendedKeyUsageOID.SERVER_AUTH, out_cert=out_cert, out_key=out_key)
    log.info("issued serving certificate cn=%s sans=%s", common_name, ",".join(sans))


def write_kubeconfig(path: Path, *, server: str, ca_cert: Path, client_cert: Path,
                     client_key: Path, user: str, cluster: str = "pinnace") -> None:
    """Write a kubeconfig with the CA and client pair embedded, its one context current."""
    context = f"{user}@{cluster}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": _b64(ca_cert)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(client_cert), "client-key-data": _b64(client_key)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    _write_atomic(path, text.encode(), mode=0o600)


def ssl_server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """Return a TLS 1.2+ server context that asks for, but does not require, a client cert.

    A client that presents a certificate not signed by `client_ca` fails the handshake; one
    that presents none gets through and must authenticate with a bearer token instead.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _write_ca(out_cert: Path, out_key: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_atomic(out_key, _key_pem(key), mode=0o600)
    _write_atomic(out_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _issue(ca_cert_path: Path, ca_key_path: Path, *, common_name: str, organizations: list[str],
           sans: list[str], usage: x509.ObjectIdentifier, out_cert: Path, out_key: Path) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, _SigningKey):
        raise TypeError(f"{ca_key_path}: CA key must be ECDSA or RSA, not {type(ca_key).__name__}")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(sans)),
                                        critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_atomic(out_key, _key_pem(key), mode=0o600)
    _write_atomic(out_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


def _general_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _unique(hosts: list[str]) -> list[str]:
    return list(dict.fromkeys(h.strip() for h in hosts if h.strip()))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to `path` via a temp file created with `mode`, so no reader sees half a file
    and a key is never readable by others, even for a moment."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed a certificate's 0644
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
