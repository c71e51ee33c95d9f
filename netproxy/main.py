"""`pinnace netproxy`: the per-node service proxy (kube-proxy's job) and pod routes.

Flags follow kube-proxy's names where one exists. The cluster DNS server (netproxy.dns) runs in
the same process unless `--enable-dns=false`; its flags are its own (`add_flags`). `--cleanup`
removes every rule, chain and route we install and exits. `--proxy-mode ipvs` needs the kernel's
ip_vs: without it (as on our build machines) the command says so in one line and exits 1.
Usage errors exit 2, as argparse does.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane.api.flags import boolean, duration
from controlplane.client import kubeconfig
from netproxy import healthcheck, ipvs
from netproxy.dns import main as dns
from netproxy.iptables import IptablesBackend, IptablesError, RestoreBackend
from netproxy.ipvs.link import LINK_KINDS
from netproxy.ipvs.record import DEFAULT_PATH as IPVS_RECORD
from netproxy.ipvs.state import SCHEDULERS
from netproxy.proxier import ProxierConfig

if TYPE_CHECKING:  # the IPVS proxier is imported in IPVS mode only
    from netproxy.ipvs.proxier import IPVSConfig

log = logging.getLogger("pinnace.netproxy")
BACKENDS = ("iptables-restore", "iptables-legacy-restore", "python-iptables")
def cidr(text: str) -> str:
    if not text:
        return ""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid CIDR {text!r}") from None
    if net.version != 4:
        raise argparse.ArgumentTypeError(f"{text}: only IPv4 is proxied for now")
    return str(net)


def ip4(text: str) -> str:
    if not text:
        return ""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid IPv4 address {text!r}") from None


def nodeport_addresses(text: str) -> tuple[str, ...]:
    return tuple(w if w == "primary" else cidr(w) for w in text.split(",") if w.strip())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace netproxy", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", type=Path, help="required unless --cleanup")
    p.add_argument("--node-name", "--hostname-override", dest="node_name",
                   default=socket.gethostname())
    p.add_argument("--node-ip", type=ip4, default="",
                   help="this node's primary IP until its Node object says otherwise")
    p.add_argument("--proxy-mode", choices=("iptables", "ipvs"), default="iptables")
    p.add_argument("--iptables-backend", choices=BACKENDS, default=BACKENDS[0],
                   help="how rules reach the kernel (python-iptables: legacy hosts only)")
    p.add_argument("--cluster-cidr", type=cidr, default="",
                   help="the pods' CIDR: traffic from elsewhere to a ClusterIP is masqueraded")
    p.add_argument("--nodeport-addresses", type=nodeport_addresses, default=(),
                   help="comma-separated CIDRs and/or 'primary' (default: every local address)")
    p.add_argument("--masquerade-all", action="store_true",
                   help="SNAT all traffic sent via Service cluster IPs")
    p.add_argument("--iptables-masquerade-bit", type=int, default=14, choices=range(32),
                   metavar="[0-31]")
    p.add_argument("--iptables-localhost-nodeports", type=boolean, nargs="?", const=True,
                   default=False, help="accept NodePort traffic to 127.0.0.1 (route_localnet)")
    p.add_argument("--iptables-sync-period", type=duration, default=30.0,
                   help="full resync at least this often (default 30s)")
    p.add_argument("--iptables-min-sync-period", type=duration, default=1.0,
                   help="at most one sync per this period (default 1s)")
    p.add_argument("--ipvs-scheduler", choices=SCHEDULERS, default="rr",
                   help="IPVS scheduler: round robin, least connection, source hashing")
    p.add_argument("--ipvs-link-kind", choices=LINK_KINDS, default="dummy",
                   help="the link kube-ipvs0 is (bridge where the kernel has no dummy links)")
    p.add_argument("--ipvs-state-file", type=Path, default=IPVS_RECORD,
                   help="where IPVS mode records the virtual servers it made")
    p.add_argument("--cleanup", action="store_true",
                   help="remove every rule, chain and route of ours, then exit")
    p.add_argument("--enable-dns", type=boolean, nargs="?", const=True, default=True,
                   help="serve cluster DNS from this process too (default true)")
    dns.add_flags(p)
    healthcheck.add_flags(p)
    p.add_argument("-v", "--v", type=int, default=1)
    return p


def make_backend(name: str) -> IptablesBackend:
    if name == "python-iptables":
        from netproxy.iptc_backend import IptcBackend

        return IptcBackend()
    return RestoreBackend("iptables-legacy" if name == "iptables-legacy-restore" else "iptables")


def config_of(args: argparse.Namespace) -> ProxierConfig:
    return ProxierConfig(
        node_name=args.node_name, node_ip=args.node_ip, cluster_cidr=args.cluster_cidr,
        masquerade_all=args.masquerade_all, masquerade_bit=args.iptables_masquerade_bit,
        nodeport_addresses=args.nodeport_addresses,
        localhost_nodeports=args.iptables_localhost_nodeports,
        sync_period=args.iptables_sync_period, min_sync_period=args.iptables_min_sync_period)


def ipvs_config_of(args: argparse.Namespace) -> IPVSConfig | None:
    """IPVS mode's settings, or None in iptables mode."""
    if args.proxy_mode != "ipvs":
        return None
    from netproxy.ipvs.proxier import IPVSConfig

    return IPVSConfig(scheduler=args.ipvs_scheduler, link_kind=args.ipvs_link_kind,
                      record=args.ipvs_state_file)


def main(argv: Sequence[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.v, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.cleanup:
        from netproxy.cleanup import cleanup
        from netproxy.ipvs.cleanup import cleanup_here
        from netproxy.ipvs.record import OwnershipRecord
        from netproxy.routes import IPRouteNetlink

        backend = make_backend(args.iptables_backend)
        errors = cleanup(backend, IPRouteNetlink())
        errors += cleanup_here(backend, OwnershipRecord(args.ipvs_state_file))
        for error in errors:
            print(f"pinnace netproxy --cleanup: {error}", file=sys.stderr)
        return 1 if errors else 0
    if args.proxy_mode == "ipvs":
        reason = ipvs.unavailable_reason()
        if reason is not None:
            print(f"pinnace netproxy: {reason}", file=sys.stderr)
            return 1
    if args.kubeconfig is None:
        p.error("--kubeconfig is required (except with --cleanup)")
    from netproxy import daemon

    try:
        asyncio.run(daemon.run(config_of(args), args.kubeconfig,
                               make_backend(args.iptables_backend),
                               dns.config_of(args) if args.enable_dns else None,
                               healthcheck.config_of(args), ipvs_config_of(args)))
    except (OSError, kubeconfig.KubeconfigError, IptablesError) as exc:
        print(f"pinnace netproxy: {exc}", file=sys.stderr)
        return 1
    return 0
