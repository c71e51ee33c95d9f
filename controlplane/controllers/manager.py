"""Which controllers exist, which are enabled, and running them while leading.

`REGISTRY` is the one list of controllers: a new controller adds a `Registration` (its name for
--controllers, its class, its --concurrent-*-syncs flag and any flags of its own). Enabling
follows kube-controller-manager: `*` is every controller on by default, `name` adds one,
`-name` removes one. `run_controllers` is what the leader runs: build every controller (their
handlers must see the initial lists), start the shared informers, wait for their caches, then
run the event sink and each controller's workers until cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.client.events import EventSink
from controlplane.client.rest import RESTClient
from controlplane.controllers.base import Controller, ControllerContext, SharedInformers
from controlplane.controllers.cronjob import CronJobController
from controlplane.controllers.daemonset import DaemonSetController
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.endpointslice import EndpointSliceController
from controlplane.controllers.endpointslice import add_flags as endpointslice_flags
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.job import JobController
from controlplane.controllers.namespace import NamespaceController
from controlplane.controllers.nodeipam import NodeIpamController
from controlplane.controllers.nodeipam import add_flags as nodeipam_flags
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.nodelifecycle import add_flags as nodelifecycle_flags
from controlplane.controllers.podgc import PodGCController
from controlplane.controllers.podgc import add_flags as podgc_flags
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.serviceaccount import ServiceAccountController
from controlplane.controllers.ttlafterfinished import TTLAfterFinishedController

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """One controller as the manager knows it."""

    name: str
    factory: Callable[[ControllerContext], Controller]
    workers_flag: str  # e.g. "concurrent-deployment-syncs"
    default_workers: int = 5
    enabled_by_default: bool = True
    add_flags: Callable[[argparse.ArgumentParser], None] | None = None  # its own options

    @property
    def workers_dest(self) -> str:
        return self.workers_flag.replace("-", "_")


REGISTRY: tuple[Registration, ...] = (
    Registration("deployment", DeploymentController, "concurrent-deployment-syncs"),
    Registration("replicaset", ReplicaSetController, "concurrent-replicaset-syncs"),
    Registration("endpoint", EndpointsController, "concurrent-endpoint-syncs"),
    Registration("endpointslice", EndpointSliceController, "concurrent-service-endpoint-syncs",
                 add_flags=endpointslice_flags),
    Registration("nodeipam", NodeIpamController, "concurrent-node-cidr-syncs",
                 add_flags=nodeipam_flags),
    Registration("nodelifecycle", NodeLifecycleController, "concurrent-node-lifecycle-syncs",
                 default_workers=8, add_flags=nodelifecycle_flags),
    Registration("namespace", NamespaceController, "concurrent-namespace-syncs", 10),
    Registration("garbagecollector", GarbageCollector, "concurrent-gc-syncs", 20),
    Registration("daemonset", DaemonSetController, "concurrent-daemonset-syncs", 2),
    Registration("serviceaccount", ServiceAccountController, "concurrent-serviceaccount-syncs",
                 1),
    Registration("podgc", PodGCController, "concurrent-podgc-syncs", 1, add_flags=podgc_flags),
    Registration("job", JobController, "concurrent-job-syncs"),
    Registration("cronjob", CronJobController, "concurrent-cron-job-syncs"),
    Registration("ttl-after-finished", TTLAfterFinishedController,
                 "concurrent-ttl-after-finished-syncs"),
)


def add_flags(parser: argparse.ArgumentParser,
              registry: Sequence[Registration] = REGISTRY) -> None:
    """Add every controller's worker-count flag and its own flags."""
    for reg in registry:
        parser.add_argument(f"--{reg.workers_flag}", type=int, default=reg.default_workers,
                            metavar="N", help=f"{reg.name} objects synced concurrently")
        if reg.add_flags is not None:
            reg.add_flags(parser)


def enabled(spec: Sequence[str], registry: Sequence[Registration] = REGISTRY
            ) -> list[Registration]:
    """The registrations a --controllers list selects; raise ValueError naming a bad one."""
    known = {reg.name: reg for reg in registry}
    chosen: set[str] = set()
    removed: set[str] = set()
    for item in (s.strip() for s in spec):
        if not item:
            continue
        if item == "*":
            chosen |= {reg.name for reg in registry if reg.enabled_by_default}
            continue
        name = item[1:] if item.startswith("-") else item
        if name not in known:
            raise ValueError(f"{name!r} is not in the list of known controllers: "
                             f"{', '.join(sorted(known))}")
        (removed if item.startswith("-") else chosen).add(name)
    return [reg for reg in registry if reg.name in chosen - removed]


async def run_controllers(client: RESTClient, registrations: Sequence[Registration],
                          options: dict[str, Any], *, host: str = "",
                          sync_timeout: float | None = None,
                          on_synced: Callable[[], None] | None = None) -> None:
    """Run the controllers until cancelled (what the leader does)."""
    informers = SharedInformers(client)
    sink = EventSink(client, host=host)
    ctx = ControllerContext(client=client, informers=informers, recorders=sink,
                            options=options)
    controllers = [(reg.factory(ctx), int(options.get(reg.workers_dest, reg.default_workers)))
                   for reg in registrations]
    informers.start()
    try:
        await informers.wait_synced(sync_timeout)
        log.info("caches synced (%r); controllers started: %s", informers,
                 ", ".join(f"{c.name}x{n}" for c, n in controllers))
        if on_synced is not None:
            on_synced()
        async with asyncio.TaskGroup() as group:
            group.create_task(sink.run(), name="event-sink")
            for controller, workers in controllers:
                group.create_task(controller.run(workers), name=f"{controller.name}-controller")
    finally:
        await informers.stop()
