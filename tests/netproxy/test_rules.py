"""Golden renders: the exact iptables-restore text for each Service shape, as kube-proxy writes it.

Chain names are literal here (not computed), and `test_chain_names_match_kube_proxy` pins the
hash to names that appear in kube-proxy's own proxier_test.go.
"""

from __future__ import annotations

import pytest

from netproxy import chains
from netproxy.model import Endpoint, ServicePort, ServicePortName
from netproxy.rules import RenderOptions, categorize, probability, render
from netproxy.tracker import EndpointsChangeTracker, ServiceChangeTracker

OPTIONS = RenderOptions(node_name="node1", cluster_cidr="10.0.0.0/8")
FILTER_TOP = """*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]"""
FORWARD = """-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"""  # noqa: E501
NAT_TOP = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]"""
NODEPORTS_TAIL = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS'  # noqa: E501
POSTROUTING = """-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"""  # noqa: E501

SVC1 = ServicePortName("ns1", "svc1", "p80")
SVC2 = ServicePortName("ns2", "svc2", "p80")
SVC3 = ServicePortName("ns3", "svc3", "p80")
TWO = (Endpoint("10.180.0.1", 80, node_name="node2"), Endpoint("10.180.0.2", 80,
                                                               node_name="node1"))


def test_chain_names_match_kube_proxy() -> None:
    assert chains.service_chain("ns1/svc1:p80", "tcp") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert chains.endpoint_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80") == \
        "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert chains.endpoint_chain("ns2/svc2:p80", "tcp", "10.180.0.2:80") == \
        "KUBE-SEP-RS4RBKLTHTF2IUXJ"
    assert chains.external_chain("ns2/svc2:p80", "tcp") == "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
    assert chains.firewall_chain("ns5/svc5:p80", "tcp") == "KUBE-FW-NUKIZ6OKUXPJNT4C"
    assert all(len(chains.endpoint_chain(f"ns/{'x' * 60}:p", "sctp", "10.0.0.1:1")) <= 28
               for _ in range(1))


def test_probabilities_are_written_as_kube_proxy_does() -> None:
    assert [probability(n) for n in (4, 3, 2)] == ["0.2500000000", "0.3333333333",
                                                    "0.5000000000"]


def test_cluster_ip_with_two_endpoints() -> None:
    svc = ServicePort(SVC1, "172.30.0.41", 80)
    assert render({SVC1: svc}, {SVC1: TWO}, OPTIONS).text == f"""{FILTER_TOP}
{FORWARD}
COMMIT
{NAT_TOP}
:KUBE-SEP-LXVODXWDISEETFEF - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
{NODEPORTS_TAIL}
{POSTROUTING}
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-LXVODXWDISEETFEF
COMMIT
"""  # noqa: E501


def test_node_port() -> None:
    svc = ServicePort(SVC2, "172.30.0.42", 80, node_port=3001)
    assert render({SVC2: svc}, {SVC2: TWO}, OPTIONS).text == f"""{FILTER_TOP}
{FORWARD}
COMMIT
{NAT_TOP}
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SEP-FKDX4UEXGN6O6BS2 - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
{NODEPORTS_TAIL}
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
{POSTROUTING}
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade traffic for ns2/svc2:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SEP-FKDX4UEXGN6O6BS2 -m comment --comment ns2/svc2:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-FKDX4UEXGN6O6BS2 -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-FKDX4UEXGN6O6BS2
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
COMMIT
"""  # noqa: E501


@pytest.mark.parametrize("endpoints", [(), (Endpoint("10.180.0.3", 80, ready=False,
                                                      serving=False),)],
                         ids=["none", "none-ready"])
def test_no_endpoints_rejects(endpoints: tuple[Endpoint, ...]) -> None:
    svc = ServicePort(SVC3, "172.30.0.43", 80, node_port=3003, external_ips=("1.2.3.4",))
    assert render({SVC3: svc}, {SVC3: endpoints}, OPTIONS).text == f"""{FILTER_TOP}
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns3/svc3:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns3/svc3:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3003 -j REJECT
{FORWARD}
COMMIT
{NAT_TOP}
{NODEPORTS_TAIL}
{POSTROUTING}
COMMIT
"""  # noqa: E501


def test_session_affinity() -> None:
    svc = ServicePort(SVC1, "172.30.0.41", 80, sticky_seconds=10800)
    assert render({SVC1: svc}, {SVC1: TWO}, OPTIONS).text == f"""{FILTER_TOP}
{FORWARD}
COMMIT
{NAT_TOP}
:KUBE-SEP-LXVODXWDISEETFEF - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
{NODEPORTS_TAIL}
{POSTROUTING}
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-LXVODXWDISEETFEF --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name KUBE-SEP-SXIVWICOYRO3J4NJ --rcheck --seconds 10800 --reap -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m recent --name KUBE-SEP-LXVODXWDISEETFEF --rcheck --seconds 10800 --reap -j KUBE-SEP-LXVODXWDISEETFEF
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-LXVODXWDISEETFEF
COMMIT
"""  # noqa: E501


def test_local_traffic_policies() -> None:
    """svc2: externalTrafficPolicy Local with one local endpoint of two; svc3:
    internalTrafficPolicy Local with no endpoint on this node (DROP, not REJECT)."""
    svc2 = ServicePort(SVC2, "172.30.0.42", 80, node_port=3001, external_local=True)
    svc3 = ServicePort(SVC3, "172.30.0.43", 80, internal_local=True)
    eps3 = (Endpoint("10.180.0.3", 80, node_name="node2"),)
    text = render({SVC2: svc2, SVC3: svc3}, {SVC2: TWO, SVC3: eps3}, OPTIONS).text
    assert text == f"""{FILTER_TOP}
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j DROP
{FORWARD}
COMMIT
{NAT_TOP}
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SEP-FKDX4UEXGN6O6BS2 - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVL-GNZBNJ2PO5MGZ6GT - [0:0]
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
{NODEPORTS_TAIL}
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
{POSTROUTING}
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -j KUBE-SVL-GNZBNJ2PO5MGZ6GT
-A KUBE-SEP-FKDX4UEXGN6O6BS2 -m comment --comment ns2/svc2:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-FKDX4UEXGN6O6BS2 -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-FKDX4UEXGN6O6BS2
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVL-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
COMMIT
"""  # noqa: E501


def test_named_ports_resolve_per_slice() -> None:
    """targetPort "web" is 8080 in one slice and 9090 in the other; UDP dns beside TCP http.
    Built from API objects through the change trackers; no cluster CIDR (no masquerade rule)."""
    services, endpoints = ServiceChangeTracker(), EndpointsChangeTracker()
    services.update(None, {
        "metadata": {"namespace": "ns4", "name": "svc4"},
        "spec": {"clusterIP": "172.30.0.44", "ports": [
            {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}]}})
    for name, ip, web, dns in (("svc4-a", "10.180.0.4", 8080, 5353),
                               ("svc4-b", "10.180.1.4", 9090, 53)):
        endpoints.update(None, {
            "metadata": {"namespace": "ns4", "name": name,
                         "labels": {"kubernetes.io/service-name": "svc4"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": web, "protocol": "TCP"},
                      {"name": "dns", "port": dns, "protocol": "UDP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]})
    svc_map: dict[ServicePortName, ServicePort] = {}
    ep_map: dict[ServicePortName, tuple[Endpoint, ...]] = {}
    services.checkout(svc_map)
    endpoints.checkout(ep_map)
    text = render(svc_map, ep_map, RenderOptions(node_name="node1")).text
    assert text == f"""{FILTER_TOP}
{FORWARD}
COMMIT
{NAT_TOP}
:KUBE-SEP-CLF6N7K3MEVAH4EZ - [0:0]
:KUBE-SEP-G46P5P7JIS35UNGC - [0:0]
:KUBE-SEP-M6AQYYVJKUXAMYSL - [0:0]
:KUBE-SEP-ZTVMUKLOEZXIGCRM - [0:0]
:KUBE-SVC-I43VHGRDJVLEMTKD - [0:0]
:KUBE-SVC-IK7IIOFE7XAB2QM3 - [0:0]
-A KUBE-SERVICES -m comment --comment "ns4/svc4:dns cluster IP" -m udp -p udp -d 172.30.0.44 --dport 53 -j KUBE-SVC-I43VHGRDJVLEMTKD
-A KUBE-SERVICES -m comment --comment "ns4/svc4:http cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-IK7IIOFE7XAB2QM3
{NODEPORTS_TAIL}
{POSTROUTING}
-A KUBE-SEP-CLF6N7K3MEVAH4EZ -m comment --comment ns4/svc4:dns -s 10.180.1.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-CLF6N7K3MEVAH4EZ -m comment --comment ns4/svc4:dns -m udp -p udp -j DNAT --to-destination 10.180.1.4:53
-A KUBE-SEP-G46P5P7JIS35UNGC -m comment --comment ns4/svc4:http -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-G46P5P7JIS35UNGC -m comment --comment ns4/svc4:http -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:8080
-A KUBE-SEP-M6AQYYVJKUXAMYSL -m comment --comment ns4/svc4:dns -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-M6AQYYVJKUXAMYSL -m comment --comment ns4/svc4:dns -m udp -p udp -j DNAT --to-destination 10.180.0.4:5353
-A KUBE-SEP-ZTVMUKLOEZXIGCRM -m comment --comment ns4/svc4:http -s 10.180.1.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-ZTVMUKLOEZXIGCRM -m comment --comment ns4/svc4:http -m tcp -p tcp -j DNAT --to-destination 10.180.1.4:9090
-A KUBE-SVC-I43VHGRDJVLEMTKD -m comment --comment "ns4/svc4:dns -> 10.180.0.4:5353" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-M6AQYYVJKUXAMYSL
-A KUBE-SVC-I43VHGRDJVLEMTKD -m comment --comment "ns4/svc4:dns -> 10.180.1.4:53" -j KUBE-SEP-CLF6N7K3MEVAH4EZ
-A KUBE-SVC-IK7IIOFE7XAB2QM3 -m comment --comment "ns4/svc4:http -> 10.180.0.4:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-G46P5P7JIS35UNGC
-A KUBE-SVC-IK7IIOFE7XAB2QM3 -m comment --comment "ns4/svc4:http -> 10.180.1.4:9090" -j KUBE-SEP-ZTVMUKLOEZXIGCRM
COMMIT
"""  # noqa: E501


def test_load_balancer_with_source_ranges() -> None:
    spn = ServicePortName("ns5", "svc5", "p80")
    svc = ServicePort(spn, "172.30.0.45", 80, load_balancer_ips=("5.6.7.8",),
                      load_balancer_source_ranges=("203.0.113.0/25",))
    text = render({spn: svc}, {spn: (Endpoint("10.180.0.5", 80),)}, OPTIONS).text
    fw, ext = "KUBE-FW-NUKIZ6OKUXPJNT4C", "KUBE-EXT-NUKIZ6OKUXPJNT4C"
    assert f'-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j {fw}' in text  # noqa: E501
    assert f'-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by {fw}" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP' in text  # noqa: E501
    assert f'''-A {fw} -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j {ext}
-A {fw} -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
''' in text  # noqa: E501


def test_stale_chains_of_ours_are_deleted_and_others_left_alone() -> None:
    svc = ServicePort(SVC1, "172.30.0.41", 80)
    text = render({SVC1: svc}, {SVC1: TWO}, OPTIONS, existing_nat_chains=[
        "KUBE-SVC-XPGD46QRK7WJZT7O", "KUBE-SEP-GONEGONEGONEGONE", "KUBE-SVL-OLD",
        "CNI-HOSTPORT-DNAT", "KUBE-SERVICES", "DOCKER"]).text
    nat = text.split("*nat\n")[1]
    assert ":KUBE-SEP-GONEGONEGONEGONE - [0:0]\n:KUBE-SVL-OLD - [0:0]\n-A KUBE-SERVICES" in nat
    assert nat.endswith("-X KUBE-SEP-GONEGONEGONEGONE\n-X KUBE-SVL-OLD\nCOMMIT\n")
    assert "CNI" not in text and "DOCKER" not in text and "-X KUBE-SVC" not in text


def test_partial_sync_leaves_unchanged_services_chains_alone() -> None:
    svc1 = ServicePort(SVC1, "172.30.0.41", 80)
    svc2 = ServicePort(SVC2, "172.30.0.42", 80)
    full = render({SVC1: svc1, SVC2: svc2}, {SVC1: TWO, SVC2: TWO}, OPTIONS)
    partial = render({SVC1: svc1, SVC2: svc2}, {SVC1: TWO, SVC2: TWO}, OPTIONS,
                     existing_nat_chains=full.nat_chains, skip_services={"ns1/svc1"})
    assert partial.nat_chains == full.nat_chains
    assert "KUBE-SVC-XPGD46QRK7WJZT7O -j" not in partial.text  # still jumped to ...
    assert "-j KUBE-SVC-XPGD46QRK7WJZT7O" in partial.text  # ... from KUBE-SERVICES
    assert ":KUBE-SVC-XPGD46QRK7WJZT7O" not in partial.text  # ... but not flushed
    assert ":KUBE-SVC-GNZBNJ2PO5MGZ6GT" in partial.text and "\n-X " not in partial.text


def test_masquerade_all_localhost_nodeports_and_explicit_addresses() -> None:
    svc = ServicePort(SVC1, "172.30.0.41", 80, node_port=3001)
    options = RenderOptions(node_name="node1", masquerade_all=True, localhost_nodeports=True,
                            nodeport_addresses=("192.168.1.5", "127.0.0.1"))
    text = render({SVC1: svc}, {SVC1: TWO}, options).text
    assert '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ\n' in text  # noqa: E501
    tail = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'  # noqa: E501
    assert f"{tail} -d 192.168.1.5 -j KUBE-NODEPORTS\n{tail} -d 127.0.0.1 -j KUBE-NODEPORTS\n" \
        in text
    assert ':KUBE-FIREWALL - [0:0]\n' in text
    assert '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP' in text  # noqa: E501
    no_localhost = render({SVC1: svc}, {SVC1: TWO}, RenderOptions(
        node_name="node1", nodeport_addresses=("127.0.0.1",))).text
    assert "-j KUBE-NODEPORTS" not in no_localhost.split("*nat")[1].split("KUBE-NODEPORTS -m")[0]


def test_large_clusters_drop_per_endpoint_comments() -> None:
    eps = tuple(Endpoint(f"10.1.{i // 250}.{i % 250 + 1}", 80) for i in range(1001))
    text = render({SVC1: ServicePort(SVC1, "172.30.0.41", 80)}, {SVC1: eps}, OPTIONS).text
    assert "-> 10.1." not in text
    assert '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP"' in text
    assert "--probability 0.0009990010 -j KUBE-SEP-" in text  # 1/1001


def test_terminating_endpoints_are_the_fallback_only() -> None:
    svc = ServicePort(SVC1, "172.30.0.41", 80)
    ready = Endpoint("10.180.0.1", 80)
    terminating = Endpoint("10.180.0.2", 80, ready=False, serving=True, terminating=True)
    gone = Endpoint("10.180.0.3", 80, ready=False, serving=False, terminating=True)
    assert categorize([ready, terminating, gone], svc, "node1")[0] == [ready]
    assert categorize([terminating, gone], svc, "node1")[0] == [terminating]
    assert categorize([gone], svc, "node1") == ([], [], [], False)
