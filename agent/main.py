"""`pinnace agent`: the node agent (kubelet). Runs the pods bound to this node through the CRI.

Flags follow the kubelet's names where one exists. SIGTERM stops the agent and leaves the
containers running (they are adopted by the next start), as the kubelet does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.agent import Agent
from agent.config import AgentConfig
from agent.gc import flags as gc_flags
from agent.gc import validate as validate_gc
from agent.node import NodeManager
from agent.node.config import CLOUD_PROVIDERS, NodeConfig, parse_taints
from controlplane.client import kubeconfig
from controlplane.client.rest import RESTClient
from cri.containerd_client import ContainerdClient
from cri.runtime import RuntimeClient

if TYPE_CHECKING:
    from agent.images.preload import PreloadResult
    from agent.server import AgentServer

log = logging.getLogger("pinnace.agent")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace agent", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True, type=Path)
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--node-ip", help="this node's InternalIP (default 127.0.0.1)")
    p.add_argument("--containerd", default="/run/containerd/containerd.sock",
                   help="containerd's socket (the CRI endpoint)")
    p.add_argument("--root-dir", type=Path, default=Path("/var/lib/pinnace/agent"))
    p.add_argument("--pod-log-dir", type=Path, default=Path("/var/log/pods"))
    p.add_argument("--cluster-dns", default="", help="comma-separated DNS server IPs")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--pod-cidr", default="")
    p.add_argument("--cni-conf-dir", type=Path, default=Path("/etc/cni/net.d"))
    p.add_argument("--images-dir", type=Path, help="image tars to import at start")
    p.add_argument("--port", type=int, default=10250, help="the agent's HTTPS port (0: any)")
    p.add_argument("--address", default="0.0.0.0", help="the address the HTTPS server binds")
    p.add_argument("--tls-cert-file", type=Path, help="the agent's serving certificate")
    p.add_argument("--tls-private-key-file", type=Path)
    p.add_argument("--client-ca-file", type=Path,
                   help="CA of the clients allowed to call the agent (the apiserver)")
    p.add_argument("--node-labels", default="", help="k=v,k2=v2")
    p.add_argument("--register-with-taints", default="", metavar="TAINTS",
                   help="key=value:Effect,... set on the Node when it is registered (only then)")
    p.add_argument("--cloud-provider", default="", metavar="PROVIDER",
                   help='"external": register tainted node.cloudprovider.kubernetes.io/'
                        "uninitialized for a cloud-controller-manager to initialise; "
                        '"" (default): no cloud')
    p.add_argument("-v", "--v", type=int, default=1)
    gc_flags.add_flags(p)
    return p


def config_of(args: argparse.Namespace) -> AgentConfig:
    labels = dict(kv.split("=", 1) for kv in args.node_labels.split(",") if "=" in kv)
    return AgentConfig(
        node_name=args.node_name, node_ip=args.node_ip or "127.0.0.1",
        containerd=args.containerd,
        root_dir=args.root_dir, log_dir=args.pod_log_dir,
        cluster_dns=tuple(s for s in args.cluster_dns.split(",") if s),
        cluster_domain=args.cluster_domain, pod_cidr=args.pod_cidr,
        cni_conf_dir=args.cni_conf_dir, images_dir=args.images_dir, port=args.port,
        node_labels=labels, gc=gc_flags.policy_of(args))


def node_config_of(config: AgentConfig, args: argparse.Namespace) -> NodeConfig:
    """The node manager's part; raises ValueError on a bad --register-with-taints or
    --cloud-provider (checked before anything starts)."""
    if args.cloud_provider not in CLOUD_PROVIDERS:
        raise ValueError(f"unknown --cloud-provider {args.cloud_provider!r}: only \"external\" "
                         'or "" (none) are supported')
    return NodeConfig(
        node_name=config.node_name, node_ip=config.node_ip, root_dir=config.root_dir,
        cni_conf_dir=config.cni_conf_dir, pod_cidr=config.pod_cidr, labels=config.node_labels,
        kubelet_port=config.port, register_with_taints=parse_taints(args.register_with_taints),
        cloud_provider=args.cloud_provider, provided_node_ip=args.node_ip or "")


async def serve(config: AgentConfig, args: argparse.Namespace, runtime: RuntimeClient,
                pods: Callable[[], Iterable[dict[str, Any]]]) -> AgentServer | None:
    """Start the logs/exec/attach server when TLS files were given (else say why not; its
    modules, aiohttp's server half and prometheus_client, are then never loaded)."""
    if not (args.tls_cert_file and args.tls_private_key_file and args.client_ca_file):
        log.warning("no --tls-cert-file/--tls-private-key-file/--client-ca-file: not serving "
                    "logs, exec and attach")
        return None
    from agent.server import AgentServer

    server = AgentServer(runtime, node_name=config.node_name, log_root=config.log_dir,
                         pods=pods)
    await server.start(cert=args.tls_cert_file, key=args.tls_private_key_file,
                       client_ca=args.client_ca_file, host=args.address, port=config.port)
    return server


async def preload_images(config: AgentConfig) -> PreloadResult | None:
    """Import --images-dir's archives (the archive code is loaded only on nodes that use it:
    it is a few hundred kB of the agent's resident memory)."""
    if config.images_dir is None:
        return None
    from agent.images import preload

    return await preload.import_directory(config.images_dir, config.containerd)


def report_preloaded(result: PreloadResult, agent: Agent) -> None:
    """Failures as events on the Node; the imported images pinned against image GC (an
    air-gapped node could not pull them back)."""
    from agent.images import preload

    preload.report(result, agent.recorder, agent.config.node_name)
    agent.gc.pin(result.imported)


async def run(config: AgentConfig, node_config: NodeConfig, kubeconfig_path: Path,
              args: argparse.Namespace) -> None:
    log.info("effective configuration: %s", config)
    preloaded = await preload_images(config)
    client = RESTClient(kubeconfig.load(kubeconfig_path), user_agent="pinnace-agent")
    runtime = RuntimeClient(config.containerd)
    events = ContainerdClient(config.containerd)
    holder: list[Agent] = []
    server = await serve(config, args, runtime, lambda: holder[0].pods.list() if holder else [])
    if server is not None:
        config = dataclasses.replace(config, port=server.port)
    node = NodeManager(client, runtime, dataclasses.replace(node_config, kubelet_port=config.port))
    await node.register()
    agent = Agent(config, client, runtime, events, node_allocatable=node.allocatable)
    if preloaded is not None:
        report_preloaded(preloaded, agent)
    holder.append(agent)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(node.run(), name="node status"),
             asyncio.create_task(agent.run(), name="agent")]
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    failed = [t.exception() for t in tasks if t in done and not t.cancelled() and t.exception()]
    if server is not None:
        await server.stop()
    await client.close()
    await runtime.close()
    await events.close()
    if failed:
        raise failed[0]  # type: ignore[misc]


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    config = config_of(args)
    problems = validate_gc(config.gc)
    try:
        node_config = node_config_of(config, args)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        print(f"pinnace agent: invalid configuration: {'; '.join(problems)}", file=sys.stderr)
        return 1
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.v, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(run(config, node_config, args.kubeconfig, args))
    except (OSError, kubeconfig.KubeconfigError) as exc:
        print(f"pinnace agent: {exc}", file=sys.stderr)
        return 1
    return 0
