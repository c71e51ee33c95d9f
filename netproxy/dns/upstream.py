"""Forwarding of names outside the cluster domain to the configured upstream resolvers.

`Forwarder` is the side-effect interface the server depends on; `UpstreamForwarder` asks each
upstream in order (UDP, retried over TCP when truncated) under a fresh message ID, and returns
None when every upstream failed, which the server answers as SERVFAIL. `StaticForwarder` is the
fake for tests. A forwarder pointed back at this server would loop: CoreDNS's `loop` plugin
detects that; here the operator must not configure it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import dns.asyncquery
import dns.entropy
import dns.exception
import dns.message

log = logging.getLogger(__name__)


class Forwarder(Protocol):
    async def forward(self, query: dns.message.Message) -> dns.message.Message | None:
        """Resolve `query` elsewhere: the response (its ID may differ), or None on failure."""
        ...


def parse_upstream(text: str) -> tuple[str, int]:
    """`10.0.0.2`, `10.0.0.2:5353`, `fd00::2` or `[fd00::2]:5353` -> (address, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else 53
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


class UpstreamForwarder:
    """Forward to `upstreams` ("host[:port]") in order, each bounded by `timeout` seconds."""

    def __init__(self, upstreams: Sequence[str], *, timeout: float = 2.0) -> None:
        self.upstreams = [parse_upstream(u) for u in upstreams]
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<UpstreamForwarder {', '.join(f'{h}:{p}' for h, p in self.upstreams)}>"

    async def forward(self, query: dns.message.Message) -> dns.message.Message | None:
        outgoing = dns.message.from_wire(query.to_wire())
        outgoing.id = dns.entropy.random_16()  # the client's ID is guessable; ours is not
        for host, port in self.upstreams:
            try:
                response, _ = await dns.asyncquery.udp_with_fallback(
                    outgoing, host, timeout=self.timeout, port=port)
                return response
            except (dns.exception.DNSException, OSError, TimeoutError) as exc:
                log.warning("dns: upstream %s:%d failed for %s: %r", host, port,
                            query.question[0].name if query.question else "?", exc)
        return None


class StaticForwarder:
    """A fake upstream: `answer(query)` builds the response; every query is kept in `seen`."""

    def __init__(self, answer: Callable[[dns.message.Message], dns.message.Message | None]
                 ) -> None:
        self.answer = answer
        self.seen: list[dns.message.Message] = []

    async def forward(self, query: dns.message.Message) -> dns.message.Message | None:
        self.seen.append(query)
        return self.answer(query)
