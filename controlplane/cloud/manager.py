"""Which cloud controllers exist, and which of them a provider can run.

`REGISTRY` lists the cloud controllers as Kubernetes' cloud-controller-manager names them
(--controllers: service, cloud-node, cloud-node-lifecycle), each with the provider part it
needs. `registrations(names, cloud)` binds the chosen ones to a provider and leaves out those
whose part the provider lacks (logged), giving the controller-manager's `Registration`s, so
`controllers.manager.run_controllers` runs them as it runs every other controller. A new
provider adds nothing here: the controllers only ask the `CloudProvider` for its parts.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controlplane.cloud import nodelifecycle, service
from controlplane.cloud.node import CloudNodeController
from controlplane.cloud.nodelifecycle import CloudNodeLifecycleController
from controlplane.cloud.provider import CloudProvider
from controlplane.cloud.service import ServiceController
from controlplane.controllers.base import Controller, ControllerContext
from controlplane.controllers.manager import Registration

log = logging.getLogger(__name__)
CloudFactory = Callable[[ControllerContext, CloudProvider], Controller]


@dataclass(frozen=True)
class CloudRegistration:
    """One cloud controller: its name and flags, its class, the provider part it needs."""

    name: str
    factory: CloudFactory
    workers_flag: str
    needs: str  # "load balancers" | "instances" | "routes", for the log line
    supported: Callable[[CloudProvider], bool]
    default_workers: int = 1
    add_flags: Callable[[argparse.ArgumentParser], None] | None = None

    def bind(self, cloud: CloudProvider | None) -> Registration:
        """This controller as the manager runs it (flags only, without a provider)."""
        def build(ctx: ControllerContext) -> Controller:
            if cloud is None:
                raise RuntimeError(f"{self.name}: no cloud provider bound")
            return self.factory(ctx, cloud)

        return Registration(self.name, build, self.workers_flag, self.default_workers,
                            add_flags=self.add_flags)


REGISTRY: tuple[CloudRegistration, ...] = (
    CloudRegistration("service", ServiceController, "concurrent-service-syncs",
                      "load balancers", lambda c: c.load_balancer() is not None,
                      add_flags=service.add_flags),
    CloudRegistration("cloud-node", CloudNodeController, "concurrent-node-syncs",
                      "instances", lambda c: c.instances_v2() is not None),
    CloudRegistration("cloud-node-lifecycle", CloudNodeLifecycleController,
                      "concurrent-node-lifecycle-syncs", "instances",
                      lambda c: c.instances_v2() is not None,
                      add_flags=nodelifecycle.add_flags),
)


def unbound(registry: Sequence[CloudRegistration] = REGISTRY) -> list[Registration]:
    """The controllers as `controllers.manager.add_flags` and `enabled` see them."""
    return [reg.bind(None) for reg in registry]


def registrations(chosen: Sequence[Registration], cloud: CloudProvider,
                  registry: Sequence[CloudRegistration] = REGISTRY) -> list[Registration]:
    """The chosen controllers bound to `cloud`, without those it cannot serve."""
    names = {reg.name for reg in chosen}
    bound = []
    for reg in registry:
        if reg.name not in names:
            continue
        if not reg.supported(cloud):
            log.info("controller %s not started: cloud provider %s has no %s", reg.name,
                     cloud.provider_name(), reg.needs)
            continue
        bound.append(reg.bind(cloud))
    return bound
