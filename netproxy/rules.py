"""The renderer: the complete desired ruleset as `iptables-restore` text, by one pure function.

`render(services, endpoints, options)` follows kube-proxy's `syncProxyRules` rule for rule (chain
names, comments, match order, `--probability %0.10f`), so a kube-proxy user reading
`iptables-save` finds what they expect. The text declares only our chains (never a built-in one),
so applying it with `iptables-restore --noflush` replaces our chains atomically and leaves every
other rule alone; stale chains of ours named in `existing_nat_chains` are flushed and deleted in
the same transaction. Services named in `skip_services` keep their per-service chains untouched
(a partial sync; their chains still count as in use). Output order is deterministic: top-level
chains first, then per-service chains sorted by name; services in ServicePortName order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from netproxy import chains as ch
from netproxy.model import Endpoint, ServicePort, ServicePortName

LARGE_CLUSTER_ENDPOINTS = 1000  # above this many endpoints, per-endpoint comments are dropped


@dataclass(frozen=True)
class RenderOptions:
    """What the rules depend on besides Services and endpoints (constant for a daemon's life)."""

    node_name: str
    cluster_cidr: str = ""  # pod traffic comes from here; "" turns the local detector off
    masquerade_all: bool = False
    masquerade_bit: int = 14
    nodeport_addresses: tuple[str, ...] | None = None  # None: any local address (addrtype)
    localhost_nodeports: bool = False  # NodePorts on 127.0.0.0/8 (needs route_localnet=1)
    node_ip: str = ""  # the node's primary IP (loadBalancerSourceRanges that include it)
    random_fully: bool = True  # MASQUERADE --random-fully (iptables >= 1.6.2)
    conntrack_tcp_liberal: bool = False  # when set, INVALID packets are not dropped

    @property
    def mark(self) -> str:
        return f"{1 << self.masquerade_bit:#x}"


@dataclass(frozen=True)
class Ruleset:
    """A rendered sync: the restore text and the chains of ours it leaves in use."""

    text: str
    nat_chains: frozenset[str]
    filter_chains: frozenset[str]
    rules: int  # "-A" lines written
    large_cluster: bool


def is_large_cluster(endpoints: Mapping[ServicePortName, Sequence[Endpoint]]) -> bool:
    return sum(len(eps) for eps in endpoints.values()) > LARGE_CLUSTER_ENDPOINTS


def probability(n: int) -> str:
    """kube-proxy's statistic probability for the first of `n` remaining endpoints."""
    return f"{1.0 / n:0.10f}"


def categorize(endpoints: Sequence[Endpoint], svc: ServicePort, node_name: str
               ) -> tuple[list[Endpoint], list[Endpoint], list[Endpoint], bool]:
    """(cluster, local, all locally reachable, has any usable) endpoints, as kube-proxy's
    CategorizeEndpoints: ready ones, else serving+terminating ones as a fallback."""
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    if svc.uses_cluster_endpoints:
        cluster = [e for e in endpoints if e.ready] or \
            [e for e in endpoints if e.serving and e.terminating]
        has_any = bool(cluster)
    if not svc.uses_local_endpoints:
        return cluster, local, cluster, has_any
    local_ready = local_terminating = False
    for e in endpoints:
        if e.ready or (e.serving and e.terminating):
            has_any = True
            is_local = e.node_name == node_name
            local_ready |= is_local and e.ready
            local_terminating |= is_local and not e.ready
    if local_ready:
        local = [e for e in endpoints if e.node_name == node_name and e.ready]
    elif local_terminating:
        local = [e for e in endpoints if e.node_name == node_name and e.serving and e.terminating]
    if not svc.uses_cluster_endpoints:
        return cluster, local, local, has_any
    seen = {str(e) for e in cluster}
    return cluster, local, cluster + [e for e in local if str(e) not in seen], has_any


class _Table:
    """Chain declarations and rules of one table, kept per chain in declaration order."""

    def __init__(self, top_level: Iterable[str]) -> None:
        self.rules: dict[str, list[str]] = {c: [] for c in top_level}
        self.top = len(self.rules)
        self.count = 0

    def declare(self, chain: str) -> None:
        self.rules.setdefault(chain, [])

    def add(self, chain: str, *parts: str) -> None:
        self.rules[chain].append(f"-A {chain} " + " ".join(p for p in parts if p))
        self.count += 1

    def lines(self, deleted: Iterable[str] = ()) -> list[str]:
        names = list(self.rules)
        order = names[:self.top] + sorted(names[self.top:])
        gone = sorted(deleted)
        out = [f":{c} - [0:0]" for c in order] + [f":{c} - [0:0]" for c in gone]
        for c in order:
            out.extend(self.rules[c])
        out.extend(f"-X {c}" for c in gone)
        return out


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"' if " " in text else f"-m comment --comment {text}"


def render(services: Mapping[ServicePortName, ServicePort],
           endpoints: Mapping[ServicePortName, Sequence[Endpoint]],
           options: RenderOptions, *, existing_nat_chains: Iterable[str] = (),
           skip_services: Collection[str] = ()) -> Ruleset:
    """Render the whole ruleset (filter + nat) for `services` and their `endpoints`."""
    mark = options.mark
    masq = ch.KUBE_MARK_MASQ
    large = is_large_cluster(endpoints)
    cidr = options.cluster_cidr
    filter_t = _Table(ch.FILTER_CHAINS)
    nat = _Table(ch.NAT_CHAINS)
    active_nat: set[str] = set(ch.NAT_CHAINS)

    nat.add(ch.KUBE_POSTROUTING, f"-m mark ! --mark {mark}/{mark}", "-j RETURN")
    nat.add(ch.KUBE_POSTROUTING, f"-j MARK --xor-mark {mark}")
    nat.add(ch.KUBE_POSTROUTING, _comment("kubernetes service traffic requiring SNAT"),
            "-j MASQUERADE", "--random-fully" if options.random_fully else "")
    nat.add(masq, f"-j MARK --or-mark {mark}")
    if options.localhost_nodeports:
        filter_t.declare(ch.KUBE_FIREWALL)
        filter_t.add(ch.KUBE_FIREWALL, _comment("block incoming localnet connections"),
                     "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack",
                     "! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")

    for spn in sorted(services):
        svc = services[spn]
        name = str(spn)
        proto = svc.protocol.lower()
        svc_chain = ch.service_chain(name, proto)
        svl_chain = ch.local_chain(name, proto)
        ext_chain = ch.external_chain(name, proto)
        fw_chain = ch.firewall_chain(name, proto)
        cluster_eps, local_eps, reachable, has_endpoints = categorize(
            endpoints.get(spn, ()), svc, options.node_name)
        uses_cluster_chain = bool(cluster_eps) and svc.uses_cluster_endpoints
        uses_local_chain = bool(local_eps) and svc.uses_local_endpoints

        internal_chain, has_internal = svc_chain, has_endpoints
        if svc.internal_local:
            internal_chain, has_internal = svl_chain, bool(local_eps)
        external_policy_chain, has_external = svc_chain, has_endpoints
        if svc.external_local:
            external_policy_chain, has_external = svl_chain, bool(local_eps)
        uses_ext_chain = has_endpoints and svc.externally_accessible
        uses_fw_chain = has_endpoints and bool(svc.load_balancer_ips) and \
            bool(svc.load_balancer_source_ranges)
        lb_chain = fw_chain if uses_fw_chain else ext_chain

        if not has_endpoints:
            int_target = ext_target = "REJECT"
            int_comment = ext_comment = f"{name} has no endpoints"
        else:
            int_target = ext_target = "DROP"
            int_comment = ext_comment = f"{name} has no local endpoints"
        match = f"-m {proto} -p {proto}"
        dport = f"--dport {svc.port}"

        # Capture the clusterIP.
        cluster_ip = f"-d {svc.cluster_ip}"
        if has_internal:
            nat.add(ch.KUBE_SERVICES, _comment(f"{name} cluster IP"), match, cluster_ip, dport,
                    f"-j {internal_chain}")
        else:
            filter_t.add(ch.KUBE_SERVICES, _comment(int_comment), match, cluster_ip, dport,
                         f"-j {int_target}")
        # Capture externalIPs.
        for ip in svc.external_ips:
            if has_endpoints:
                nat.add(ch.KUBE_SERVICES, _comment(f"{name} external IP"), match, f"-d {ip}",
                        dport, f"-j {ext_chain}")
            if not has_external:
                filter_t.add(ch.KUBE_EXTERNAL_SERVICES, _comment(ext_comment), match,
                             f"-d {ip}", dport, f"-j {ext_target}")
        # Capture load-balancer ingress.
        for ip in svc.load_balancer_ips:
            if has_endpoints:
                nat.add(ch.KUBE_SERVICES, _comment(f"{name} loadbalancer IP"), match,
                        f"-d {ip}", dport, f"-j {lb_chain}")
            if uses_fw_chain:
                filter_t.add(ch.KUBE_PROXY_FIREWALL,
                             _comment(f"{name} traffic not accepted by {fw_chain}"), match,
                             f"-d {ip}", dport, "-j DROP")
        if not has_external:
            for ip in svc.load_balancer_ips:
                filter_t.add(ch.KUBE_EXTERNAL_SERVICES, _comment(ext_comment), match,
                             f"-d {ip}", dport, f"-j {ext_target}")
        # Capture nodeports.
        if svc.node_port:
            if has_endpoints:
                nat.add(ch.KUBE_NODEPORTS, _comment(name), match, f"--dport {svc.node_port}",
                        f"-j {ext_chain}")
            if not has_external:
                filter_t.add(ch.KUBE_EXTERNAL_SERVICES, _comment(ext_comment),
                             "-m addrtype --dst-type LOCAL", match, f"--dport {svc.node_port}",
                             f"-j {ext_target}")

        # The per-service chains, unless this is a partial sync that leaves them as they are.
        used: list[str] = []
        if uses_ext_chain:
            used.append(ext_chain)
        if uses_fw_chain:
            used.append(fw_chain)
        if uses_cluster_chain:
            used.append(svc_chain)
        if uses_local_chain:
            used.append(svl_chain)
        used.extend(ch.endpoint_chain(name, proto, str(e)) for e in reachable)
        active_nat.update(used)
        if spn.service in skip_services:
            continue
        for chain in used:
            nat.declare(chain)

        # Internal traffic: masquerade what does not come from a pod (or everything).
        if has_internal:
            internal = [_comment(f"{name} cluster IP"), match, cluster_ip, dport]
            if options.masquerade_all:
                nat.add(internal_chain, *internal, f"-j {masq}")
            elif cidr:
                nat.add(internal_chain, *internal, f"! -s {cidr}", f"-j {masq}")
        # External traffic: everything captured above lands in the EXT chain.
        if uses_ext_chain:
            if not svc.external_local:
                nat.add(ext_chain, _comment(f"masquerade traffic for {name} external "
                                            "destinations"), f"-j {masq}")
            else:
                if cidr:
                    nat.add(ext_chain, _comment(f"pod traffic for {name} external destinations"),
                            f"-s {cidr}", f"-j {svc_chain}")
                nat.add(ext_chain, _comment(f"masquerade LOCAL traffic for {name} external "
                                            "destinations"),
                        "-m addrtype --src-type LOCAL", f"-j {masq}")
                nat.add(ext_chain, _comment(f"route LOCAL traffic for {name} external "
                                            "destinations"),
                        "-m addrtype --src-type LOCAL", f"-j {svc_chain}")
            if has_external:
                nat.add(ext_chain, f"-j {external_policy_chain}")
        # Firewall chain for loadBalancerSourceRanges.
        if uses_fw_chain:
            lb_comment = _comment(f"{name} loadbalancer IP")
            allow_from_node = False
            for source in svc.load_balancer_source_ranges:
                nat.add(fw_chain, lb_comment, f"-s {source}", f"-j {ext_chain}")
                allow_from_node |= _contains(source, options.node_ip)
            if allow_from_node:
                for ip in svc.load_balancer_ips:
                    nat.add(fw_chain, lb_comment, f"-s {ip}", f"-j {ext_chain}")
            nat.add(fw_chain, _comment(f"other traffic to {name} will be dropped by "
                                       "KUBE-PROXY-FIREWALL"))
        # Service -> endpoint chains (affinity first, then the random split).
        for chain, eps, wanted in ((svc_chain, cluster_eps, uses_cluster_chain),
                                   (svl_chain, local_eps, uses_local_chain)):
            if wanted:
                _endpoint_jumps(nat, chain, name, proto, svc, eps, large)
        # The endpoint chains: hairpin masquerade, affinity record, DNAT.
        for e in reachable:
            sep = ch.endpoint_chain(name, proto, str(e))
            comment = "" if large else _comment(name)
            nat.add(sep, comment, f"-s {e.ip}", f"-j {masq}")
            recent = f"-m recent --name {sep} --set" if svc.sticky_seconds else ""
            nat.add(sep, comment, recent, match, f"-j DNAT --to-destination {e}")

    # Finally, the tail-call to the nodePorts chain: after every other service rule.
    nodeports_comment = _comment("kubernetes service nodeports; NOTE: this must be the last "
                                 "rule in this chain")
    if options.nodeport_addresses is None:
        nat.add(ch.KUBE_SERVICES, nodeports_comment, "-m addrtype --dst-type LOCAL",
                "" if options.localhost_nodeports else "! -d 127.0.0.0/8",
                f"-j {ch.KUBE_NODEPORTS}")
    else:
        for ip in options.nodeport_addresses:
            if ip.startswith("127.") and not options.localhost_nodeports:
                continue
            nat.add(ch.KUBE_SERVICES, nodeports_comment, f"-d {ip}", f"-j {ch.KUBE_NODEPORTS}")
    if not options.conntrack_tcp_liberal:
        filter_t.add(ch.KUBE_FORWARD, "-m conntrack --ctstate INVALID -j DROP")
    filter_t.add(ch.KUBE_FORWARD, _comment("kubernetes forwarding rules"),
                 f"-m mark --mark {mark}/{mark}", "-j ACCEPT")
    filter_t.add(ch.KUBE_FORWARD, _comment("kubernetes forwarding conntrack rule"),
                 "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")

    stale = {c for c in existing_nat_chains if ch.is_service_chain(c)} - active_nat
    text = "\n".join(["*filter", *filter_t.lines(), "COMMIT", "*nat", *nat.lines(stale),
                      "COMMIT", ""])
    return Ruleset(text, frozenset(active_nat), frozenset(filter_t.rules),
                   filter_t.count + nat.count, large)


def _endpoint_jumps(nat: _Table, chain: str, name: str, proto: str, svc: ServicePort,
                    eps: Sequence[Endpoint], large: bool) -> None:
    """kube-proxy's writeServiceToEndpointRules."""
    if svc.sticky_seconds:
        for e in eps:
            sep = ch.endpoint_chain(name, proto, str(e))
            nat.add(chain, "" if large else _comment(f"{name} -> {e}"),
                    f"-m recent --name {sep} --rcheck --seconds {svc.sticky_seconds} --reap",
                    f"-j {sep}")
    for i, e in enumerate(eps):
        sep = ch.endpoint_chain(name, proto, str(e))
        split = "" if i == len(eps) - 1 else \
            f"-m statistic --mode random --probability {probability(len(eps) - i)}"
        nat.add(chain, "" if large else _comment(f"{name} -> {e}"), split, f"-j {sep}")


def _contains(cidr: str, ip: str) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
