"""Raw CRI pod start on a real containerd: the physical limit for pod-startup benchmarks.

One pod = RunPodSandbox + CreateContainer + StartContainer of the built-in busybox image, through
our asyncio CRI client, on a private containerd inside a network namespace of ours (CNI bridge
included), so nothing of the control plane is involved. Prints p50/p99 per step and in total,
and the machine's load average before and after (it may be shared with other work).
Run as root: `.venv/bin/python bench/cri_baseline.py [--pods 30]` (or `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agent.images import build
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local import cleanup
from pinnace.local.node import Node

IMAGE = "localhost/busybox:1"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def start_pods(socket: str, count: int, logs: Path) -> dict[str, list[float]]:
    steps: dict[str, list[float]] = {"RunPodSandbox": [], "CreateContainer": [],
                                     "StartContainer": [], "pod start (total)": []}
    async with RuntimeClient(socket) as rt:
        for i in range(count):
            meta = api.PodSandboxMetadata(name=f"bench-{i}", namespace="bench", uid=f"uid-{i}")
            config = api.PodSandboxConfig(metadata=meta, hostname=f"bench-{i}",
                                          log_directory=str(logs / str(i)))
            container = api.ContainerConfig(metadata=api.ContainerMetadata(name="c"),
                                            image=api.ImageSpec(image=IMAGE),
                                            command=["sleep", "3600"], log_path="c.log")
            t0 = time.perf_counter()
            sandbox_id = await rt.run_pod_sandbox(config)
            t1 = time.perf_counter()
            container_id = await rt.create_container(sandbox_id, container, config)
            t2 = time.perf_counter()
            await rt.start_container(container_id)
            t3 = time.perf_counter()
            steps["RunPodSandbox"].append(t1 - t0)
            steps["CreateContainer"].append(t2 - t1)
            steps["StartContainer"].append(t3 - t2)
            steps["pod start (total)"].append(t3 - t0)
        for sandbox in await rt.list_pod_sandbox():
            await rt.stop_pod_sandbox(sandbox.id)
            await rt.remove_pod_sandbox(sandbox.id)
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("cri_baseline: needs root (containerd, network namespaces)", file=sys.stderr)
        return 1
    before = load_average()
    base = Path(tempfile.mkdtemp(prefix="pn-bench-", dir="/tmp"))
    node = Node(f"bench{os.getpid() % 10000}", base / "node", pod_cidr="10.253.9.0/24")
    try:
        node.start()
        built = build.build_all(base / "images")
        node.containerd.import_images(*(image.path for image in built))
        asyncio.run(start_pods(node.containerd.socket, args.warmup, base / "logs-warmup"))
        steps = asyncio.run(start_pods(node.containerd.socket, args.pods, base / "logs"))
    finally:
        node.stop()
        cleanup.unmount_all(base)
        shutil.rmtree(base, ignore_errors=True)
    print(f"raw CRI pod start, {args.pods} pods one after another, busybox image, "
          f"containerd in its own netns (CNI bridge)")
    print(f"{'step':<20} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'min ms':>8}")
    for name, samples in steps.items():
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        print(f"{name:<20} {p50 * 1e3:8.1f} {p99 * 1e3:8.1f}"
              f" {statistics.mean(samples) * 1e3:8.1f} {min(samples) * 1e3:8.1f}")
    total = steps["pod start (total)"]
    print(f"throughput: {len(total) / sum(total):.1f} pods/s sequential")
    print(f"before: {before}; after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
