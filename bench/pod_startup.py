"""Pod startup through the whole system against raw CRI calls on the same containerd.

Starts etcd, `pinnace apiserver`, a node (network namespace + containerd) and `pinnace agent`,
then measures in one run:
  (a) 50 pods created one after another through the API: create -> "all containers started",
      observed through a watch (the Kubernetes pod-startup SLI), p50/p99;
  (b) a burst of 100 pods: time until all are Running;
  (c) the raw CRI baseline (RunPodSandbox + CreateContainer + StartContainer) on the same
      containerd, sequential and with the burst's parallelism;
and prints the ratios, plus the agent's RSS idle and with 100 pods, and the machine's load
average before and after (the machine may be shared: a high load skews every figure).
Run as root: `.venv/bin/python bench/pod_startup.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from agent.images import build
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local import cleanup
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.etcd import Etcd
from pinnace.local.node import Node
from pinnace.local.process import Process

NODE = "bench-node"
IMAGE = "localhost/busybox:1"


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sleep", "3600"]}]}}


def started(obj: dict[str, Any]) -> bool:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (s.get("state") or {}) for s in statuses)


async def through_api(api_server: APIServerProcess, namespace: str, count: int,
                      parallel: int) -> tuple[list[float], float]:
    """Create `count` pods (`parallel` at a time); return per-pod startup and the total."""
    ctx = api_server.ssl_context()
    base = f"/api/v1/namespaces/{namespace}/pods"
    created: dict[str, float] = {}
    done: dict[str, float] = {}
    all_done = asyncio.Event()
    async with aiohttp.ClientSession(api_server.url, connector=aiohttp.TCPConnector(
            ssl=ctx)) as http:
        async with http.get(base) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]

        async def watch() -> None:
            async with http.get(f"{base}?watch=true&resourceVersion={rv}",
                                timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for line in r.content:
                    obj = json.loads(line)["object"]
                    name = obj["metadata"]["name"]
                    if name in created and name not in done and started(obj):
                        done[name] = time.perf_counter()
                        if len(done) == count:
                            all_done.set()
                            return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        names = [f"{namespace}-{i}" for i in range(count)]
        for i in range(0, count, parallel):
            batch = names[i:i + parallel]

            async def create(name: str) -> None:
                created[name] = time.perf_counter()
                async with http.post(base, json=pod(name)) as r:
                    assert r.status == 201, await r.text()

            await asyncio.gather(*(create(n) for n in batch))
            if parallel == 1:
                while batch[0] not in done:
                    await asyncio.sleep(0.002)
        await asyncio.wait_for(all_done.wait(), 600)
        total = time.perf_counter() - start
        watcher.cancel()
    return [done[n] - created[n] for n in names], total


async def raw_cri(socket: str, count: int, parallel: int, tag: str) -> tuple[list[float], float]:
    # The kubelet's --runtime-request-timeout (2m): 100 sandboxes at once on a loaded 2-CPU
    # machine take longer than the client's default 10 s deadline.
    async with RuntimeClient(socket, timeout=120.0) as rt:
        async def one(i: int) -> float:
            meta = api.PodSandboxMetadata(name=f"raw-{tag}-{i}", namespace="raw", uid=f"{tag}-{i}")
            config = api.PodSandboxConfig(metadata=meta, hostname=f"raw{i}",
                                          log_directory=f"/tmp/pn-raw-logs/{tag}-{i}",
                                          labels={"bench": "raw"})
            container = api.ContainerConfig(metadata=api.ContainerMetadata(name="c"),
                                            image=api.ImageSpec(image=IMAGE),
                                            command=["sleep", "3600"], log_path="c.log")
            t0 = time.perf_counter()
            sid = await rt.run_pod_sandbox(config)
            cid = await rt.create_container(sid, container, config)
            await rt.start_container(cid)
            return time.perf_counter() - t0

        start = time.perf_counter()
        samples: list[float] = []
        for i in range(0, count, parallel):
            samples += await asyncio.gather(*(one(j) for j in range(i, min(count, i + parallel))))
        total = time.perf_counter() - start
        for sandbox in await rt.list_pod_sandbox(api.PodSandboxFilter(
                label_selector={"bench": "raw"})):
            await rt.stop_pod_sandbox(sandbox.id)
            await rt.remove_pod_sandbox(sandbox.id)
    return samples, total


async def namespace(api_server: APIServerProcess, name: str) -> None:
    async with aiohttp.ClientSession(api_server.url, connector=aiohttp.TCPConnector(
            ssl=api_server.ssl_context())) as http:
        async with http.post("/api/v1/namespaces", json={"metadata": {"name": name}}) as r:
            assert r.status == 201


async def delete_all(api_server: APIServerProcess, ns: str) -> None:
    async with aiohttp.ClientSession(api_server.url, connector=aiohttp.TCPConnector(
            ssl=api_server.ssl_context())) as http:
        async with http.delete(f"/api/v1/namespaces/{ns}/pods") as r:
            await r.read()


async def measure(api_server: APIServerProcess, node: Node, agent: Process) -> None:
    print(f"before: {load_average()}", flush=True)
    await namespace(api_server, "seq")
    await namespace(api_server, "burst")
    await asyncio.sleep(3)
    idle = rss_mb(agent.pid or 0)
    raw_seq, _ = await raw_cri(node.containerd.socket, 50, 1, "seq")
    seq, _ = await through_api(api_server, "seq", 50, 1)
    await delete_all(api_server, "seq")
    await asyncio.sleep(5)
    raw_burst, raw_total = await raw_cri(node.containerd.socket, 100, 100, "burst")
    burst, burst_total = await through_api(api_server, "burst", 100, 100)
    busy = rss_mb(agent.pid or 0)
    print("pod startup: pinnace (API -> scheduler-less bind -> agent -> CRI) vs raw CRI, "
          "same containerd")
    print(f"(a) 50 pods one after another  p50 {pct(seq, 50) * 1e3:7.0f} ms  p99 "
          f"{pct(seq, 99) * 1e3:7.0f} ms | raw CRI p50 {pct(raw_seq, 50) * 1e3:6.0f} ms  p99 "
          f"{pct(raw_seq, 99) * 1e3:6.0f} ms | ratio p50 {pct(seq, 50) / pct(raw_seq, 50):4.2f}"
          f"  p99 {pct(seq, 99) / pct(raw_seq, 99):4.2f}")
    print(f"(b) burst of 100 pods          all Running in {burst_total:6.2f} s | raw CRI "
          f"(100 in parallel) {raw_total:6.2f} s | ratio {burst_total / raw_total:4.2f}")
    print(f"    burst per-pod startup p50 {pct(burst, 50):.2f} s p99 {pct(burst, 99):.2f} s")
    print(f"agent RSS idle {idle:.1f} MB, with 100 pods {busy:.1f} MB")
    print(f"after: {load_average()}")
    await delete_all(api_server, "burst")


def main() -> int:
    if os.geteuid() != 0:
        print("pod_startup: needs root", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="pn-bench-ps-", dir="/tmp"))
    etcd = Etcd(base / "etcd")
    api_server = APIServerProcess(base / "api", etcd.endpoint, extra=("--v", "0"))
    node = Node(f"bps{os.getpid() % 10000}", base / "node", pod_cidr="10.253.7.0/24")
    agent = Process("agent", [sys.executable, "-m", "pinnace", "agent", "--v", "0",
                              "--kubeconfig", str(api_server.kubeconfig), "--node-name", NODE,
                              "--containerd", node.containerd.socket,
                              "--root-dir", str(base / "agent"), "--pod-log-dir",
                              str(base / "logs"), "--pod-cidr", "10.253.7.0/24",
                              "--cni-conf-dir", str(base / "node" / "cni" / "net.d")],
                    base / "agent.log")
    try:
        etcd.start()
        api_server.start()
        node.start()
        images = build.build_all(base / "images")
        node.containerd.import_images(*(i.path for i in images))
        agent.start()
        asyncio.run(measure(api_server, node, agent))
    finally:
        agent.stop()
        node.stop()
        api_server.stop()
        etcd.stop()
        cleanup.unmount_all(base)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree("/tmp/pn-raw-logs", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
