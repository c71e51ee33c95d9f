"""The run script of `pinnace up`: each component started in dependency order behind its gate.

`start()` reads as the dependency graph: PKI first, then in parallel the network, the images,
etcd -> apiserver -> {scheduler, controller-manager}, the registry, and per node containerd ->
agent -> netproxy; last the cluster gate (every node Ready, the kubernetes service answering).
Every step prints one progress line. Each process is registered before it starts, so `down()`
finds everything: it stops processes by PID in reverse order of the tiers (agents and containerds
of all nodes at once), then removes namespaces, links and mounts. `abort()` (a signal during
`start()`) stops the registered daemons at once, so that any wait on them fails fast.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from agent.images import build, layout, registry
from pinnace.local import cleanup
from pinnace.local.containerd import Containerd
from pinnace.local.daemon import NotifiedProcess
from pinnace.local.etcd import Etcd
from pinnace.local.links import Links
from pinnace.local.netns import NetworkNamespace
from pinnace.local.process import ComponentError, Process
from pinnace.local.registry import Registry
from pinnace.local.supervisor import Supervisor
from pinnace.up import certs
from pinnace.up import plan as planning
from pinnace.up.plan import ClusterPlan, NodePlan
from pinnace.up.readiness import ClusterGate

START_TIMEOUT = 30.0  # seconds for one component to pass its gate
CLUSTER_TIMEOUT = 60.0  # seconds for the nodes to be Ready once their agents run
SIGNAL_GRACE = 10.0  # seconds for a scheduler/controller-manager to say READY=1


class Aborted(Exception):
    """`start()` was interrupted by a signal or a failure elsewhere."""


class Cluster:
    """One `pinnace up`: what it started (by tier, for teardown) and how it reports."""

    def __init__(self, plan: ClusterPlan, *, out: TextIO = sys.stdout) -> None:
        self.plan = plan
        self.out = out
        self.t0 = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.links = Links()
        self.supervisor = Supervisor(self.say)
        self.namespaces: list[NetworkNamespace] = []
        # Teardown tiers, last started first stopped; each tier's members stop in parallel.
        self.tiers: dict[str, list[Any]] = {t: [] for t in (
            "etcd", "containerd", "registry", "apiserver", "control", "agent", "netproxy")}
        self.images: dict[str, Path] = {}
        self.netproxy_help: str | None = None  # its --help text when it exits 0
        self._lock = threading.Lock()  # guards tiers, namespaces and _stopping
        self._stopping = False
        self._say_lock = threading.Lock()

    def __repr__(self) -> str:
        started = {t: len(m) for t, m in self.tiers.items() if m}
        return f"<Cluster {self.plan.data_dir} nodes={len(self.plan.nodes)} started={started}>"

    def say(self, message: str) -> None:
        with self._say_lock:
            print(f"pinnace up: [{time.monotonic() - self.t0:5.2f}s] {message}", file=self.out,
                  flush=True)

    # -- the run script ----------------------------------------------------------------------

    def start(self) -> None:
        issued = certs.ensure(self.plan)
        self.say(f"certificates and kubeconfigs ready in {self.plan.pki_dir} "
                 f"({'issued ' + ', '.join(issued) if issued else 'all reused'})")
        nodes = self.plan.nodes
        with cf.ThreadPoolExecutor(max_workers=10 + 3 * len(nodes)) as pool:
            def step(deps: Iterable[cf.Future[Any]], fn: Callable[..., Any],
                     *args: Any) -> cf.Future[Any]:
                return pool.submit(self._after, list(deps), fn, *args)

            net = step([], self.network)
            images = step([], self.build_images)
            probe = step([], self.probe_netproxy)
            etcd = step([], self.etcd)
            api = step([etcd], self.apiserver)
            reg = step([net, images], self.registry)
            control = [step([api], self.scheduler), step([api], self.controller_manager),
                       step([api], self.cloud_controller_manager)]
            ctds = [step([net, images], self.containerd, n) for n in nodes]
            agents = [step([api, c], self.agent, n) for n, c in zip(nodes, ctds, strict=True)]
            proxies = [step([api, probe, a], self.netproxy, n)
                       for n, a in zip(nodes, agents, strict=True)]
            gate = step([reg, *control, *agents, *proxies], self.cluster_gate)
            everything = [net, images, probe, etcd, api, reg, *control, *ctds, *agents,
                          *proxies, gate]
            cf.wait(everything, return_when=cf.FIRST_EXCEPTION)
            failed = [f for f in everything if f.done() and f.exception() is not None]
            if failed:
                self.abort()  # unblock the steps still waiting on a daemon
                errors = [e for f in failed if (e := f.exception()) is not None]
                raise next((e for e in errors if not isinstance(e, Aborted)), errors[0])

    def _after(self, deps: list[cf.Future[Any]], fn: Callable[..., Any], *args: Any) -> Any:
        for dep in deps:
            if dep.exception() is not None:
                raise Aborted(f"{fn.__name__}: a step it needs failed")
        if self._stopping:
            raise Aborted(fn.__name__)
        return fn(*args)

    def network(self) -> None:
        p = self.plan
        self.links.create_bridge(planning.BRIDGE, planning.GATEWAY,
                                 planning.LINK_NETWORK.prefixlen)
        for node in p.nodes:
            ns = NetworkNamespace(node.netns)
            with self._lock:
                self.namespaces.append(ns)
            ns.create()
            self.links.attach(node.netns, node.veth, address=node.address,
                              prefixlen=planning.LINK_NETWORK.prefixlen, gateway=planning.GATEWAY)
        for node in p.nodes:
            self.links.add_routes(node.netns, planning.node_routes(p, node))
        self.links.add_routes(None, [*planning.root_routes(p), planning.load_balancer_route(p)])
        self.say(f"network ready: bridge {planning.BRIDGE} {planning.GATEWAY}/"
                 f"{planning.LINK_NETWORK.prefixlen}, " + ", ".join(
                     f"{n.netns} {n.address} (pods {n.pod_cidr})" for n in p.nodes)
                 + ", host-gw routes")

    def build_images(self) -> None:
        wanted = {"pause": self.plan.images_dir / "pause.tar",
                  "busybox": self.plan.images_dir / "busybox.tar"}
        if all(path.exists() for path in wanted.values()):
            self.say(f"built-in images reused from {self.plan.images_dir}")
        else:
            build.build_all(self.plan.images_dir)
            self.say(f"built-in images built into {self.plan.images_dir} "
                     f"({build.PAUSE_IMAGE}, {build.BUSYBOX_IMAGE})")
        self.images = wanted

    def probe_netproxy(self) -> None:
        result = subprocess.run([sys.executable, "-m", "pinnace", "netproxy", "--help"],
                                capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            self.netproxy_help = result.stdout
        else:
            why = (result.stderr.strip().splitlines() or ["no output"])[-1]
            self.say(f"netproxy not started: `pinnace netproxy --help` exits "
                     f"{result.returncode} ({why})")

    @staticmethod
    def help_of(module: str) -> str:
        """A daemon's --help text, read from its parser in this process (no extra start)."""
        import importlib

        parser = getattr(importlib.import_module(module), "parser", None)
        return str(parser().format_help()) if callable(parser) else ""

    def etcd(self) -> None:
        if self.plan.external_etcd:
            self.say(f"etcd: using {self.plan.etcd_servers}")
            return
        ports = self.plan.ports
        server = Etcd(self.plan.data_dir, client_port=ports.etcd_client,
                      peer_port=ports.etcd_peer)
        self._launch("etcd", server)
        self.supervisor.watch(server.process)
        self.say(f"etcd ready at {server.endpoint} (data {self.plan.data_dir / 'etcd'})")

    def apiserver(self) -> None:
        process = self._process("apiserver", planning.apiserver_argv(self.plan))
        self._launch("apiserver", process, lambda: process.wait_ready(self._api_ready,
                                                                      START_TIMEOUT))
        self.say(f"apiserver ready at {self.plan.local_url} and {self.plan.bridge_url}")

    def _api_ready(self) -> bool:
        pki = self.plan.pki_dir
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        with urllib.request.urlopen(self.plan.local_url + "/readyz", timeout=2,
                                    context=context) as response:
            return bool(response.status == 200)

    def registry(self) -> None:
        p = self.plan
        server = Registry(p.data_dir, storage=p.data_dir / "registry", address=planning.GATEWAY,
                          port=p.ports.registry)
        self._launch("registry", server)
        self.supervisor.watch(server.process)
        names = {"pause": ["pinnace/pause:1"],
                 "busybox": ["pinnace/busybox:1", "library/busybox:latest"]}
        for image, refs in names.items():
            archive = layout.read_archive(self.images[image])
            for ref in refs:
                asyncio.run(registry.push(archive, f"{p.registry_host}/{ref}", scheme="http"))
        self.say(f"registry ready at {p.registry_host} (storage {server.storage}; mirror of "
                 "docker.io: image busybox works offline)")

    def scheduler(self) -> None:
        self._control("scheduler", planning.scheduler_argv(self.plan))

    def controller_manager(self) -> None:
        help_text = self.help_of("controlplane.controllers.main")
        self._control("controller-manager",
                      planning.controller_manager_argv(self.plan, help_text))

    def cloud_controller_manager(self) -> None:
        """The local cloud provider's files (the plan's nodes are its machines), then the CCM."""
        base = self.plan.data_dir / "cloud"
        files = planning.cloud_files(self.plan)
        (base / "instances").mkdir(parents=True, exist_ok=True)
        for stale in (base / "instances").iterdir():
            if f"instances/{stale.name}" not in files:
                stale.unlink()
        for relative, text in files.items():
            (base / relative).write_text(text)
        self._control("cloud-controller-manager",
                      planning.cloud_controller_manager_argv(self.plan))

    def _control(self, name: str, argv: list[str]) -> None:
        """Start a leader-elected daemon; its gate is READY=1 on its notify socket (as systemd's
        Type=notify): caches synced."""
        process = self._process(name, argv, notify=True)
        assert isinstance(process, NotifiedProcess)

        def gate() -> None:
            try:
                process.wait_notified(SIGNAL_GRACE)
            except ComponentError:
                if not process.alive():
                    raise
                self.say(f"{name}: no READY=1 after {SIGNAL_GRACE:.0f} s; going on")

        self._launch("control", process, gate)
        self.supervisor.watch(process)
        self.say(f"{name} ready ({process.status}, pid {process.pid})")

    def containerd(self, node: NodePlan) -> None:
        for relative, text in planning.registry_hosts(self.plan).items():
            path = node.certs_d / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        daemon = Containerd(node.base, name=f"containerd-{node.name}", netns=node.netns,
                            pod_cidr=node.pod_cidr, bridge="cni0")
        self._launch("containerd", daemon)
        daemon.import_images(self.images["pause"], self.images["busybox"])
        self.supervisor.watch(daemon.process)
        self.say(f"containerd of {node.name} ready in {node.netns} ({daemon.socket}), "
                 "pause and busybox imported")

    def agent(self, node: NodePlan) -> None:
        process = self._process(f"agent-{node.name}", planning.agent_argv(self.plan, node),
                                netns=node.netns, notify=True)
        self._launch("agent", process)  # its gate: its node Ready (cluster_gate)
        self.supervisor.watch(process)
        self.say(f"agent of {node.name} started in {node.netns} (pid {process.pid}, "
                 f"node IP {node.address}, API {self.plan.bridge_url})")

    def netproxy(self, node: NodePlan) -> None:
        if self.netproxy_help is None:
            return
        process = self._process(f"netproxy-{node.name}",
                                planning.netproxy_argv(self.plan, node, self.netproxy_help),
                                netns=node.netns, notify=True)
        self._launch("netproxy", process)
        self.supervisor.watch(process)
        self.say(f"netproxy of {node.name} started in {node.netns} (pid {process.pid})")

    def cluster_gate(self) -> None:
        names = [n.name for n in self.plan.nodes]
        probe = self.plan.nodes[0].netns if self.tiers["netproxy"] else None
        gate = ClusterGate(self.plan.kubeconfig, names,
                           advertise=(planning.GATEWAY, self.plan.ports.apiserver),
                           probe_netns=probe, report=self.say, problem=self._problem,
                           since=self.started_at)
        gate.wait(CLUSTER_TIMEOUT)
        self._node_daemons_ready()

    def _node_daemons_ready(self) -> None:
        """Every agent and netproxy has said READY=1 (caches synced, pods adopted, rules in)."""
        with self._lock:
            waiting = {m.name: m for t in ("agent", "netproxy") for m in self.tiers[t]
                       if isinstance(m, NotifiedProcess)}
        deadline = time.monotonic() + START_TIMEOUT
        while any(not s.ready for s in waiting.values()):
            if time.monotonic() > deadline or self._stopping:
                late = ", ".join(sorted(n for n, s in waiting.items() if not s.ready))
                raise ComponentError(f"no READY=1 from {late} after {START_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def _problem(self) -> str:
        if self._stopping:
            return "stopping"
        with self._lock:
            members = [m for t in ("agent", "netproxy", "apiserver") for m in self.tiers[t]]
        dead = [m for m in members if isinstance(m, Process) and not m.alive()]
        return "; ".join(f"{m.name} exited; log {m.log_path}:\n{m.log_tail(8)}" for m in dead)

    # -- processes ---------------------------------------------------------------------------

    def _process(self, name: str, argv: list[str], *, netns: str | None = None,
                 notify: bool = False) -> Process:
        """A child with its log in DIR/logs; with `notify`, a NOTIFY_SOCKET of its own (as
        systemd gives a Type=notify unit) whose READY=1 is its readiness."""
        kind = NotifiedProcess if notify else Process
        return kind(name, argv, self.plan.logs_dir / f"{name}.log", netns=netns)

    def _launch(self, tier: str, component: Any,
                gate: Callable[[], None] | None = None) -> None:
        """Register `component` for teardown, then start it (and pass `gate`, if given)."""
        with self._lock:
            if self._stopping:
                raise Aborted(f"not starting {tier}: stopping")
            self.tiers[tier].append(component)
        component.start()
        if gate is not None:
            gate()

    def abort(self) -> None:
        """Stop the daemons being waited on, so that `start()` returns soon. containerd stays
        up for `down()`, which removes its pods through the CRI first."""
        with self._lock:
            self._stopping = True
            members = [m for t in reversed(self.tiers) if t != "containerd"
                       for m in self.tiers[t]]
        for member in members:
            self._stop_one(member)

    def _stop_one(self, member: Any) -> None:
        try:
            member.stop()
        except Exception as exc:  # noqa: BLE001 - teardown goes on with the others
            self.say(f"stopping {member!r} failed: {exc}")

    def down(self) -> None:
        """Stop everything started, by tier in reverse; remove namespaces, links and mounts."""
        with self._lock:
            self._stopping = True
        for tier in reversed(list(self.tiers)):
            members = self.tiers[tier]
            if members:
                with cf.ThreadPoolExecutor(max_workers=len(members)) as pool:
                    list(pool.map(self._stop_one, members))
        undos: list[Callable[[], None]] = [ns.remove for ns in self.namespaces]
        undos += [self.links.remove, lambda: cleanup.unmount_all(self.plan.data_dir)]
        for undo in undos:
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - teardown goes on with the rest
                self.say(f"teardown: {exc}")
