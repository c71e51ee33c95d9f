"""`pinnace apiserver`: the Kubernetes API over HTTPS, stored in etcd.

Flags follow kube-apiserver's names. With `--cert-dir` and no `--tls-cert-file`, a CA, a
serving certificate and an admin client certificate plus `admin.kubeconfig` are made on first
start (and reused after). SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop
from aiohttp import web

from controlplane.api.sdnotify import Readiness
from controlplane.apiserver import authn, nodeproxy, pki
from controlplane.apiserver.registry.allocator import parse_port_range
from controlplane.apiserver.server import APIServer
from controlplane.apiserver.storage.compactor import Compactor
from controlplane.apiserver.storage.etcd import EtcdStorage

log = logging.getLogger("pinnace.apiserver")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameters


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace apiserver", description=__doc__.splitlines()[0])
    p.add_argument("--etcd-servers", default="http://127.0.0.1:2379",
                   help="comma-separated etcd client URLs")
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--secure-port", type=int, default=6443)
    p.add_argument("--advertise-address", default="",
                   help="the address clients use (default: the bind address)")
    p.add_argument("--cert-dir", type=Path, default=Path("/var/lib/pinnace/pki"))
    p.add_argument("--tls-cert-file", type=Path)
    p.add_argument("--tls-private-key-file", type=Path)
    p.add_argument("--client-ca-file", type=Path)
    p.add_argument("--kubelet-client-certificate", type=Path,
                   help="client certificate presented to node agents (logs, exec, attach)")
    p.add_argument("--kubelet-client-key", type=Path)
    p.add_argument("--kubelet-certificate-authority", type=Path,
                   help="CA that signs the agents' serving certificates (default: the client CA)")
    p.add_argument("--token-auth-file", type=Path)
    p.add_argument("--etcd-compaction-interval", type=float, default=300.0,
                   help="seconds between compactions of etcd's history (0: never)")
    p.add_argument("--max-requests-inflight", type=int, default=400)
    p.add_argument("--max-mutating-requests-inflight", type=int, default=200)
    p.add_argument("--service-cluster-ip-range", type=_cidr, default="10.96.0.0/12",
                   help="the CIDR ClusterIPs of services come from (its first IP: `kubernetes`)")
    p.add_argument("--service-node-port-range", type=_port_range, default="30000-32767",
                   help="the ports NodePorts of services come from (both ends included)")
    p.add_argument("-v", "--v", type=int, default=1, help="log verbosity (0-4)")
    return p


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port_range(text: str) -> str:
    try:
        first, last = parse_port_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{first}-{last}"


async def serve(args: argparse.Namespace) -> None:
    advertise = args.advertise_address or args.bind_address
    server_url = f"https://{advertise}:{args.secure_port}"
    if args.tls_cert_file:
        cert, key = args.tls_cert_file, args.tls_private_key_file
        client_ca = args.client_ca_file
        if key is None or client_ca is None:
            raise SystemExit("--tls-cert-file needs --tls-private-key-file and --client-ca-file")
    else:
        paths = pki.ensure_cert_dir(args.cert_dir, hosts=[args.bind_address, advertise],
                                    server_url=server_url)
        cert, key, client_ca = paths.apiserver_cert, paths.apiserver_key, paths.ca_cert
    tokens = authn.TokenFile.load(args.token_auth_file) if args.token_auth_file else None
    try:
        kubelet_client = nodeproxy.KubeletClientConfig.resolve(
            cert=args.kubelet_client_certificate, key=args.kubelet_client_key,
            ca=args.kubelet_certificate_authority, serving_cert=cert, serving_key=key,
            cluster_ca=client_ca, cert_dir=None if args.tls_cert_file else args.cert_dir)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if kubelet_client.problem:
        log.warning("%s", kubelet_client.problem)
    storage = EtcdStorage(args.etcd_servers.split(","))
    api = APIServer(storage, tokens=tokens, server_address=f"{advertise}:{args.secure_port}",
                    max_read=args.max_requests_inflight,
                    max_write=args.max_mutating_requests_inflight,
                    service_cluster_ip_range=args.service_cluster_ip_range,
                    service_node_port_range=args.service_node_port_range,
                    kubelet_client=kubelet_client)
    await api.start()
    compactor = Compactor(storage, interval=args.etcd_compaction_interval)
    if args.etcd_compaction_interval > 0:
        compactor.start()
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.bind_address, args.secure_port,
                       ssl_context=pki.ssl_server_context(cert, key, client_ca),
                       shutdown_timeout=1)
    await site.start()
    log.info("serving on %s (etcd %s) service-cluster-ip-range=%s service-node-port-range=%s",
             server_url, args.etcd_servers, args.service_cluster_ip_range,
             args.service_node_port_range)
    readiness = Readiness("apiserver")
    readiness.ready(f"serving on {server_url}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    readiness.stopping()
    await runner.cleanup()
    await compactor.stop()
    await api.stop()
    await storage.close()


def tune_process() -> None:
    """Suit the interpreter to a server that holds many objects and answers big lists.

    The cycle collector's first threshold (700 allocations) makes decoding a list of 5000
    objects set off collections of the whole heap that cost 4x the decoding itself; API
    objects hold no cycles (reference counting frees them), so collecting far less often
    keeps little alive. glibc raises its mmap threshold after each big free (a list's
    response), then keeps later big buffers on a heap it seldom gives back: fixed thresholds
    let the memory of a list go after it.
    """
    gc.set_threshold(50_000, 20, 100)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    for option in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD):
        mallopt(option, 128 * 1024)  # glibc's defaults, kept from moving


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.v, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    tune_process()
    try:
        uvloop.run(serve(args))
    except OSError as exc:
        print(f"pinnace apiserver: {exc}", file=sys.stderr)
        return 1
    return 0
