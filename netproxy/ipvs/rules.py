"""The iptables helpers IPVS mode needs, as `iptables-restore` text by one pure function.

IPVS does the load balancing (DNAT to a real server); iptables only marks what must be
masqueraded (traffic to a ClusterIP from outside the cluster CIDR, external and NodePort traffic
unless the policy is Local, hairpin traffic from an endpoint to itself), filters
loadBalancerSourceRanges, and rejects new connections to a bound service address on a port no
Service serves (KUBE-IPVS-FILTER, as kube-proxy). Services with no (local) endpoints need no
REJECT rule here: the kernel answers a connection to a virtual server with no real server with
ICMP port unreachable itself. The chains are the iptables mode's (netproxy.chains) plus
KUBE-IPVS-FILTER, written with the same table builder, so `--cleanup` and a switch of mode find
them. kube-proxy matches addresses through ipsets; we write one rule per address and port
instead, because our hosts have neither the ipset tool nor (necessarily) the ip_set module, and
iptables-restore stays the only tool, as in iptables mode. The price is a rule walk linear in
the number of service ports, the same as iptables mode's KUBE-SERVICES.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from netproxy import chains as ch
from netproxy.ipvs.state import IPVSState, VirtualServerKey
from netproxy.model import Endpoint, ServicePort, ServicePortName
from netproxy.rules import RenderOptions, Ruleset, _comment, _contains, _Table, categorize

KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"
FILTER_CHAINS = (*ch.FILTER_CHAINS, KUBE_IPVS_FILTER)
IPVS_JUMPS = (ch.Jump("filter", "INPUT", KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),)


def render(services: Mapping[ServicePortName, ServicePort],
           endpoints: Mapping[ServicePortName, Sequence[Endpoint]], state: IPVSState,
           options: RenderOptions, *, existing_nat_chains: Iterable[str] = ()) -> Ruleset:
    """Render the helper rules (filter + nat) for `services` served by the IPVS `state`."""
    mark, masq, cidr = options.mark, ch.KUBE_MARK_MASQ, options.cluster_cidr
    filter_t = _Table(FILTER_CHAINS)
    nat = _Table(ch.NAT_CHAINS)
    hairpin: set[tuple[str, str, int]] = set()
    for spn in sorted(services):
        svc = services[spn]
        name, proto = str(spn), svc.protocol.lower()
        match, dport = f"-m {proto} -p {proto}", f"--dport {svc.port}"
        served = [ip for ip in (svc.cluster_ip, *svc.external_ips, *svc.load_balancer_ips)
                  if _owner(state, svc, ip) == name]
        if svc.cluster_ip in served:
            cluster_ip = [_comment(f"{name} cluster IP"), match, f"-d {svc.cluster_ip}", dport]
            if options.masquerade_all:
                nat.add(ch.KUBE_SERVICES, *cluster_ip, f"-j {masq}")
            elif cidr:
                nat.add(ch.KUBE_SERVICES, *cluster_ip, f"! -s {cidr}", f"-j {masq}")
        for ip in served[1:] if svc.cluster_ip in served else served:
            external = [_comment(f"{name} external IP"), match, f"-d {ip}", dport]
            if svc.external_local:
                nat.add(ch.KUBE_SERVICES, *external, "-m addrtype --src-type LOCAL",
                        f"-j {masq}")
            else:
                nat.add(ch.KUBE_SERVICES, *external, f"-j {masq}")
        for ip in served:
            nat.add(ch.KUBE_SERVICES, _comment(name), match, f"-d {ip}", dport, "-j ACCEPT")
            filter_t.add(KUBE_IPVS_FILTER, _comment(name), match, f"-d {ip}", dport,
                         "-j RETURN")
        if svc.node_port and not svc.external_local:
            nat.add(ch.KUBE_NODEPORTS, _comment(name), match, f"--dport {svc.node_port}",
                    f"-j {masq}")
        _source_ranges(filter_t, name, match, dport, svc, served, options.node_ip)
        _, _, reachable, _ = categorize(endpoints.get(spn, ()), svc, options.node_name)
        hairpin.update((proto, e.ip, e.port) for e in reachable)

    for proto, ip, port in sorted(hairpin):
        nat.add(ch.KUBE_POSTROUTING, _comment("kubernetes endpoint hairpin"),
                f"-m {proto} -p {proto}", f"-s {ip} -d {ip} --dport {port}", "-j MASQUERADE")
    nat.add(ch.KUBE_POSTROUTING, f"-m mark ! --mark {mark}/{mark}", "-j RETURN")
    nat.add(ch.KUBE_POSTROUTING, f"-j MARK --xor-mark {mark}")
    nat.add(ch.KUBE_POSTROUTING, _comment("kubernetes service traffic requiring SNAT"),
            "-j MASQUERADE", "--random-fully" if options.random_fully else "")
    nat.add(masq, f"-j MARK --or-mark {mark}")
    nat.add(ch.KUBE_SERVICES, _comment("kubernetes service nodeports; NOTE: this must be the "
                                       "last rule in this chain"),
            "-m addrtype --dst-type LOCAL", f"-j {ch.KUBE_NODEPORTS}")
    for ip in sorted(state.addresses):
        filter_t.add(KUBE_IPVS_FILTER, _comment("no service on this port"), f"-d {ip}",
                     "-m conntrack --ctstate NEW", "-j REJECT")
    if not options.conntrack_tcp_liberal:
        filter_t.add(ch.KUBE_FORWARD, "-m conntrack --ctstate INVALID -j DROP")
    filter_t.add(ch.KUBE_FORWARD, _comment("kubernetes forwarding rules"),
                 f"-m mark --mark {mark}/{mark}", "-j ACCEPT")
    filter_t.add(ch.KUBE_FORWARD, _comment("kubernetes forwarding conntrack rule"),
                 "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")

    stale = {c for c in existing_nat_chains if ch.is_service_chain(c)}
    text = "\n".join(["*filter", *filter_t.lines(), "COMMIT", "*nat", *nat.lines(stale),
                      "COMMIT", ""])
    return Ruleset(text, frozenset(ch.NAT_CHAINS), frozenset(filter_t.rules),
                   filter_t.count + nat.count, False)


def _owner(state: IPVSState, svc: ServicePort, ip: str) -> str:
    """The Service port whose virtual server `ip`:port is ("" if none: a clash lost)."""
    server = state.servers.get(VirtualServerKey(svc.protocol, ip, svc.port))
    return server.service if server else ""


def _source_ranges(filter_t: _Table, name: str, match: str, dport: str, svc: ServicePort,
                   served: Sequence[str], node_ip: str) -> None:
    """loadBalancerSourceRanges: traffic to an LB IP from elsewhere is dropped."""
    if not svc.load_balancer_source_ranges:
        return
    for ip in (i for i in svc.load_balancer_ips if i in served):
        where = [_comment(f"{name} loadbalancer IP"), match, f"-d {ip}", dport]
        for source in svc.load_balancer_source_ranges:
            filter_t.add(ch.KUBE_PROXY_FIREWALL, *where, f"-s {source}", "-j RETURN")
        if any(_contains(source, node_ip) for source in svc.load_balancer_source_ranges):
            filter_t.add(ch.KUBE_PROXY_FIREWALL, *where, f"-s {ip}", "-j RETURN")
        filter_t.add(ch.KUBE_PROXY_FIREWALL,
                     _comment(f"{name} traffic not accepted by its source ranges"), match,
                     f"-d {ip}", dport, "-j DROP")
