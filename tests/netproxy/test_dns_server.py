"""The DNS server on 127.0.0.1, a random port: UDP and TCP, truncation, bad packets, upstreams."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from netproxy.dns.records import ClusterRecords
from netproxy.dns.server import DNSServer
from netproxy.dns.upstream import StaticForwarder, UpstreamForwarder, parse_upstream

LOCAL = "127.0.0.1"
Object = dict[str, Any]


def service(name: str, **spec: Any) -> Object:
    return {"metadata": {"namespace": "default", "name": name}, "spec": spec}


def many_endpoints(count: int, svc: str = "big") -> Object:
    return {"metadata": {"namespace": "default", "name": "big-1",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.244.{i // 250}.{i % 250 + 1}"]}
                          for i in range(count)]}


ZONE = ClusterRecords.build(
    [service("web", clusterIP="10.96.0.5", ports=[{"name": "http", "port": 80}]),
     service("big", clusterIP="None"),
     service("ext", type="ExternalName", externalName="www.example.com")],
    [many_endpoints(120)])


def example_upstream(query: dns.message.Message) -> dns.message.Message | None:
    """A fake resolver that knows www.example.com (A 192.0.2.7) and nothing else."""
    response = dns.message.make_response(query)
    question = query.question[0]
    if question.name == dns.name.from_text("www.example.com") and question.rdtype == 1:
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "192.0.2.7"))
    else:
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response


@pytest.fixture
async def server() -> AsyncIterator[DNSServer]:
    srv = DNSServer(ZONE.resolve, address=LOCAL, port=0)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


async def udp(srv: DNSServer, name: str, rdtype: str = "A", **kw: Any) -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype, **kw), LOCAL,
                                    timeout=2, port=srv.port)


async def tcp(srv: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.tcp(dns.message.make_query(name, rdtype), LOCAL, timeout=2,
                                    port=srv.port)


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))


async def test_udp_and_tcp_answer_a_service(server: DNSServer) -> None:
    for ask in (udp, tcp):
        response = await ask(server, "web.default.svc.cluster.local")
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA
        assert addresses(response) == ["10.96.0.5"]
        assert response.answer[0].ttl == 30


async def test_srv_carries_the_target_address(server: DNSServer) -> None:
    response = await udp(server, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [rr.to_text() for rr in response.answer[0]] == [
        "0 100 80 web.default.svc.cluster.local."]
    assert [rr.to_text() for rrset in response.additional for rr in rrset] == ["10.96.0.5"]


async def test_nxdomain_and_nodata_carry_the_soa(server: DNSServer) -> None:
    missing = await udp(server, "nope.default.svc.cluster.local")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority[0].rdtype == dns.rdatatype.SOA
    assert missing.authority[0].ttl == 30
    nodata = await tcp(server, "web.default.svc.cluster.local", "AAAA")
    assert (nodata.rcode(), nodata.answer) == (dns.rcode.NOERROR, [])
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA


async def test_question_case_is_echoed(server: DNSServer) -> None:
    response = await udp(server, "WeB.Default.SVC.cluster.local")
    assert response.question[0].name.to_text() == "WeB.Default.SVC.cluster.local."
    assert addresses(response) == ["10.96.0.5"]


async def test_large_udp_answers_are_truncated_and_tcp_has_them_all(server: DNSServer) -> None:
    query = dns.message.make_query("big.default.svc.cluster.local", "A")
    wire = await server.handle(query.to_wire())
    assert wire is not None and len(wire) <= 512
    truncated = dns.message.from_wire(wire)
    assert truncated.flags & dns.flags.TC
    with_edns = await udp(server, "big.default.svc.cluster.local", use_edns=0, payload=4096)
    assert with_edns.flags & dns.flags.TC  # 120 answers need more than our 1232 bytes
    response, used_tcp = await dns.asyncquery.udp_with_fallback(query, LOCAL, timeout=2,
                                                                port=server.port)
    assert used_tcp and len(addresses(response)) == 120


async def test_edns_raises_the_udp_limit(server: DNSServer) -> None:
    zone = ClusterRecords.build([service("mid", clusterIP="None")], [many_endpoints(40, "mid")])
    srv = DNSServer(zone.resolve, address=LOCAL, port=0)
    plain = await srv.handle(dns.message.make_query("mid.default.svc.cluster.local", "A")
                             .to_wire())
    edns = await srv.handle(dns.message.make_query("mid.default.svc.cluster.local", "A",
                                                   use_edns=0, payload=1232).to_wire())
    assert plain is not None and edns is not None
    assert dns.message.from_wire(plain).flags & dns.flags.TC
    answer = dns.message.from_wire(edns)
    assert not answer.flags & dns.flags.TC and len(addresses(answer)) == 40
    assert answer.edns == 0 and answer.payload == 1232


async def test_malformed_packets_get_formerr_or_are_dropped(server: DNSServer) -> None:
    def exchange(packets: list[bytes]) -> list[bytes]:
        """Send from a blocking socket (off the event loop); collect replies for 0.5 s."""
        replies = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            for packet in packets:
                sock.sendto(packet, (LOCAL, server.port))
            try:
                while True:
                    replies.append(sock.recv(4096))
            except TimeoutError:
                return replies

    garbage = b"\x12\x34" + b"\x01\x00" + b"\xff" * 20
    [reply] = await asyncio.to_thread(exchange, [garbage])
    assert dns.message.from_wire(reply).id == 0x1234
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    dropped = [b"", b"\x00", b"short", b"\x12\x34\x81\x80" + b"\xff" * 20]  # short; a response
    assert await asyncio.to_thread(exchange, dropped) == []
    # A TCP client sending garbage gets FORMERR too, and the server lives on.
    reader, writer = await asyncio.open_connection(LOCAL, server.port)
    writer.write(b"\x00\x0e" + b"\xab\xcd\x01\x00" + b"\x00\x05" * 5)
    size = int.from_bytes(await reader.readexactly(2), "big")
    assert dns.message.from_wire(await reader.readexactly(size)).rcode() == dns.rcode.FORMERR
    writer.close()
    assert addresses(await udp(server, "web.default.svc.cluster.local")) == ["10.96.0.5"]


async def test_several_queries_on_one_tcp_connection(server: DNSServer) -> None:
    reader, writer = await asyncio.open_connection(LOCAL, server.port)
    try:
        for name in ("web.default.svc.cluster.local", "nope.default.svc.cluster.local"):
            wire = dns.message.make_query(name, "A").to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
        codes = []
        for _ in range(2):
            size = int.from_bytes(await reader.readexactly(2), "big")
            codes.append(dns.message.from_wire(await reader.readexactly(size)).rcode())
        assert codes == [dns.rcode.NOERROR, dns.rcode.NXDOMAIN]
    finally:
        writer.close()


async def test_unsupported_queries(server: DNSServer) -> None:
    notify = dns.message.make_query("cluster.local", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    chaos = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)
    axfr = dns.message.make_query("cluster.local", "AXFR")
    for query, rcode in ((notify, dns.rcode.NOTIMP), (chaos, dns.rcode.REFUSED),
                         (axfr, dns.rcode.REFUSED)):
        wire = await server.handle(query.to_wire())
        assert wire is not None and dns.message.from_wire(wire).rcode() == rcode


async def test_outside_names_without_upstreams_are_servfail(server: DNSServer) -> None:
    for name in ("www.example.com", "web", "9.9.9.9.in-addr.arpa"):
        response = await udp(server, name)
        assert response.rcode() == dns.rcode.SERVFAIL
        assert not response.flags & dns.flags.RA
    external = await udp(server, "ext.default.svc.cluster.local")
    assert [rr.to_text() for rr in external.answer[0]] == ["www.example.com."]


async def test_outside_names_are_forwarded_to_the_upstream() -> None:
    upstream = DNSServer(lambda name, qtype: None, address=LOCAL, port=0,
                         forwarder=StaticForwarder(example_upstream))
    await upstream.start()
    srv = DNSServer(ZONE.resolve, address=LOCAL, port=0,
                    forwarder=UpstreamForwarder([f"{LOCAL}:{upstream.port}"]))
    await srv.start()
    try:
        for ask in (udp, tcp):
            response = await ask(srv, "www.example.com")
            assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.RA
            assert addresses(response) == ["192.0.2.7"]
        assert (await udp(srv, "nope.example.com")).rcode() == dns.rcode.NXDOMAIN
        cluster = await udp(srv, "web.default.svc.cluster.local")
        assert addresses(cluster) == ["10.96.0.5"]
        # ExternalName: the CNAME, then its target's addresses from the upstream.
        external = await udp(srv, "ext.default.svc.cluster.local")
        assert [rrset.rdtype for rrset in external.answer] == [dns.rdatatype.CNAME,
                                                               dns.rdatatype.A]
        assert addresses(external) == ["192.0.2.7"]
    finally:
        await srv.close()
        await upstream.close()


async def test_an_unreachable_upstream_is_servfail() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind((LOCAL, 0))  # bound but never read: every query times out
        forwarder = UpstreamForwarder([f"{LOCAL}:{hole.getsockname()[1]}"], timeout=0.3)
        srv = DNSServer(ZONE.resolve, address=LOCAL, port=0, forwarder=forwarder)
        await srv.start()
        try:
            assert (await udp(srv, "www.example.com")).rcode() == dns.rcode.SERVFAIL
        finally:
            await srv.close()


async def test_wildcard_bind_replies_from_the_address_asked() -> None:
    srv = DNSServer(ZONE.resolve, address="0.0.0.0", port=0)
    await srv.start()
    try:
        for where in ("127.0.0.1", "127.0.0.2"):  # dnspython rejects a reply from elsewhere
            query = dns.message.make_query("web.default.svc.cluster.local", "A")
            response = await dns.asyncquery.udp(query, where, timeout=2, port=srv.port)
            assert addresses(response) == ["10.96.0.5"]
    finally:
        await srv.close()


async def test_close_leaves_the_port_free(server: DNSServer) -> None:
    port = server.port
    await server.close()
    again = DNSServer(ZONE.resolve, address=LOCAL, port=port)
    await again.start()
    await again.close()


def test_parse_upstream() -> None:
    assert parse_upstream("10.0.0.2") == ("10.0.0.2", 53)
    assert parse_upstream("10.0.0.2:5353") == ("10.0.0.2", 5353)
    assert parse_upstream("fd00::2") == ("fd00::2", 53)
    assert parse_upstream("[fd00::2]:5353") == ("fd00::2", 5353)


async def test_cached_replies_keep_the_id_until_invalidated() -> None:
    zones = [ZONE]
    srv = DNSServer(lambda name, qtype: zones[-1].resolve(name, qtype), address=LOCAL, port=0)

    async def web(query_id: int) -> dns.message.Message:
        query = dns.message.make_query("web.default.svc.cluster.local", "A")
        query.id = query_id
        wire = await srv.handle(query.to_wire())
        assert wire is not None
        return dns.message.from_wire(wire)

    assert addresses(await web(1)) == ["10.96.0.5"]
    zones.append(ClusterRecords.build([service("web", clusterIP="10.96.0.99")], []))
    cached = await web(2)
    assert cached.id == 2 and addresses(cached) == ["10.96.0.5"]
    srv.invalidate()
    assert addresses(await web(3)) == ["10.96.0.99"]
