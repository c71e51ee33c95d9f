"""Cluster DNS wired to the API: informers for Services and EndpointSlices feed the records.

The netproxy daemon owns a `ClusterDNS` built on its own Service and EndpointSlice informers
(`informers=`: one cache for the proxy and the DNS; the daemon starts and stops them) and adds
the flags with `add_flags`; without them (`run(client, config)`, tests) it runs informers of
its own, slimmed the same way (netproxy.objects). The records index is rebuilt lazily: informer
events only mark it stale, and the next query rebuilds it once, so a burst of changes costs one
rebuild. Serving starts after both caches have synced, so a fresh server never answers NXDOMAIN
for a service that exists. dnspython is loaded only when a `ClusterDNS` is made (its query half
only when upstreams are configured), so the flags cost a daemon with `--enable-dns=false`
nothing.
`python -m netproxy.dns.main --kubeconfig F` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.client import kubeconfig
from controlplane.client.informer import Informer
from controlplane.client.rest import ENDPOINTSLICES, SERVICES, RESTClient
from netproxy import objects
from netproxy.dns.records import DEFAULT_TTL, Answer, ClusterRecords

if TYPE_CHECKING:
    from netproxy.dns.upstream import Forwarder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DNSConfig:
    cluster_domain: str = "cluster.local"
    address: str = "0.0.0.0"  # a wildcard bind replies from the address each query came to
    port: int = 53
    upstreams: tuple[str, ...] = ()  # "host[:port]"; none: outside names get SERVFAIL
    ttl: int = DEFAULT_TTL


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add --cluster-domain, --dns-address, --dns-port and --upstream to a daemon's flags."""
    d = DNSConfig()
    parser.add_argument("--cluster-domain", default=d.cluster_domain,
                        help="the cluster DNS domain (default %(default)s)")
    parser.add_argument("--dns-address", default=d.address,
                        help="address the DNS server listens on (default %(default)s)")
    parser.add_argument("--dns-port", type=int, default=d.port,
                        help="UDP and TCP port of the DNS server (default %(default)s)")
    parser.add_argument("--upstream", action="append", default=[], metavar="HOST[:PORT]",
                        help="resolver for names outside the cluster domain (repeatable)")
    parser.add_argument("--dns-ttl", type=int, default=d.ttl,
                        help="TTL of cluster records, seconds (default %(default)s)")


def config_of(args: argparse.Namespace) -> DNSConfig:
    return DNSConfig(cluster_domain=args.cluster_domain, address=args.dns_address,
                     port=args.dns_port, upstreams=tuple(args.upstream), ttl=args.dns_ttl)


class ClusterDNS:
    """The informers, the records built from their caches, and the server answering from them."""

    def __init__(self, client: RESTClient, config: DNSConfig, *,
                 forwarder: Forwarder | None = None,  # forwarder: None for tests
                 informers: tuple[Informer, Informer] | None = None) -> None:
        self.config = config
        # (Services, EndpointSlices): the caller's, which it starts and stops, or our own.
        self._own_informers = informers is None
        self.services, self.slices = informers or (
            Informer(client, SERVICES, transform=objects.service),
            Informer(client, ENDPOINTSLICES, transform=objects.endpoint_slice))
        if forwarder is None and config.upstreams:
            from netproxy.dns.upstream import UpstreamForwarder

            forwarder = UpstreamForwarder(config.upstreams)
        from netproxy.dns.server import DNSServer  # dnspython: loaded when DNS is served

        self.server = DNSServer(self.resolve, address=config.address, port=config.port,
                                forwarder=forwarder)
        address = ipaddress.ip_address(config.address)
        self._nameservers = () if address.is_unspecified else (config.address,)
        self._records: ClusterRecords | None = None  # None: stale; owned by the event loop
        for informer in (self.services, self.slices):
            informer.add_handlers(on_add=self._changed, on_update=lambda _o, _n: self._stale(),
                                  on_delete=self._changed)

    def __repr__(self) -> str:
        return f"<ClusterDNS {self.config.cluster_domain} {self.server!r}>"

    def _changed(self, _obj: object) -> None:
        self._stale()

    def _stale(self) -> None:
        self._records = None
        self.server.invalidate()

    @property
    def records(self) -> ClusterRecords:
        """The current index, rebuilt from the caches when something changed since."""
        if self._records is None:
            self._records = ClusterRecords.build(
                self.services.store.values(), self.slices.store.values(),
                domain=self.config.cluster_domain, ttl=self.config.ttl,
                serial=int(time.time()), nameservers=self._nameservers)
        return self._records

    def resolve(self, qname: str, qtype: str) -> Answer | None:
        return self.records.resolve(qname, qtype)

    async def start(self, *, sync_timeout: float | None = None) -> None:
        """Start the informers (our own), wait for both caches, then listen."""
        if self._own_informers:
            self.services.start()
            self.slices.start()
        try:
            await self.services.wait_synced(sync_timeout)
            await self.slices.wait_synced(sync_timeout)
            await self.server.start()
        except BaseException:
            await self.stop()
            raise
        log.info("dns: %s on %s:%d, upstreams=%s, ttl=%d", self.config.cluster_domain,
                 self.config.address, self.server.port, list(self.config.upstreams),
                 self.config.ttl)

    async def stop(self) -> None:
        await self.server.close()
        if self._own_informers:
            await self.services.stop()
            await self.slices.stop()


async def run(client: RESTClient, config: DNSConfig, *,
              ready: asyncio.Event | None = None) -> None:
    """Serve cluster DNS until cancelled; set `ready` once the caches synced and it listens."""
    cluster_dns = ClusterDNS(client, config)
    await cluster_dns.start()
    try:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await cluster_dns.stop()


async def _serve(kubeconfig_path: str, config: DNSConfig) -> None:
    client = RESTClient(kubeconfig.load(kubeconfig_path), user_agent="pinnace-dns")
    try:
        await run(client, config)
    finally:
        await client.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m netproxy.dns.main",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("-v", action="count", default=1, help="more logging")
    add_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.v < 2 else logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(args.kubeconfig, config_of(args)))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError, kubeconfig.KubeconfigError) as exc:
        print(f"pinnace dns: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
