"""`pinnace certs`: the PKI and kubeconfigs of a cluster of hosts (systemd units, Vagrant VMs).

Run on the server; it writes one directory per host, laid out as that host's `/etc/pinnace`
(the paths the unit files' EnvironmentFiles in systemd/env/ name):

    DIR/server/pki/           ca.crt ca.key apiserver.crt/.key apiserver-kubelet-client.crt/.key
    DIR/server/kubeconfigs/   scheduler, controller-manager, cloud-controller-manager
    DIR/admin.kubeconfig      the cluster admin (system:masters), for kubectl on any machine
    DIR/nodes/<name>/pki/     ca.crt agent-serving.crt/.key (the agent's HTTPS server)
    DIR/nodes/<name>/kubeconfigs/  agent (system:node:<name>), netproxy (system:kube-proxy)

The operator (or scripts/install-systemd.sh in the Vagrant provisioning) copies
`DIR/server` to the server's /etc/pinnace and `DIR/nodes/<name>` to that node's. Like `up`,
it keeps what is valid: the CA and every pair survive re-runs (a node added later is only
issued its own files); a pair signed by another CA or missing an address is reissued, and
kubeconfigs are rewritten every time, since the server URL may have changed. Only the server
directory holds the CA key.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controlplane.apiserver import pki
from pinnace.up.certs import ensure_serving, signed_by


@dataclass(frozen=True)
class HostNode:
    name: str
    address: str


def node_arg(text: str) -> HostNode:
    name, sep, address = text.partition("=")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        sep = ""
    if not (sep and name):
        raise argparse.ArgumentTypeError(f"expected NAME=IP, got {text!r}")
    return HostNode(name, address)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace certs", description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, required=True, help="where to write (kept across runs)")
    p.add_argument("--server-url", required=True, help="https://ADDRESS:PORT of the apiserver")
    p.add_argument("--apiserver-host", action="append", default=[], metavar="HOST",
                   help="another name or address of the apiserver for its certificate")
    p.add_argument("--node", type=node_arg, action="append", default=[], metavar="NAME=IP",
                   help="a node host: its agent's client and serving certificates")
    return p


def _client(ca: pki.CertPaths, pki_dir: Path, stem: str, user: str, groups: list[str],
            issued: list[str]) -> tuple[Path, Path]:
    cert, key = pki_dir / f"{stem}.crt", pki_dir / f"{stem}.key"
    if not (key.exists() and signed_by(cert, ca.ca_cert)):
        pki.issue_client_cert(ca.ca_cert, ca.ca_key, common_name=user, organizations=groups,
                              out_cert=cert, out_key=key)
        issued.append(stem)
    return cert, key


def ensure(out: Path, server_url: str, apiserver_hosts: Sequence[str],
           nodes: Sequence[HostNode]) -> list[str]:
    """Make what is missing or stale under `out`; return the names of the pairs issued."""
    server_pki = out / "server" / "pki"
    host = server_url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    hosts = [host, *apiserver_hosts]
    paths = pki.CertPaths.of(server_pki)
    fresh_ca = not paths.ca_cert.exists()
    pki.ensure_cert_dir(server_pki, hosts=hosts, server_url=server_url)
    issued = ["CA"] if fresh_ca else []
    if ensure_serving(server_pki, "apiserver", paths, common_name="kube-apiserver",
                      hosts=[*pki.DEFAULT_SANS, *hosts]):
        issued.append("apiserver")
    _client(paths, server_pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
            [pki.ADMIN_GROUP], issued)
    admin = _client(paths, server_pki, "admin", pki.ADMIN_USER, [pki.ADMIN_GROUP], issued)
    pki.write_kubeconfig(out / "admin.kubeconfig", server=server_url, ca_cert=paths.ca_cert,
                         client_cert=admin[0], client_key=admin[1], user=pki.ADMIN_USER)
    components = [("scheduler", "system:kube-scheduler"),
                  ("controller-manager", "system:kube-controller-manager"),
                  ("cloud-controller-manager", "system:kube-cloud-controller-manager")]
    (out / "server" / "kubeconfigs").mkdir(mode=0o700, parents=True, exist_ok=True)
    for stem, user in components:
        cert, key = _client(paths, server_pki, stem, user, [], issued)
        pki.write_kubeconfig(out / "server" / "kubeconfigs" / f"{stem}.kubeconfig",
                             server=server_url, ca_cert=paths.ca_cert, client_cert=cert,
                             client_key=key, user=user)
    proxy = _client(paths, server_pki, "netproxy", "system:kube-proxy", [], issued)
    for node in nodes:
        node_dir = out / "nodes" / node.name
        node_pki = node_dir / "pki"
        node_pki.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(paths.ca_cert, node_pki / "ca.crt")
        user = f"system:node:{node.name}"
        cert, key = _client(paths, server_pki, f"node-{node.name}", user, [pki.NODES_GROUP],
                            issued)
        kubeconfigs = node_dir / "kubeconfigs"
        kubeconfigs.mkdir(mode=0o700, exist_ok=True)
        pki.write_kubeconfig(kubeconfigs / "agent.kubeconfig", server=server_url,
                             ca_cert=paths.ca_cert, client_cert=cert, client_key=key, user=user)
        pki.write_kubeconfig(kubeconfigs / "netproxy.kubeconfig", server=server_url,
                             ca_cert=paths.ca_cert, client_cert=proxy[0], client_key=proxy[1],
                             user="system:kube-proxy")
        if ensure_serving(node_pki, "agent-serving", pki.CertPaths.of(server_pki),
                          common_name=user, hosts=[node.name, node.address]):
            issued.append(f"node-{node.name}-serving")
    return issued


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    try:
        issued = ensure(args.dir, args.server_url, args.apiserver_host, args.node)
    except (OSError, ValueError) as exc:
        print(f"pinnace certs: {exc}", file=sys.stderr)
        return 1
    print(f"pinnace certs: {args.dir}: issued {', '.join(issued) or 'nothing (all valid)'}; "
          f"server -> /etc/pinnace on the server, nodes/<name> -> /etc/pinnace on each node")
    return 0
