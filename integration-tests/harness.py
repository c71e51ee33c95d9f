"""Helpers shared by the integration tests (importable: pytest puts this directory on sys.path).

Components: `started` (any start()/stop() component, stopped also after a failed start),
`pinnace_daemon` (`python -m pinnace <daemon>`, gated on its READY=1) and `agent_daemon` (a
`pinnace agent` over a containerd of the session, its Node deleted afterwards). Polling:
`wait_for` (blocking) and `eventually` (async). CRI: `Pods`, `remove_sandboxes`. CLIs: `Kubectl`,
`pinnace`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from controlplane.apiserver import pki
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.daemon import PinnaceDaemon
from pinnace.local.node import Node
from pinnace.local.process import free_port
from pinnace.local.registry import Registry

HOST_POD_CIDR = "10.253.1.0/24"  # the session containerd's CNI bridge (conftest.py)


class Component(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


C = TypeVar("C", bound=Component)


@contextmanager
def started(component: C) -> Iterator[C]:
    """`component` started, and stopped at the end, also when its start failed half-way."""
    try:
        component.start()
        yield component
    finally:
        component.stop()


@contextmanager
def pinnace_daemon(daemon: str, *args: str, log: Path, name: str = "", wait: bool = True,
                   status: str = "", timeout: float = 30.0) -> Iterator[PinnaceDaemon]:
    """`python -m pinnace <daemon> <args>` logging to `log`, yielded once it said READY=1 on its
    own $NOTIFY_SOCKET (caches synced; a leader-elected one leading, or a standby: see its
    `status`; `status="leading"` waits until it leads), or at once if not `wait`; stopped by PID
    at the end. A start that fails raises ComponentError with the tail of its log."""
    with started(PinnaceDaemon(daemon, args, log, name=name)) as process:
        if wait:
            process.wait_notified(timeout, status=status)
        yield process


def agent_args(apiserver: APIServerProcess, node: str, containerd: str, base: Path, *,
               port: int = 0, pod_cidr: str = HOST_POD_CIDR) -> list[str]:
    """`pinnace agent` flags for Node `node` over the containerd at socket `containerd`, its
    state under `base`, serving on 127.0.0.1:`port` (0: a free one) with the certificate
    `issue_agent_cert` made there."""
    ca = apiserver.cert_dir / "ca.crt"
    return ["--kubeconfig", str(apiserver.kubeconfig), "--node-name", node,
            "--containerd", containerd, "--root-dir", str(base / "root"),
            "--pod-log-dir", str(base / "logs"), "--pod-cidr", pod_cidr,
            "--cni-conf-dir", str(base / "cni"), "--port", str(port or free_port()),
            "--address", "127.0.0.1", "--tls-cert-file", str(base / "tls.crt"),
            "--tls-private-key-file", str(base / "tls.key"), "--client-ca-file", str(ca)]


def issue_agent_cert(apiserver: APIServerProcess, node: str, base: Path) -> None:
    """A serving certificate for system:node:`node` from the cluster CA, in base/tls.{crt,key}."""
    ca = apiserver.cert_dir
    base.mkdir(parents=True, exist_ok=True)
    pki.issue_serving_cert(ca / "ca.crt", ca / "ca.key", common_name=f"system:node:{node}",
                           hosts=["127.0.0.1", node], out_cert=base / "tls.crt",
                           out_key=base / "tls.key")


def delete_node(apiserver: APIServerProcess, node: str) -> None:
    """Delete a Node an agent of a test registered (without heartbeats it would be tainted
    unreachable, in the way of later tests' schedulers)."""
    subprocess.run(["kubectl", "--kubeconfig", str(apiserver.kubeconfig), "delete", "node",
                    node, "--wait=false"], capture_output=True, timeout=30)


@contextmanager
def agent_daemon(apiserver: APIServerProcess, containerd: str, node: str, base: Path, *,
               name: str = "agent", wait: bool = True) -> Iterator[PinnaceDaemon]:
    """`pinnace agent` for Node `node` over the containerd at socket `containerd`, in this
    network namespace (the CRI streaming server it bridges exec to listens on its loopback; its
    CNI conflist goes to a directory of its own), yielded once it said READY=1 (caches synced,
    running pods adopted); at the end stopped and its Node deleted."""
    issue_agent_cert(apiserver, node, base)
    try:
        with pinnace_daemon("agent", *agent_args(apiserver, node, containerd, base),
                            log=base / "agent.log", name=name, wait=wait) as agent:
            yield agent
    finally:
        delete_node(apiserver, node)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0,
             interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy, and return that; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


async def eventually(check: Callable[[], Awaitable[Any]], what: str,
                     timeout: float = 30.0) -> Any:
    """Await `check()` until it returns something truthy, and return that; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


class NodeEnv:
    """A node with its own containerd and a registry process on the node's own loopback."""

    def __init__(self, node: Node, registry: Registry) -> None:
        self.node = node
        self.registry = registry

    @property
    def socket(self) -> str:
        return self.node.containerd.socket


class Pods:
    """Builds CRI configs for test pods and removes every sandbox it started."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs

    def sandbox_config(self, name: str, namespace: str = "it") -> api.PodSandboxConfig:
        uid = f"{name}-{uuid.uuid4().hex[:8]}"
        log_dir = self.logs / uid
        log_dir.mkdir(parents=True, exist_ok=True)
        return api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, namespace=namespace, uid=uid),
            hostname=name, log_directory=str(log_dir),
            labels={"io.kubernetes.pod.name": name, "pinnace.test": "1"},
        )

    @staticmethod
    def container_config(name: str, image: str, command: list[str]) -> api.ContainerConfig:
        return api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=image),
            command=command, log_path=f"{name}.log",
        )


async def remove_sandboxes(rt: RuntimeClient) -> None:
    """Stop and remove every sandbox a test left (label pinnace.test=1)."""
    selector = api.PodSandboxFilter(label_selector={"pinnace.test": "1"})
    for sandbox in await rt.list_pod_sandbox(selector):
        await rt.stop_pod_sandbox(sandbox.id)
        await rt.remove_pod_sandbox(sandbox.id)


class Kubectl:
    """Runs the real kubectl against our apiserver; `run` returns the completed process."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def run(self, *args: str, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir),
             *args], capture_output=True, text=True, input=input, timeout=timeout)

    def __call__(self, *args: str, input: str | None = None) -> str:
        """Run kubectl and return stdout; fail the test with stderr when it exits non-zero."""
        result = self.run(*args, input=input)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def fails(self, *args: str, input: str | None = None) -> str:
        """Run kubectl expecting failure; return stderr."""
        result = self.run(*args, input=input)
        assert result.returncode != 0, f"kubectl {' '.join(args)} succeeded: {result.stdout}"
        return result.stderr

    def get_until(self, check: str, *args: str, timeout: float = 60,
                  interval: float = 0.3) -> dict[str, Any]:
        """Poll `kubectl get <args> -o json` until `check` (a Python expression over the object
        `o`, with `json` at hand) holds; return the object. A lookup that fails is "not yet"."""
        deadline = time.monotonic() + timeout
        obj: dict[str, Any] = {}
        while time.monotonic() < deadline:
            result = self.run("get", *args, "-o", "json")
            if result.returncode == 0:
                obj = json.loads(result.stdout)
                try:
                    if eval(check, {"json": json}, {"o": obj}):  # noqa: S307 - test-local
                        return obj
                except (KeyError, IndexError, TypeError):
                    pass  # not there yet
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {check}: {json.dumps(obj)[:3000]}")


def pinnace(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `pinnace` command (this checkout's) and return the completed process."""
    return subprocess.run([sys.executable, "-m", "pinnace", *args], capture_output=True,
                          text=True, timeout=60)
