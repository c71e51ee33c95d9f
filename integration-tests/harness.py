"""Helpers shared by the integration tests (importable: pytest puts this directory on sys.path)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local.node import Node
from pinnace.local.registry import Registry


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


def pinnace(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `pinnace` command (this checkout's) and return the completed process."""
    return subprocess.run([sys.executable, "-m", "pinnace", *args], capture_output=True,
                          text=True, timeout=60)
