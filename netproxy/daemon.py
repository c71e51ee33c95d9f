"""The running netproxy: informers feeding the proxier and the route manager, until SIGTERM.

Three informers (Services, EndpointSlices, Nodes) list and watch through the apiserver; their
handlers only record changes. They are the only ones: the cluster DNS and the health servers
read the same caches, which keep what netproxy.objects says of each object. Root tasks: the
proxier's sync runner, its canary monitor, the pod-route loop, the wait for the first list and,
unless disabled, the cluster DNS server (netproxy.dns; its failure is logged and never stops the
proxy). If one root task dies the others are stopped and the error is raised (systemd restarts
us); SIGTERM stops them all and leaves the rules in place, as kube-proxy does (`--cleanup`
removes them).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane.api.sdnotify import Readiness
from controlplane.client import kubeconfig
from controlplane.client.informer import Informer, Object
from controlplane.client.rest import ENDPOINTSLICES, NODES, SERVICES, RESTClient
from netproxy import objects
from netproxy.conntrack import ConntrackTool
from netproxy.iptables import IptablesBackend
from netproxy.proxier import Proxier, ProxierConfig
from netproxy.routes import IPRouteNetlink, RouteManager, set_sysctls

if TYPE_CHECKING:
    from netproxy.dns.main import ClusterDNS, DNSConfig
    from netproxy.healthcheck import HealthConfig
    from netproxy.ipvs.proxier import IPVSConfig

log = logging.getLogger(__name__)


async def route_loop(routes: RouteManager, nodes: Informer, wake: asyncio.Event,
                     period: float) -> None:
    """Reconcile pod routes on every Node change and every `period` seconds."""
    await nodes.wait_synced()
    while True:
        wake.clear()
        try:
            await asyncio.to_thread(routes.sync, nodes.list())
        except Exception:  # noqa: BLE001 - routes are retried on the next change or period
            log.exception("route sync failed")
        try:
            await asyncio.wait_for(wake.wait(), period)
        except TimeoutError:
            pass


async def _first_sync(proxier: Proxier, services: Informer, slices: Informer,
                      readiness: Readiness) -> None:
    await services.wait_synced()
    await slices.wait_synced()
    log.info("services and endpointslices listed: syncing")
    proxier.set_synced()
    await proxier.applied.wait()
    readiness.ready(f"{len(proxier.services)} service ports programmed")
    await asyncio.Event().wait()  # a root task: stays until cancelled


def wire(proxier: Proxier, client: RESTClient, route_wake: asyncio.Event
         ) -> tuple[Informer, Informer, Informer]:
    """The three informers, their handlers pointing at the proxier and the route loop."""
    services = Informer(client, SERVICES, transform=objects.service)
    slices = Informer(client, ENDPOINTSLICES, transform=objects.endpoint_slice)
    nodes = Informer(client, NODES, transform=objects.node)
    services.add_handlers(on_add=lambda o: proxier.on_service(None, o),
                          on_update=proxier.on_service,
                          on_delete=lambda o: proxier.on_service(o, None))
    slices.add_handlers(on_add=lambda o: proxier.on_endpointslice(None, o),
                        on_update=proxier.on_endpointslice,
                        on_delete=lambda o: proxier.on_endpointslice(o, None))

    def node_changed(node: Object) -> None:
        proxier.on_node(node)
        route_wake.set()

    nodes.add_handlers(on_add=node_changed, on_update=lambda _, n: node_changed(n),
                       on_delete=lambda _: route_wake.set())
    return services, slices, nodes


def cluster_dns(client: RESTClient, config: DNSConfig, services: Informer,
                slices: Informer) -> ClusterDNS:
    """The cluster DNS on the daemon's informers (made before they start)."""
    from netproxy.dns.main import ClusterDNS

    return ClusterDNS(client, config, informers=(services, slices))


async def serve_dns(server: ClusterDNS) -> None:
    """Cluster DNS beside the proxy; if it cannot serve, say so and keep proxying."""
    try:
        await server.start()
    except Exception:  # noqa: BLE001 - DNS trouble never takes the service rules down
        log.exception("cluster DNS stopped; services keep being proxied")
    else:
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
    await asyncio.Event().wait()


async def run(config: ProxierConfig, kubeconfig_path: Path, backend: IptablesBackend,
              dns: DNSConfig | None = None, health: HealthConfig | None = None,
              ipvs: IPVSConfig | None = None) -> None:
    """Run until SIGTERM/SIGINT (or a root task fails); serve DNS too unless `dns` is None,
    and health checks and metrics (netproxy.healthcheck) unless `health` is None."""
    log.info("effective configuration: %s backend=%s", config, backend.name)
    client_config = kubeconfig.load(kubeconfig_path)  # a bad kubeconfig fails before any change
    set_sysctls(localhost_nodeports=config.localhost_nodeports)
    client = RESTClient(client_config, user_agent="pinnace-netproxy")
    netlink = IPRouteNetlink()
    if ipvs is None:
        proxier = Proxier(config, backend, ConntrackTool(), netlink)
    else:  # IPVS mode: checks the kernel and creates kube-ipvs0, or raises OSError
        from netproxy.ipvs import proxier as ipvs_proxier

        proxier = await asyncio.to_thread(ipvs_proxier.start, config, ipvs, backend,
                                          ConntrackTool(), netlink)
    log.info("proxying %s", "/".join(await asyncio.to_thread(proxier.probe_protocols)))
    route_wake = asyncio.Event()
    informers = wire(proxier, client, route_wake)
    services, slices, nodes = informers
    servers = None
    if health is not None:
        from netproxy.healthcheck import NodeServers

        servers = NodeServers(health, proxier, config.node_name)
        servers.wire(services, nodes)
    dns_server = cluster_dns(client, dns, services, slices) if dns is not None else None
    for informer in informers:
        informer.start()
    readiness = Readiness("netproxy")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(proxier.runner.loop(), name="sync runner"),
        asyncio.create_task(proxier.monitor_canary(), name="canary"),
        asyncio.create_task(route_loop(RouteManager(netlink, config.node_name), nodes,
                                       route_wake, config.sync_period), name="routes"),
        asyncio.create_task(_first_sync(proxier, services, slices, readiness),
                            name="first sync"),
    ]
    if dns_server is not None:
        tasks.append(asyncio.create_task(serve_dns(dns_server), name="dns"))
    for name, serve in servers.tasks() if servers is not None else ():
        tasks.append(asyncio.create_task(serve(), name=name))
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping (%s)", "signal" if waiter in done else "a root task ended")
    readiness.stopping()
    for task in [*tasks, waiter]:
        task.cancel()
    await asyncio.gather(*tasks, waiter, return_exceptions=True)
    for informer in informers:
        await informer.stop()
    await client.close()
    failed = [t for t in tasks if t in done and not t.cancelled() and t.exception()]
    if failed:
        raise failed[0].exception()  # type: ignore[misc]
