"""The cluster's certificates and kubeconfigs: who each component is, and which server it dials.

`identities` is the pure plan: the admin (DIR/kubeconfig), one identity per control-plane
component, netproxy, the apiserver's client for the agents, and one `system:node:<name>` in
`system:nodes` per node, and each node agent's serving pair (its name and address). Host-side
clients dial 127.0.0.1, node-side ones the bridge address.
`ensure` applies it with controlplane.apiserver.pki: the CA and every key pair are kept across
runs (reissued only when missing, signed by another CA, or, for the serving certificate, lacking
an address of the plan); kubeconfigs are rewritten on every run, since the port may have moved.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from controlplane.apiserver import pki
from pinnace.up.plan import GATEWAY, ClusterPlan


@dataclass(frozen=True)
class Identity:
    """A client certificate (`<stem>.crt/.key` in the PKI dir) and, with a server, a kubeconfig."""

    stem: str
    user: str
    groups: tuple[str, ...]
    server: str = ""  # "" for a certificate without kubeconfig
    kubeconfig: Path | None = None


def identities(plan: ClusterPlan) -> list[Identity]:
    """Every client identity of the cluster, with the server URL it uses."""
    local, bridge = plan.local_url, plan.bridge_url
    found = [
        Identity("admin", pki.ADMIN_USER, (pki.ADMIN_GROUP,), local, plan.kubeconfig),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                 (pki.ADMIN_GROUP,)),
        Identity("scheduler", "system:kube-scheduler", (), local,
                 plan.kubeconfig_of("scheduler")),
        Identity("controller-manager", "system:kube-controller-manager", (), local,
                 plan.kubeconfig_of("controller-manager")),
        Identity("cloud-controller-manager", "system:kube-cloud-controller-manager", (), local,
                 plan.kubeconfig_of("cloud-controller-manager")),
        Identity("netproxy", "system:kube-proxy", (), bridge, plan.kubeconfig_of("netproxy")),
    ]
    for node in plan.nodes:
        found.append(Identity(f"node-{node.name}", f"system:node:{node.name}",
                              (pki.NODES_GROUP,), bridge, plan.kubeconfig_of(f"node-{node.name}")))
    return found


def serving_hosts() -> list[str]:
    """The apiserver's addresses and names besides pki.DEFAULT_SANS."""
    return ["127.0.0.1", GATEWAY, socket.gethostname()]


def missing_sans(cert_path: Path, hosts: list[str]) -> list[str]:
    """Those of `hosts` the certificate at `cert_path` does not carry."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return list(hosts)
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    names = set(sans.get_values_for_type(x509.DNSName))
    missing = []
    for host in hosts:
        try:
            present = str(ipaddress.ip_address(host)) in ips
        except ValueError:
            present = host in names
        if not present:
            missing.append(host)
    return missing


def signed_by(cert_path: Path, ca_path: Path) -> bool:
    """Whether the certificate at `cert_path` was issued by the CA at `ca_path`."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure(plan: ClusterPlan) -> list[str]:
    """Make whatever of the PKI is missing or stale, write every kubeconfig; return what was
    issued (for the progress line)."""
    paths = pki.CertPaths.of(plan.pki_dir)
    hosts = serving_hosts()
    if paths.apiserver_cert.exists() and missing_sans(paths.apiserver_cert, hosts):
        paths.apiserver_cert.unlink()
    fresh_ca = not paths.ca_cert.exists()
    pki.ensure_cert_dir(plan.pki_dir, hosts=hosts, server_url=plan.local_url)
    issued = ["CA"] if fresh_ca else []
    for who in identities(plan):
        cert, key = plan.pki_dir / f"{who.stem}.crt", plan.pki_dir / f"{who.stem}.key"
        if not (key.exists() and signed_by(cert, paths.ca_cert)):
            pki.issue_client_cert(paths.ca_cert, paths.ca_key, common_name=who.user,
                                  organizations=list(who.groups), out_cert=cert, out_key=key)
            issued.append(who.stem)
        if who.kubeconfig is not None:
            who.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            pki.write_kubeconfig(who.kubeconfig, server=who.server, ca_cert=paths.ca_cert,
                                 client_cert=cert, client_key=key, user=who.user)
    for node in plan.nodes:
        if ensure_serving(plan.pki_dir, serving_stem(node.name), paths,
                          common_name=f"system:node:{node.name}",
                          hosts=[node.name, node.address]):
            issued.append(serving_stem(node.name))
    return issued


def serving_stem(node: str) -> str:
    """The agent's serving pair `<stem>.crt/.key` in the PKI dir."""
    return f"node-{node}-serving"


def ensure_serving(pki_dir: Path, stem: str, paths: pki.CertPaths, *, common_name: str,
                   hosts: list[str]) -> bool:
    """Issue a serving pair unless a valid one (this CA, every host) exists; True if issued."""
    cert, key = pki_dir / f"{stem}.crt", pki_dir / f"{stem}.key"
    if key.exists() and signed_by(cert, paths.ca_cert) and not missing_sans(cert, hosts):
        return False
    pki.issue_serving_cert(paths.ca_cert, paths.ca_key, common_name=common_name, hosts=hosts,
                           out_cert=cert, out_key=key)
    return True
