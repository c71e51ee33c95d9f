"""`pinnace scheduler`: assign pending pods to nodes, as kube-scheduler does.

Reads the cluster through informers (pods that are not terminal, nodes, namespaces, services,
replica sets), writes bindings, PodScheduled conditions and events. With leader election (the
default) only the holder of the Lease schedules; each term starts from fresh caches. Flags
follow kube-scheduler's; `--scheduler-name` renames the (first) profile, so a second scheduler
can run beside the default one and take only its own pods. SIGTERM/SIGINT stop it cleanly and
release the Lease if held, so a standby takes over at once rather than after its expiry.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import uvloop

from controlplane.client import kubeconfig
from controlplane.client.events import EventSink
from controlplane.client.informer import Informer
from controlplane.client.leaderelection import LeaderElector, run_elected
from controlplane.client.rest import (
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SERVICES,
    RESTClient,
)
from controlplane.scheduler import config as configuration
from controlplane.scheduler.scheduler import Scheduler

log = logging.getLogger("pinnace.scheduler")
Object = dict[str, Any]
NON_TERMINAL = "status.phase!=Succeeded,status.phase!=Failed"
SHUTDOWN_GRACE = 3.0  # seconds for bindings and events in flight when a term ends


class RESTSchedulerAPI:
    """The scheduler's writes over the REST client."""

    def __init__(self, client: RESTClient) -> None:
        self.client = client

    async def bind(self, namespace: str, name: str, node: str) -> None:
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        await self.client.create(PODS, body, namespace, name=name, subresource="binding")

    async def patch_pod_status(self, namespace: str, name: str, patch: Object) -> None:
        await self.client.patch(PODS, name, patch, namespace, subresource="status",
                                patch_type="application/strategic-merge-patch+json")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace scheduler", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True, help="kubeconfig to reach the apiserver")
    p.add_argument("--config", help="KubeSchedulerConfiguration YAML file")
    p.add_argument("--scheduler-name", help="the profile's schedulerName (default-scheduler)")
    p.add_argument("--leader-elect", type=_bool, nargs="?", const=True, default=None,
                   help="campaign for the Lease before scheduling (true)")
    p.add_argument("--lease-name", "--leader-elect-resource-name", dest="lease_name",
                   help="the Lease name (kube-scheduler)")
    p.add_argument("--leader-elect-resource-namespace", dest="lease_namespace",
                   help="the Lease namespace (kube-system)")
    p.add_argument("--leader-elect-lease-duration", type=float, help="seconds (15)")
    p.add_argument("--leader-elect-renew-deadline", type=float, help="seconds (10)")
    p.add_argument("--leader-elect-retry-period", type=float, help="seconds (2)")
    p.add_argument("-v", "--v", type=int, default=1, help="log verbosity (0-4)")
    return p


def effective_config(args: argparse.Namespace) -> configuration.SchedulerConfig:
    """The file (or defaults) with the flags applied on top."""
    config = configuration.load(args.config) if args.config else configuration.SchedulerConfig()
    if args.scheduler_name:
        config.profiles[0].scheduler_name = args.scheduler_name
    if args.leader_elect is not None:
        config.leader_elect = args.leader_elect
    for flag, attr in (("lease_name", "lease_name"), ("lease_namespace", "lease_namespace"),
                       ("leader_elect_lease_duration", "lease_duration"),
                       ("leader_elect_renew_deadline", "renew_deadline"),
                       ("leader_elect_retry_period", "retry_period")):
        if getattr(args, flag) is not None:
            setattr(config, attr, getattr(args, flag))
    return config


async def run_scheduler(client: RESTClient, config: configuration.SchedulerConfig,
                        identity: str, on_synced: Callable[[], None] = lambda: None) -> None:
    """One term: fresh informers and caches, then schedule until cancelled."""
    scheduler = Scheduler(RESTSchedulerAPI(client), config,
                          sink=EventSink(client, instance=identity))
    pods = Informer(client, PODS, field_selector=NON_TERMINAL)
    pods.add_handlers(on_add=scheduler.on_pod_add, on_update=scheduler.on_pod_update,
                      on_delete=scheduler.on_pod_delete)
    nodes = Informer(client, NODES)
    nodes.add_handlers(on_add=scheduler.on_node_add, on_update=scheduler.on_node_update,
                       on_delete=scheduler.on_node_delete)
    namespaces = Informer(client, NAMESPACES)
    namespaces.add_handlers(on_add=lambda o: scheduler.on_namespace(None, o),
                            on_update=scheduler.on_namespace,
                            on_delete=lambda o: scheduler.on_namespace(o, None))
    services = Informer(client, SERVICES)
    services.add_handlers(on_add=lambda o: scheduler.on_service(None, o),
                          on_update=scheduler.on_service,
                          on_delete=lambda o: scheduler.on_service(o, None))
    replica_sets = Informer(client, REPLICASETS)
    replica_sets.add_handlers(on_add=lambda o: scheduler.on_replica_set(None, o),
                              on_update=scheduler.on_replica_set,
                              on_delete=lambda o: scheduler.on_replica_set(o, None))
    informers = [namespaces, services, replica_sets, nodes, pods]
    for informer in informers:
        informer.start()
    recorder = asyncio.create_task(scheduler.sink.run(), name="event recorder")
    try:
        for informer in informers:
            await informer.wait_synced()
        log.info("caches synced (%d nodes, %d pending pods); scheduling",
                 len(nodes.store), len(scheduler.pending))
        on_synced()
        await scheduler.loop()
    finally:
        scheduler.queue.close()
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)
        try:  # bindings in flight finish; queued events get a moment (the API may be gone)
            await asyncio.wait_for(scheduler.settle(), SHUTDOWN_GRACE)
            await scheduler.sink.drain(SHUTDOWN_GRACE)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.info("shutdown left writes undone: %r", exc)
        for informer in informers:
            await informer.stop()


async def serve(args: argparse.Namespace, config: configuration.SchedulerConfig) -> None:
    client = RESTClient(kubeconfig.load(args.kubeconfig), user_agent="pinnace-scheduler")
    identity = f"{socket.gethostname()}_{uuid.uuid4()}"
    elector = LeaderElector(client, name=config.lease_name, namespace=config.lease_namespace,
                            identity=identity, lease_duration=config.lease_duration,
                            renew_deadline=config.renew_deadline,
                            retry_period=config.retry_period) if config.leader_elect else None
    try:
        await run_elected("scheduler", elector,
                          lambda on_synced: run_scheduler(client, config, identity, on_synced))
    finally:
        await client.close()


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.v, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = effective_config(args)
        kubeconfig.load(args.kubeconfig)
    except (configuration.ConfigError, kubeconfig.KubeconfigError) as exc:
        print(f"pinnace scheduler: {exc}", file=sys.stderr)
        return 1
    for profile in config.profiles:
        log.info("profile %s: filters=%s scores=%s preemption=%s", profile.scheduler_name,
                 ",".join(profile.filters),
                 ",".join(f"{n}:{w}" for n, w in profile.scores), profile.preemption)
    log.info("leader election: %s (lease %s/%s); backoff %.0fs..%.0fs",
             config.leader_elect, config.lease_namespace, config.lease_name,
             config.pod_initial_backoff, config.pod_max_backoff)
    uvloop.run(serve(args, config))  # as the apiserver: a cheaper loop for all that HTTP
    return 0
