"""The names of every iptables chain and jump rule the netproxy owns, as kube-proxy spells them.

Per-service chains are a prefix plus 16 base32 characters of sha256(service-port name + protocol
[+ endpoint]), exactly kube-proxy's `servicePortChainName`, so names are deterministic across
restarts and nodes and fit iptables' 28-character limit. Anything we install is named here, which
is what lets a sync delete our stale chains and `--cleanup` remove all of ours and nothing else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass

# Top-level chains (shared by all services).
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"  # blocks martian localnet traffic when route_localnet is on
CANARY = "KUBE-PROXY-CANARY"
SCTP_PROBE = "KUBE-PROXY-SCTP-PROBE"  # made and deleted at start: can this kernel match SCTP?
CANARY_TABLES = ("mangle", "nat", "filter")

FILTER_CHAINS = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS,
                 KUBE_PROXY_FIREWALL)
NAT_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)

# Per-service-port chain prefixes; a chain with one of these is ours and may be deleted when stale.
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-",
                          "KUBE-XLB-")


@functools.lru_cache(maxsize=1 << 16)
def _hash(text: str) -> str:
    # 16 base32 characters are exactly the first 10 bytes of the digest (5-byte groups encode
    # independently), so only those are encoded; a sync asks for the same names again and again.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def port_proto_hash(service_port: str, protocol: str) -> str:
    """kube-proxy's portProtoHash: `service_port` is "ns/name:port", protocol lower-case."""
    return _hash(service_port + protocol)


def service_chain(service_port: str, protocol: str) -> str:
    return "KUBE-SVC-" + port_proto_hash(service_port, protocol)


def local_chain(service_port: str, protocol: str) -> str:
    return "KUBE-SVL-" + port_proto_hash(service_port, protocol)


def external_chain(service_port: str, protocol: str) -> str:
    return "KUBE-EXT-" + port_proto_hash(service_port, protocol)


def firewall_chain(service_port: str, protocol: str) -> str:
    return "KUBE-FW-" + port_proto_hash(service_port, protocol)


def endpoint_chain(service_port: str, protocol: str, endpoint: str) -> str:
    """`endpoint` is "ip:port"."""
    return "KUBE-SEP-" + _hash(service_port + protocol + endpoint)


def is_service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)


def is_ours(name: str) -> bool:
    """A chain this netproxy creates (top-level, per-service or the canary)."""
    return (is_service_chain(name) or name in FILTER_CHAINS or name in NAT_CHAINS
            or name in (KUBE_FIREWALL, CANARY, SCTP_PROBE))


@dataclass(frozen=True)
class Jump:
    """One rule in a built-in chain that sends traffic into one of ours."""

    table: str
    chain: str  # the built-in chain (PREROUTING, OUTPUT, ...)
    target: str
    comment: str
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """The rule as iptables arguments (after `-A CHAIN`), unquoted."""
        comment = ["-m", "comment", "--comment", self.comment] if self.comment else []
        return [*comment, *self.extra, "-j", self.target]


_NEW = ("-m", "conntrack", "--ctstate", "NEW")
JUMPS = (
    Jump("filter", "INPUT", KUBE_EXTERNAL_SERVICES,
         "kubernetes externally-visible service portals", _NEW),
    Jump("filter", "FORWARD", KUBE_EXTERNAL_SERVICES,
         "kubernetes externally-visible service portals", _NEW),
    Jump("filter", "INPUT", KUBE_NODEPORTS, "kubernetes health check service ports"),
    Jump("filter", "FORWARD", KUBE_SERVICES, "kubernetes service portals", _NEW),
    Jump("filter", "OUTPUT", KUBE_SERVICES, "kubernetes service portals", _NEW),
    Jump("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    Jump("filter", "INPUT", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    Jump("filter", "OUTPUT", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    Jump("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    Jump("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    Jump("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    Jump("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
)
# Only with localhost NodePorts (route_localnet=1): kubelet's mitigation for issue 90259.
LOCALNET_JUMPS = (
    Jump("filter", "INPUT", KUBE_FIREWALL, ""),
    Jump("filter", "OUTPUT", KUBE_FIREWALL, ""),
)
