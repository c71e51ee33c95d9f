"""`pinnace controller-manager`: the Kubernetes controllers, leader-elected, over the API.

The run script: read flags and the kubeconfig, log the effective configuration, then campaign
for the Lease kube-system/kube-controller-manager (unless --leader-elect=false) and, while
leading, run the enabled controllers (`manager.run_controllers`). Losing the lease stops them
until it is won again. SIGTERM or SIGINT stops everything, releases the lease if we hold it
(so a standby takes over at once) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence

from controlplane.api.flags import boolean, duration
from controlplane.client import kubeconfig
from controlplane.client.leaderelection import LeaderElector, run_elected
from controlplane.client.rest import RESTClient
from controlplane.controllers import manager

log = logging.getLogger("pinnace.controller-manager")
def add_leader_election_flags(p: argparse.ArgumentParser, lease: str) -> None:
    """The --leader-elect* flags `run_leader_elected` reads; `lease` names the default Lease."""
    p.add_argument("--leader-elect", type=boolean, default=True, nargs="?", const=True,
                   metavar="true|false")
    p.add_argument("--leader-elect-lease-duration", type=duration, default=15.0)
    p.add_argument("--leader-elect-renew-deadline", type=duration, default=10.0)
    p.add_argument("--leader-elect-retry-period", type=duration, default=2.0)
    p.add_argument("--leader-elect-resource-name", default=lease)
    p.add_argument("--leader-elect-resource-namespace", default="kube-system")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace controller-manager",
                                description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True, help="how to reach the apiserver")
    p.add_argument("--controllers", default="*",
                   help="comma-separated controllers: '*' for the defaults, 'foo' to enable, "
                        "'-foo' to disable; known: "
                        + ", ".join(r.name for r in manager.REGISTRY))
    add_leader_election_flags(p, "kube-controller-manager")
    manager.add_flags(p)
    p.add_argument("-v", "--v", type=int, default=1, help="log verbosity (0-4)")
    return p


async def run(args: argparse.Namespace) -> None:
    registrations = manager.enabled(args.controllers.split(","))
    config = kubeconfig.load(args.kubeconfig)
    client = RESTClient(config, user_agent="pinnace-controller-manager")
    identity = f"{socket.gethostname()}_{uuid.uuid4()}"
    options = vars(args)
    log.info("controller-manager: apiserver=%s controllers=%s leader-elect=%s identity=%s "
             "workers=%s", config.server, ",".join(r.name for r in registrations),
             args.leader_elect, identity,
             ",".join(f"{r.workers_flag}={options[r.workers_dest]}" for r in registrations))

    async def lead(on_synced: Callable[[], None]) -> None:
        await manager.run_controllers(client, registrations, options,
                                      host=socket.gethostname(), on_synced=on_synced)

    await run_leader_elected("controller-manager", client, args, identity, lead)


async def run_leader_elected(daemon: str, client: RESTClient, args: argparse.Namespace,
                             identity: str,
                             lead: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
    """`leaderelection.run_elected` with the lease the --leader-elect-* flags name."""
    elector = LeaderElector(client, name=args.leader_elect_resource_name,
                            namespace=args.leader_elect_resource_namespace, identity=identity,
                            lease_duration=args.leader_elect_lease_duration,
                            renew_deadline=args.leader_elect_renew_deadline,
                            retry_period=args.leader_elect_retry_period)
    try:
        await run_elected(daemon, elector if args.leader_elect else None, lead)
    finally:
        await client.close()


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.v, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(run(args))
    except (ValueError, kubeconfig.KubeconfigError) as exc:
        print(f"pinnace controller-manager: {exc}", file=sys.stderr)
        return 1
    return 0
