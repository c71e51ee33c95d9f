"""Which conntrack entries a sync deletes for UDP services."""

from __future__ import annotations

from netproxy.conntrack import stale_flow_filters
from netproxy.model import Endpoint, ServicePort, ServicePortName

DNS = ServicePortName("kube-system", "dns", "dns", "UDP")
SERVICES = {DNS: ServicePort(DNS, "10.96.0.10", 53, "UDP", node_port=30053,
                             external_ips=("1.2.3.4",))}


def test_filters_for_removed_endpoints_new_services_and_deleted_ips() -> None:
    filters = stale_flow_filters(
        SERVICES, deleted_udp_ips=["10.96.0.99"], new_udp_services=[DNS],
        stale_endpoints=[(DNS, Endpoint("10.0.0.5", 53))])
    assert filters == [
        ["--orig-dst", "10.96.0.99", "-p", "udp"],
        ["--orig-dst", "10.96.0.10", "-p", "udp"],
        ["--orig-dst", "1.2.3.4", "-p", "udp"],
        ["-p", "udp", "--dport", "30053"],
        ["--orig-dst", "10.96.0.10", "--dst-nat", "10.0.0.5", "-p", "udp"],
        ["--orig-dst", "1.2.3.4", "--dst-nat", "10.0.0.5", "-p", "udp"],
        ["-p", "udp", "--dport", "30053", "--dst-nat", "10.0.0.5"],
    ]


def test_nothing_for_unknown_services() -> None:
    gone = ServicePortName("ns", "gone", "", "UDP")
    assert stale_flow_filters(SERVICES, new_udp_services=[gone],
                              stale_endpoints=[(gone, Endpoint("10.0.0.5", 53))]) == []
