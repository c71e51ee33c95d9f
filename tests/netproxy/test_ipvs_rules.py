"""IPVS mode's iptables helpers: a golden render, then packets traced through the fake kernel.

IPVS itself does the DNAT, so a trace here ends at the service address; what the rules decide
is whether the connection is accepted, rejected or dropped, and whether it gets masqueraded.
"""

from __future__ import annotations

from netproxy.fake_iptables import FakeIptables, Outcome, trace
from netproxy.ipvs import rules
from netproxy.ipvs.state import IPVSOptions, desired
from netproxy.model import Endpoint, ServicePort, ServicePortName
from netproxy.rules import RenderOptions

WEB = ServicePortName("ns", "web", "")
LB = ServicePortName("ns", "lb", "")
NODE_IP, POD, OUTSIDE = "192.168.1.5", "10.0.9.9", "203.0.113.9"
OPTIONS = RenderOptions("node1", cluster_cidr="10.0.0.0/8", node_ip=NODE_IP)

GOLDEN = """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-IPVS-FILTER -m comment --comment ns/web -m tcp -p tcp -d 10.96.0.10 --dport 80 -j RETURN
-A KUBE-IPVS-FILTER -m comment --comment ns/web -m tcp -p tcp -d 198.51.100.7 --dport 80 -j RETURN
-A KUBE-IPVS-FILTER -m comment --comment "no service on this port" -d 10.96.0.10 -m conntrack --ctstate NEW -j REJECT
-A KUBE-IPVS-FILTER -m comment --comment "no service on this port" -d 198.51.100.7 -m conntrack --ctstate NEW -j REJECT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
-A KUBE-SERVICES -m comment --comment "ns/web cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "ns/web external IP" -m tcp -p tcp -d 198.51.100.7 --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment ns/web -m tcp -p tcp -d 10.96.0.10 --dport 80 -j ACCEPT
-A KUBE-SERVICES -m comment --comment ns/web -m tcp -p tcp -d 198.51.100.7 --dport 80 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -m comment --comment ns/web -m tcp -p tcp --dport 30080 -j KUBE-MARK-MASQ
-A KUBE-POSTROUTING -m comment --comment "kubernetes endpoint hairpin" -m tcp -p tcp -s 10.0.1.2 -d 10.0.1.2 --dport 8080 -j MASQUERADE
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-X KUBE-SVC-AAAAAAAAAAAAAAAA
COMMIT
"""  # noqa: E501


def web(**kw: object) -> ServicePort:
    settings: dict[str, object] = {"node_port": 30080, "external_ips": ("198.51.100.7",), **kw}
    return ServicePort(WEB, "10.96.0.10", 80, **settings)  # type: ignore[arg-type]


def render(services: dict[ServicePortName, ServicePort],
           endpoints: dict[ServicePortName, tuple[Endpoint, ...]],
           options: RenderOptions = OPTIONS, **kw: object) -> tuple[str, list[str]]:
    state = desired(services, endpoints, IPVSOptions("node1", "rr", (NODE_IP,)))
    ruleset = rules.render(services, endpoints, state, options, **kw)  # type: ignore[arg-type]
    return ruleset.text, sorted(state.addresses)


def test_golden_helper_rules_and_stale_iptables_mode_chains() -> None:
    text, _ = render({WEB: web()}, {WEB: (Endpoint("10.0.1.2", 8080, "node1"),)},
                     existing_nat_chains=["KUBE-SVC-AAAAAAAAAAAAAAAA", "KUBE-SERVICES"])
    assert text == GOLDEN


def kernel(services: dict[ServicePortName, ServicePort],
           options: RenderOptions = OPTIONS) -> tuple[FakeIptables, list[str]]:
    ipt = FakeIptables()
    for table, chain, target in (("nat", "PREROUTING", "KUBE-SERVICES"),
                                 ("nat", "OUTPUT", "KUBE-SERVICES"),
                                 ("nat", "POSTROUTING", "KUBE-POSTROUTING"),
                                 ("filter", "INPUT", rules.KUBE_IPVS_FILTER),
                                 ("filter", "FORWARD", "KUBE-FORWARD")):
        ipt.ensure_chain(table, target)
        ipt.ensure_rule(table, chain, ["-j", target])
    text, bound = render(services, {}, options)
    ipt.restore(text)
    return ipt, [NODE_IP, *bound]


def go(services: dict[ServicePortName, ServicePort], src: str, dst: str, dport: int,
       options: RenderOptions = OPTIONS) -> list[Outcome]:
    ipt, local = kernel(services, options)
    return trace(ipt, src=src, dst=dst, dport=dport, local_ips=local)


def test_cluster_ip_masquerades_only_from_outside_the_cluster_cidr() -> None:
    assert go({WEB: web()}, POD, "10.96.0.10", 80) == [Outcome("ACCEPT", "10.96.0.10:80")]
    assert go({WEB: web()}, OUTSIDE, "10.96.0.10", 80) == \
        [Outcome("ACCEPT", "10.96.0.10:80", True)]
    every = RenderOptions("node1", masquerade_all=True)
    assert go({WEB: web()}, POD, "10.96.0.10", 80, every) == \
        [Outcome("ACCEPT", "10.96.0.10:80", True)]


def test_other_ports_on_a_service_address_are_rejected() -> None:
    assert go({WEB: web()}, POD, "10.96.0.10", 22) == [Outcome("REJECT", "10.96.0.10:22")]
    assert go({WEB: web()}, OUTSIDE, "198.51.100.7", 443) == \
        [Outcome("REJECT", "198.51.100.7:443")]


def test_nodeport_and_external_ip_masquerade_unless_policy_local() -> None:
    assert go({WEB: web()}, OUTSIDE, NODE_IP, 30080) == \
        [Outcome("ACCEPT", f"{NODE_IP}:30080", True)]
    assert go({WEB: web()}, OUTSIDE, "198.51.100.7", 80) == \
        [Outcome("ACCEPT", "198.51.100.7:80", True)]
    local = {WEB: web(external_local=True)}
    assert go(local, OUTSIDE, NODE_IP, 30080) == [Outcome("ACCEPT", f"{NODE_IP}:30080")]
    assert go(local, OUTSIDE, "198.51.100.7", 80) == [Outcome("ACCEPT", "198.51.100.7:80")]


def test_load_balancer_source_ranges() -> None:
    lb = {LB: ServicePort(LB, "10.96.0.20", 443, load_balancer_ips=("203.0.113.50",),
                          load_balancer_source_ranges=("198.51.100.0/24",))}
    ipt, local = kernel(lb)
    ipt.ensure_chain("filter", "KUBE-PROXY-FIREWALL")
    ipt.ensure_rule("filter", "INPUT", ["-j", "KUBE-PROXY-FIREWALL"])
    allowed = trace(ipt, src="198.51.100.3", dst="203.0.113.50", dport=443, local_ips=local)
    assert allowed == [Outcome("ACCEPT", "203.0.113.50:443", True)]
    denied = trace(ipt, src=OUTSIDE, dst="203.0.113.50", dport=443, local_ips=local)
    assert denied == [Outcome("DROP", "203.0.113.50:443")]
