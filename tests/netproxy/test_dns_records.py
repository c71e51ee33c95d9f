"""The cluster DNS records: every record type, headless services, case, NXDOMAIN and NODATA."""

from __future__ import annotations

from typing import Any

import pytest

from netproxy.dns.records import ClusterRecords, Record

Object = dict[str, Any]
SOA = "ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 30"


def service(name: str, namespace: str = "default", **spec: Any) -> Object:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def endpoint_slice(name: str, svc: str, endpoints: list[Object], *, namespace: str = "default",
                   ports: list[Object] | None = None, address_type: str = "IPv4") -> Object:
    return {"metadata": {"namespace": namespace, "name": name,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": address_type, "endpoints": endpoints, "ports": ports or []}


SERVICES = [
    service("web", clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"],
            ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                   {"name": "dns", "port": 53, "protocol": "UDP"},
                   {"port": 8080, "protocol": "TCP"}]),
    service("dual", namespace="prod", clusterIP="10.96.0.6",
            clusterIPs=["10.96.0.6", "fd00:96::6"]),
    service("db", clusterIP="None", clusterIPs=["None"],
            ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
    service("empty", clusterIP="None"),
    service("ext", type="ExternalName", externalName="Example.COM."),
    service("alias", type="ExternalName", externalName="web.default.svc.cluster.local"),
    service("broken", clusterIP="999.1.1.1"),  # skipped, never stops the others
]
SLICES = [
    endpoint_slice("db-abc", "db", [
        {"addresses": ["10.244.1.2"], "hostname": "db-0", "conditions": {"ready": True}},
        {"addresses": ["10.244.1.3"], "conditions": {}},  # unknown readiness counts as ready
        {"addresses": ["10.244.1.4"], "hostname": "db-2", "conditions": {"ready": False}},
    ], ports=[{"name": "pg", "port": 15432, "protocol": "TCP"}]),
    endpoint_slice("web-xyz", "web", [{"addresses": ["10.244.2.9"], "hostname": "w0"}]),
    endpoint_slice("bad", "db", [{"addresses": ["not-an-ip"]}]),
    endpoint_slice("orphan", "gone", [{"addresses": ["10.244.3.1"]}]),
]


@pytest.fixture
def zone() -> ClusterRecords:
    return ClusterRecords.build(SERVICES, SLICES, serial=7)


def data(zone: ClusterRecords, qname: str, qtype: str) -> list[str]:
    answer = zone.resolve(qname, qtype)
    assert answer is not None and answer.rcode == "NOERROR", answer
    return [r.data for r in answer.answer]


def test_cluster_ip_service_has_an_a_record(zone: ClusterRecords) -> None:
    answer = zone.resolve("web.default.svc.cluster.local.", "A")
    assert answer is not None
    assert answer.answer == [Record("web.default.svc.cluster.local.", "A", 30, "10.96.0.5")]
    assert answer.authority == []


def test_dual_stack_service_answers_a_and_aaaa(zone: ClusterRecords) -> None:
    assert data(zone, "dual.prod.svc.cluster.local", "A") == ["10.96.0.6"]
    assert data(zone, "dual.prod.svc.cluster.local", "AAAA") == ["fd00:96::6"]


def test_headless_service_answers_each_ready_endpoint(zone: ClusterRecords) -> None:
    assert data(zone, "db.default.svc.cluster.local", "A") == ["10.244.1.2", "10.244.1.3"]


def test_headless_endpoint_names(zone: ClusterRecords) -> None:
    assert data(zone, "db-0.db.default.svc.cluster.local", "A") == ["10.244.1.2"]
    assert data(zone, "10-244-1-3.db.default.svc.cluster.local", "A") == ["10.244.1.3"]
    not_ready = zone.resolve("db-2.db.default.svc.cluster.local", "A")
    assert not_ready is not None and not_ready.rcode == "NXDOMAIN"


def test_endpoint_names_exist_only_for_headless_services(zone: ClusterRecords) -> None:
    answer = zone.resolve("w0.web.default.svc.cluster.local", "A")
    assert answer is not None and answer.rcode == "NXDOMAIN"


def test_headless_service_without_ready_endpoints_is_nodata(zone: ClusterRecords) -> None:
    answer = zone.resolve("empty.default.svc.cluster.local", "A")
    assert answer is not None
    assert (answer.rcode, answer.answer) == ("NOERROR", [])
    assert answer.authority == [Record("cluster.local.", "SOA", 30, SOA)]


def test_publish_not_ready_addresses_names_every_endpoint() -> None:
    svc = service("db", clusterIP="None", publishNotReadyAddresses=True)
    zone = ClusterRecords.build([svc], SLICES[:1])
    assert data(zone, "db.default.svc.cluster.local", "A") == [
        "10.244.1.2", "10.244.1.3", "10.244.1.4"]


def test_srv_for_a_named_port_targets_the_service(zone: ClusterRecords) -> None:
    answer = zone.resolve("_http._tcp.web.default.svc.cluster.local", "SRV")
    assert answer is not None
    assert [r.data for r in answer.answer] == ["0 100 80 web.default.svc.cluster.local."]
    assert answer.additional == [Record("web.default.svc.cluster.local.", "A", 30, "10.96.0.5")]
    assert data(zone, "_dns._udp.web.default.svc.cluster.local", "SRV") == [
        "0 100 53 web.default.svc.cluster.local."]


def test_srv_for_headless_targets_each_endpoint_on_its_port(zone: ClusterRecords) -> None:
    answer = zone.resolve("_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert answer is not None
    assert [r.data for r in answer.answer] == [
        "0 50 15432 10-244-1-3.db.default.svc.cluster.local.",
        "0 50 15432 db-0.db.default.svc.cluster.local."]
    assert {(r.name, r.data) for r in answer.additional} == {
        ("10-244-1-3.db.default.svc.cluster.local.", "10.244.1.3"),
        ("db-0.db.default.svc.cluster.local.", "10.244.1.2")}


@pytest.mark.parametrize("qname", [
    "_http._udp.web.default.svc.cluster.local",  # wrong protocol
    "_nope._tcp.web.default.svc.cluster.local",  # no such port
    "_8080._tcp.web.default.svc.cluster.local",  # unnamed ports get no SRV
], ids=["protocol", "port", "unnamed"])
def test_srv_for_unknown_ports_is_nxdomain(zone: ClusterRecords, qname: str) -> None:
    answer = zone.resolve(qname, "SRV")
    assert answer is not None and answer.rcode == "NXDOMAIN"


def test_srv_parent_name_is_an_empty_non_terminal(zone: ClusterRecords) -> None:
    assert data(zone, "_tcp.web.default.svc.cluster.local", "SRV") == []
    answer = zone.resolve("_sctp.web.default.svc.cluster.local", "SRV")
    assert answer is not None and answer.rcode == "NXDOMAIN"


def test_external_name_is_a_cname_for_every_type(zone: ClusterRecords) -> None:
    for qtype in ("A", "AAAA", "CNAME", "TXT"):
        answer = zone.resolve("ext.default.svc.cluster.local", qtype)
        assert answer is not None
        assert answer.answer == [Record("ext.default.svc.cluster.local.", "CNAME", 30,
                                        "example.com.")]


def test_external_name_inside_the_domain_is_followed(zone: ClusterRecords) -> None:
    assert data(zone, "alias.default.svc.cluster.local", "A") == [
        "web.default.svc.cluster.local.", "10.96.0.5"]


def test_pod_names(zone: ClusterRecords) -> None:
    assert data(zone, "10-244-1-2.default.pod.cluster.local", "A") == ["10.244.1.2"]
    assert data(zone, "fd00-1--2.any.pod.cluster.local", "AAAA") == ["fd00:1::2"]
    assert data(zone, "10-244-1-2.default.pod.cluster.local", "AAAA") == []
    for bad in ("1-2-3.default.pod.cluster.local", "300-1-1-1.default.pod.cluster.local",
                "x.1-2-3-4.default.pod.cluster.local"):
        answer = zone.resolve(bad, "A")
        assert answer is not None and answer.rcode == "NXDOMAIN", bad


def test_ptr_for_service_ips_and_headless_endpoints(zone: ClusterRecords) -> None:
    assert data(zone, "5.0.96.10.in-addr.arpa.", "PTR") == ["web.default.svc.cluster.local."]
    assert data(zone, "2.1.244.10.in-addr.arpa", "PTR") == ["db-0.db.default.svc.cluster.local."]
    assert data(zone, "3.1.244.10.in-addr.arpa", "PTR") == [
        "10-244-1-3.db.default.svc.cluster.local."]
    v6 = ".".join(reversed("fd000096000000000000000000000006")) + ".ip6.arpa"
    assert data(zone, v6, "PTR") == ["dual.prod.svc.cluster.local."]


def test_unknown_reverse_names_are_not_ours(zone: ClusterRecords) -> None:
    assert zone.resolve("9.2.244.10.in-addr.arpa", "PTR") is None  # a ClusterIP's endpoint
    assert zone.resolve("1.1.1.in-addr.arpa", "PTR") is None
    assert zone.resolve("x.1.1.1.in-addr.arpa", "PTR") is None
    known = zone.resolve("5.0.96.10.in-addr.arpa", "A")
    assert known is not None and known.answer == [] and known.rcode == "NOERROR"
    assert known.authority[0].name == "in-addr.arpa."


def test_names_are_case_insensitive_and_keep_the_askers_spelling(zone: ClusterRecords) -> None:
    answer = zone.resolve("WeB.DEFAULT.Svc.Cluster.Local.", "a")
    assert answer is not None
    assert answer.answer == [Record("WeB.DEFAULT.Svc.Cluster.Local.", "A", 30, "10.96.0.5")]
    assert data(zone, "DB-0.db.default.svc.CLUSTER.local", "A") == ["10.244.1.2"]


@pytest.mark.parametrize("qname", [
    "nope.default.svc.cluster.local",
    "web.other.svc.cluster.local",
    "web.default.svc.cluster.local.default.svc.cluster.local",
    "svc.default.svc.cluster.local",  # `svc` typed alone, with the first search domain appended
    "web.default.default.svc.cluster.local",  # `web.default` with the first search domain
    "nosuchns.svc.cluster.local",
    "anything.cluster.local",
    "broken.default.svc.cluster.local",
], ids=lambda q: q.split(".cluster")[0])
def test_unknown_names_in_the_domain_are_nxdomain_with_the_soa(zone: ClusterRecords,
                                                               qname: str) -> None:
    answer = zone.resolve(qname, "A")
    assert answer is not None
    assert (answer.rcode, answer.answer) == ("NXDOMAIN", [])
    assert answer.authority == [Record("cluster.local.", "SOA", 30, SOA)]


def test_search_path_reaches_the_service_as_a_client_walks_it(zone: ClusterRecords) -> None:
    """ndots:5 with `default.svc.cluster.local svc.cluster.local cluster.local`."""
    search = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]

    def lookup(name: str) -> list[str]:
        for suffix in search:
            answer = zone.resolve(f"{name}.{suffix}", "A")
            assert answer is not None
            if answer.rcode == "NOERROR":
                return [r.data for r in answer.answer]
        assert zone.resolve(name, "A") is None  # last, as typed: outside the domain
        return []

    assert lookup("web") == ["10.96.0.5"]
    assert lookup("web.default") == ["10.96.0.5"]
    assert lookup("web.default.svc") == ["10.96.0.5"]
    assert lookup("dual.prod") == ["10.96.0.6"]
    assert lookup("dual") == []


def test_existing_names_with_other_types_are_nodata(zone: ClusterRecords) -> None:
    for qname, qtype in [("web.default.svc.cluster.local", "AAAA"),
                         ("web.default.svc.cluster.local", "MX"),
                         ("web.default.svc.cluster.local", "TYPE65"),
                         ("_http._tcp.web.default.svc.cluster.local", "A"),
                         ("default.svc.cluster.local", "A"),  # a namespace with services
                         ("svc.cluster.local", "A"), ("pod.cluster.local", "A")]:
        answer = zone.resolve(qname, qtype)
        assert answer is not None, qname
        assert (answer.rcode, answer.answer) == ("NOERROR", []), (qname, qtype)
        assert [r.rtype for r in answer.authority] == ["SOA"]


def test_names_outside_the_domain_are_not_ours(zone: ClusterRecords) -> None:
    for qname in ("example.com", "web", "web.default", "cluster.local.example.com", "local"):
        assert zone.resolve(qname, "A") is None


def test_apex_and_specification_records(zone: ClusterRecords) -> None:
    assert data(zone, "cluster.local", "SOA") == [SOA]
    assert data(zone, "cluster.local", "NS") == ["ns.dns.cluster.local."]
    assert data(zone, "dns-version.cluster.local", "TXT") == ['"1.1.0"']
    named = ClusterRecords.build([], [], nameservers=["10.96.0.10"])
    assert data(named, "ns.dns.cluster.local", "A") == ["10.96.0.10"]


def test_custom_domain_and_ttl() -> None:
    zone = ClusterRecords.build(SERVICES, SLICES, domain="Corp.Example.", ttl=5)
    answer = zone.resolve("web.default.svc.corp.example", "A")
    assert answer is not None and answer.answer[0].ttl == 5
    assert zone.resolve("web.default.svc.cluster.local", "A") is None
    miss = zone.resolve("x.corp.example", "A")
    assert miss is not None and miss.authority[0].data.endswith(" 5")


def test_bad_objects_are_skipped() -> None:
    zone = ClusterRecords.build(
        [{"metadata": {}}, {"spec": {}}, service("x", type="ExternalName"),
         service("ok", clusterIP="10.96.0.9", ports=[{"name": "p"}])] + SERVICES[:1],
        [{"metadata": {"namespace": "default", "labels": {
            "kubernetes.io/service-name": "web"}}, "endpoints": None}])
    assert list(zone.services) == [("default", "web")]
