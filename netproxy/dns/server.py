"""The DNS wire protocol over UDP and TCP, on one address and port, answering from the records.

`DNSServer.receive` answers a query synchronously from the cluster records (no task on the hot
path) and caches the reply by the query's bytes minus its ID until `invalidate()`, so repeated
questions skip parsing and rendering. Names outside the cluster domain, unknown reverse names and
ExternalName targets outside it go to the `Forwarder` on a task. With no upstream those get
SERVFAIL, as CoreDNS answers with Kubernetes' Corefile minus its `forward` plugin (its kubernetes
plugin passes the query on, and no next plugin is SERVFAIL). UDP answers fit the client's EDNS
size (512 without EDNS, at most 1232) or are truncated with TC set, so the client retries over
TCP. A packet that does not parse gets FORMERR when its header is readable and is dropped
otherwise; responses (QR set) are dropped. Bound to a wildcard address, UDP replies leave from
the address the query was sent to (IP_PKTINFO), as resolvers require.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from netproxy.dns.records import Answer

if TYPE_CHECKING:  # the forwarder (and dnspython's resolver half) loads only with upstreams
    from netproxy.dns.upstream import Forwarder

log = logging.getLogger(__name__)
Resolve = Callable[[str, str], Answer | None]

MAX_UDP = 1232  # the DNS flag day 2020 EDNS size: no IP fragmentation on common paths
CACHE_BYTES = 4 << 20  # cached replies, keys included; full: start over
TCP_IDLE = 10.0  # seconds a TCP connection may sit idle between queries
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python 3.11 lacks the name
_REFUSED_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}


@dataclass
class Pending:
    """A query that needs the upstreams: all of it, or the outside target of a CNAME."""

    query: dns.message.Message
    response: dns.message.Message | None = None  # the local part, when chasing `target`
    target: str = ""


class DNSServer:
    """Serve `resolve` on address:port (port 0 picks one for both transports)."""

    def __init__(self, resolve: Resolve, *, address: str = "127.0.0.1", port: int = 53,
                 forwarder: Forwarder | None = None) -> None:
        self.resolve = resolve
        self.address = address
        self.port = port  # the bound port once started
        self.forwarder = forwarder
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # forwarding and TCP work, owned by loop
        self._writers: set[asyncio.StreamWriter] = set()
        # Local replies by query-without-ID: a hit skips parsing and rendering. Owned by the loop.
        self._cache: dict[bytes, bytes] = {}
        self._cache_bytes = 0

    def __repr__(self) -> str:
        return (f"<DNSServer {self.address}:{self.port} "
                f"forwarder={self.forwarder!r} pending={len(self._tasks)}>")

    # -- answering ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget cached replies: call it whenever what `resolve` answers may have changed."""
        self._cache.clear()
        self._cache_bytes = 0

    def receive(self, wire: bytes, *, tcp: bool = False) -> bytes | Pending | None:
        """Answer now from the records: the reply, a Pending for the upstreams, or None (drop)."""
        key = wire[2:] + (b"t" if tcp else b"u")  # all of the query but its ID
        cached = self._cache.get(key)
        if cached is not None:
            return wire[:2] + cached
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - any malformed packet: FORMERR or drop, never die
            return _formerr(wire)
        if query.flags & dns.flags.QR:
            return None
        reply = self._answer(query, tcp)
        if isinstance(reply, bytes):
            if self._cache_bytes + len(reply) > CACHE_BYTES:
                self.invalidate()
            self._cache[key] = reply[2:]
            self._cache_bytes += len(key) + len(reply)
        return reply

    def _answer(self, query: dns.message.Message, tcp: bool) -> bytes | Pending:
        response = dns.message.make_response(query, recursion_available=bool(self.forwarder),
                                             our_payload=MAX_UDP)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        elif (query.question[0].rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY)
              or query.question[0].rdtype in _REFUSED_TYPES):
            response.set_rcode(dns.rcode.REFUSED)
        else:
            question = query.question[0]
            qtype = dns.rdatatype.to_text(question.rdtype)
            answer = self.resolve(question.name.to_text(), qtype)
            if answer is None and self.forwarder is None:
                response.set_rcode(dns.rcode.SERVFAIL)
                return _encode(query, response, tcp)
            if answer is None:
                return Pending(query)
            _fill(response, answer)
            response.flags |= dns.flags.AA
            last = answer.answer[-1] if answer.answer else None
            if (last is not None and last.rtype == "CNAME" and qtype not in ("CNAME", "ANY")
                    and self.forwarder is not None and self.resolve(last.data, qtype) is None):
                return Pending(query, response, last.data)
        return _encode(query, response, tcp)

    async def complete(self, pending: Pending, *, tcp: bool = False) -> bytes:
        """Finish a Pending through the forwarder (SERVFAIL when there is none or it fails)."""
        query = pending.query
        if pending.response is not None:
            response = pending.response
            assert self.forwarder is not None
            outside = await self.forwarder.forward(
                dns.message.make_query(pending.target, query.question[0].rdtype))
            if outside is not None:
                response.answer += outside.answer
                response.set_rcode(outside.rcode())
            return _encode(query, response, tcp)
        upstream = await self.forwarder.forward(query) if self.forwarder else None
        if upstream is None:
            response = dns.message.make_response(query, recursion_available=bool(self.forwarder),
                                                 our_payload=MAX_UDP)
            response.set_rcode(dns.rcode.SERVFAIL)
            return _encode(query, response, tcp)
        upstream.id = query.id
        upstream.flags |= dns.flags.RA
        return _encode(query, upstream, tcp)

    async def handle(self, wire: bytes, *, tcp: bool = False) -> bytes | None:
        """One query in, its reply out (None: drop it)."""
        result = self.receive(wire, tcp=tcp)
        if isinstance(result, Pending):
            return await self.complete(result, tcp=tcp)
        return result

    # -- serving -----------------------------------------------------------------------------

    async def start(self, *,
                    sockets: tuple[socket.socket, socket.socket] | None = None) -> None:
        """Listen on `bind_sockets(address, port)`, or on the given (udp, tcp) sockets."""
        udp, tcp = sockets or bind_sockets(self.address, self.port)
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        self._udp, self.port = udp, udp.getsockname()[1]
        asyncio.get_running_loop().add_reader(udp.fileno(), self._readable)
        log.info("dns: serving on %s:%d (udp, tcp), forwarder=%r", self.address, self.port,
                 self.forwarder)

    async def close(self) -> None:
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers):
                writer.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _readable(self) -> None:
        """Drain the UDP socket: answer local names inline, forward the rest on tasks."""
        sock = self._udp
        for _ in range(64):
            if sock is None:
                return
            try:
                wire, ancdata, _, peer = sock.recvmsg(65535, socket.CMSG_SPACE(20))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("dns: udp receive failed: %r", exc)
                return
            try:
                result = self.receive(wire)
            except Exception:  # noqa: BLE001 - one bad query must not stop the server
                log.exception("dns: failed to answer a query from %s", peer)
                continue
            if isinstance(result, Pending):
                self._spawn(self._reply_later(sock, result, ancdata, peer))
            elif result is not None:
                _sendto(sock, result, ancdata, peer)

    async def _reply_later(self, sock: socket.socket, pending: Pending,
                           ancdata: list[tuple[int, int, bytes]], peer: Any) -> None:
        try:
            reply = await self.complete(pending)
        except Exception:  # noqa: BLE001
            log.exception("dns: forwarding failed")
            return
        if sock.fileno() >= 0:
            _sendto(sock, reply, ancdata, peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                wire = await asyncio.wait_for(
                    reader.readexactly(int.from_bytes(header, "big")), TCP_IDLE)
                reply = await self.handle(wire, tcp=True)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("dns: tcp connection failed")
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def bind_sockets(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on one port (port 0: one both transports can have).

    Callers may bind them elsewhere first, e.g. inside another network namespace, and hand
    them to `DNSServer.start`.
    """
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    for attempt in range(20):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.setblocking(False)
            if ip.is_unspecified and ip.version == 4:
                udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            elif ip.is_unspecified:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            udp.bind((address, port))
            tcp.setblocking(False)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, udp.getsockname()[1]))
            tcp.listen(128)
            return udp, tcp
        except OSError:
            udp.close()
            tcp.close()
            if port != 0 or attempt == 19:
                raise
    raise AssertionError("unreachable")


def _sendto(sock: socket.socket, data: bytes, ancdata: list[tuple[int, int, bytes]],
            peer: Any) -> None:
    """Reply from the address the query came to (when we learnt it); drop on a full buffer."""
    reply_from = []
    for level, kind, value in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
            _, _, destination = struct.unpack("=i4s4s", value[:12])
            reply_from = [(level, kind, struct.pack("=i4s4s", 0, destination, bytes(4)))]
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 20:
            reply_from = [(level, kind, value[:20])]
    try:
        sock.sendmsg([data], reply_from, 0, peer)
    except OSError as exc:
        log.debug("dns: udp reply to %s dropped: %r", peer, exc)


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR for a query whose header we can read; None (drop) for anything else."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    response = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
    response.flags = dns.flags.QR | (wire[2] & 0x78) << 8  # keep the opcode
    response.set_rcode(dns.rcode.FORMERR)
    return response.to_wire()


def _encode(query: dns.message.Message, response: dns.message.Message, tcp: bool) -> bytes:
    if tcp:
        limit = 65535
    elif query.edns < 0:
        limit = 512
    else:
        limit = max(512, min(query.payload, MAX_UDP))
    try:
        return response.to_wire(max_size=limit, prefer_truncation=True)
    except dns.exception.TooBig:  # not even the question fits: header and TC alone
        response.answer, response.authority, response.additional = [], [], []
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


def _fill(response: dns.message.Message, answer: Answer) -> None:
    response.set_rcode(dns.rcode.from_text(answer.rcode))
    for section, records in ((response.answer, answer.answer),
                             (response.authority, answer.authority),
                             (response.additional, answer.additional)):
        for record in records:
            rdtype = dns.rdatatype.from_text(record.rtype)
            rrset = response.find_rrset(section, _name(record.name), dns.rdataclass.IN, rdtype,
                                        create=True)
            rrset.add(_rdata(rdtype, record.data), record.ttl)


@functools.lru_cache(maxsize=8192)
def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@functools.lru_cache(maxsize=8192)
def _rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
