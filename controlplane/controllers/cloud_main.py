"""`pinnace cloud-controller-manager`: the cloud controllers, leader-elected, over the API.

The run script, as the controller-manager's: read the flags, build the provider named by
--cloud-provider from --cloud-config (a bad one is a one-line error and exit 1, before anything
starts), log the effective configuration, then campaign for the Lease
kube-system/cloud-controller-manager (unless --leader-elect=false) and, while leading, run the
enabled cloud controllers the provider can serve (`controlplane.cloud.manager`) with
`controllers.manager.run_controllers`. Each term builds the provider afresh, so what it keeps in
memory (the local address pool) is rebuilt from the cluster, never carried over from a time
another instance led. SIGTERM or SIGINT stops, releases the lease and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import uuid
from collections.abc import Callable, Sequence

from controlplane.client import kubeconfig
from controlplane.client.rest import RESTClient
from controlplane.cloud import manager as cloud_manager
from controlplane.cloud import registry
from controlplane.controllers import manager
from controlplane.controllers.main import (
    add_leader_election_flags,
    run_leader_elected,
)

log = logging.getLogger("pinnace.cloud-controller-manager")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace cloud-controller-manager",
                                description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True, help="how to reach the apiserver")
    p.add_argument("--cloud-provider", required=True,
                   help="the cloud provider: " + ", ".join(registry.names()))
    p.add_argument("--cloud-config", default="", metavar="FILE",
                   help="the provider's configuration file")
    p.add_argument("--controllers", default="*",
                   help="comma-separated controllers: '*' for the defaults, 'foo' to enable, "
                        "'-foo' to disable; known: "
                        + ", ".join(r.name for r in cloud_manager.REGISTRY))
    add_leader_election_flags(p, "cloud-controller-manager")
    manager.add_flags(p, cloud_manager.unbound())
    p.add_argument("-v", "--v", type=int, default=1, help="log verbosity (0-4)")
    return p


async def run(args: argparse.Namespace, config_text: str,
              chosen: list[manager.Registration]) -> None:
    config = kubeconfig.load(args.kubeconfig)
    client = RESTClient(config, user_agent="pinnace-cloud-controller-manager")
    identity = f"{socket.gethostname()}_{uuid.uuid4()}"
    options = vars(args)
    log.info("cloud-controller-manager: apiserver=%s cloud-provider=%s cloud-config=%s "
             "controllers=%s leader-elect=%s identity=%s", config.server, args.cloud_provider,
             args.cloud_config or "none", ",".join(r.name for r in chosen), args.leader_elect,
             identity)

    async def lead(on_synced: Callable[[], None]) -> None:
        cloud = registry.get_cloud_provider(args.cloud_provider, config_text)
        log.info("leading with %r", cloud)
        bound = cloud_manager.registrations(chosen, cloud)
        if not bound:
            log.warning("no cloud controller can run with this provider and configuration")
            on_synced()
            await asyncio.Event().wait()  # hold the lease, doing nothing
        await manager.run_controllers(client, bound, options, host=socket.gethostname(),
                                      on_synced=on_synced)

    await run_leader_elected("cloud-controller-manager", client, args, identity, lead)


def prepare(args: argparse.Namespace) -> tuple[str, list[manager.Registration]]:
    """The config text and the chosen controllers; ValueError (one line) when either is bad."""
    chosen = manager.enabled(args.controllers.split(","), cloud_manager.unbound())
    factory = registry.factory(args.cloud_provider)
    config_text = registry.read_config(args.cloud_config)
    try:
        factory(config_text)  # validates the config
    except ValueError as exc:
        where = f"--cloud-config {args.cloud_config}: " if args.cloud_config else ""
        raise ValueError(f"{where}{exc}") from None
    return config_text, chosen


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.v, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config_text, chosen = prepare(args)
        asyncio.run(run(args, config_text, chosen))
    except (ValueError, kubeconfig.KubeconfigError) as exc:
        print(f"pinnace cloud-controller-manager: {exc}", file=sys.stderr)
        return 1
    return 0
