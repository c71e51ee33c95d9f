"""Scheduler throughput and latency against the physical limits measured in the same run.

Starts a private etcd and `pinnace apiserver`, makes 1000 Node objects (Ready, 8 cpu / 32Gi /
110 pods, 10 zones, half of them `disk=ssd`; no agent runs), then measures:
  (a) raw binding throughput through the apiserver: 5000 pods created (not timed), then their
      pods/binding POSTs with no scheduling, at the concurrency the scheduler's client uses;
  (b) the scheduler's pure in-process rate, no I/O: the same Scheduler class over the same nodes
      and pod mix with a fake API (informer handlers -> queue -> cycle -> assume), `--profile`
      prints where its time goes (cProfile);
  (c) `pinnace scheduler` as a process: 5000 pods of mixed sizes and affinities (plain requests,
      required and preferred node affinity, required pod anti-affinity per hostname, zone
      topology spread, preferred pod affinity) created through the API as fast as this client
      can while the scheduler runs; pods bound per second (first create -> last bound, seen
      through a watch), p50/p99 create -> bound, the scheduler's CPU per pod and its RSS;
  (d) the same with the 5000 pods created first and the scheduler started after (a backlog):
      the scheduler's own rate, free of the creates competing for the apiserver.
The machine is shared: the load average is printed with each figure. Run as root:
`.venv/bin/python bench/scheduler.py [--nodes 1000] [--pods 5000] [--profile]`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from common import PodWatch, control_plane, cpu_seconds, load, pct, rss_mb

from controlplane.client.events import EventSink
from controlplane.scheduler.config import SchedulerConfig
from controlplane.scheduler.scheduler import Scheduler
from controlplane.scheduler.testing import FakeAPI
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.daemon import PinnaceDaemon
from pinnace.local.process import Process

Object = dict[str, Any]
ZONE = "topology.kubernetes.io/zone"
CONCURRENCY = 64  # the scheduler's RESTClient connection limit; the bench uses the same


# -- the workload ---------------------------------------------------------------------------------

def node(i: int) -> Object:
    name = f"node-{i:04d}"
    labels = {"kubernetes.io/hostname": name, ZONE: f"zone-{i % 10}",
              **({"disk": "ssd"} if i % 2 else {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {}}


def node_status() -> Object:
    allocatable = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {"capacity": allocatable, "allocatable": allocatable, "conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "message": "fake node for the scheduler benchmark",
         "lastHeartbeatTime": "2025-01-01T00:00:00Z",
         "lastTransitionTime": "2025-01-01T00:00:00Z"}]}


def pod(i: int, namespace: str, scheduler: str) -> Object:
    """The i-th pod of the mix: sizes cycle, one pod in five of each constrained kind."""
    rng = random.Random(i)
    app = f"app-{i % 50}"  # 50 workloads of ~100 pods
    cpu = rng.choice(["100m", "250m", "500m", "1"])
    memory = rng.choice(["128Mi", "256Mi", "512Mi", "1Gi"])
    spec: Object = {"schedulerName": scheduler, "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "localhost/busybox:1",
                                    "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    selector = {"matchLabels": {"app": app}}
    kind = i % 5
    if kind == 1:
        spec["affinity"] = {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": ZONE, "operator": "In",
                                       "values": [f"zone-{i % 10}", f"zone-{(i + 1) % 10}"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [
                    {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    elif kind == 2:
        spec["affinity"] = {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}]}}
    elif kind == 3:
        spec["topologySpreadConstraints"] = [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": selector}]
    elif kind == 4:
        spec["affinity"] = {"podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {"labelSelector": selector,
                                                   "topologyKey": ZONE}}]}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i:05d}", "namespace": namespace,
                         "labels": {"app": app, "kind": str(kind)}},
            "spec": spec}


# -- (b) in process --------------------------------------------------------------------------------

async def in_process(nodes: int, pods: int, profile: bool) -> tuple[float, str]:
    """Schedule the mix with a fake API; return pods/s and (with `profile`) the top functions."""
    api = FakeAPI()
    scheduler = Scheduler(api, SchedulerConfig(), sink=EventSink(api))
    writer = asyncio.create_task(scheduler.sink.run())  # events are correlated, not sent
    for i in range(nodes):
        obj = node(i)
        obj["status"] = node_status()
        scheduler.on_node_add(obj)
    for i in range(pods):
        obj = pod(i, "inproc", "default-scheduler")
        obj["metadata"]["uid"] = f"uid-{i}"
        obj["status"] = {"phase": "Pending"}
        scheduler.on_pod_add(obj)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    while len(api.bindings) < pods:
        await scheduler.schedule_one()
        await asyncio.sleep(0)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    writer.cancel()
    report = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        report = out.getvalue()
    return pods / elapsed, report


# -- through the apiserver -------------------------------------------------------------------------

async def run_all(http: aiohttp.ClientSession, count: int, work: Any) -> None:
    items = iter(range(count))

    async def worker() -> None:
        for i in items:
            await work(i)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def make_nodes(http: aiohttp.ClientSession, count: int) -> None:
    async def one(i: int) -> None:
        body = node(i)
        async with http.post("/api/v1/nodes", json=body) as r:
            assert r.status == 201, await r.text()
        async with http.patch(f"/api/v1/nodes/{body['metadata']['name']}/status",
                              data=orjson.dumps({"status": node_status()}),
                              headers={"Content-Type": "application/merge-patch+json"}) as r:
            assert r.status == 200, await r.text()

    await run_all(http, count, one)


async def namespace(http: aiohttp.ClientSession, name: str) -> None:
    async with http.post("/api/v1/namespaces", json={"metadata": {"name": name}}) as r:
        assert r.status == 201, await r.text()


async def create_pods(http: aiohttp.ClientSession, ns: str, count: int, scheduler: str,
                      created: dict[str, float] | None = None) -> float:
    """Create the mix; return creates per second."""
    async def one(i: int) -> None:
        body = pod(i, ns, scheduler)
        if created is not None:
            created[body["metadata"]["name"]] = time.perf_counter()
        async with http.post(f"/api/v1/namespaces/{ns}/pods", data=orjson.dumps(body),
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 201, await r.text()

    start = time.perf_counter()
    await run_all(http, count, one)
    return count / (time.perf_counter() - start)


async def raw_bindings(http: aiohttp.ClientSession, nodes: int, count: int) -> tuple[float, float]:
    """(a): create `count` pods nobody schedules, then bind them; return (binds/s, creates/s)."""
    await namespace(http, "raw")
    create_rate = await create_pods(http, "raw", count, "nobody")

    async def bind(i: int) -> None:
        name = f"p-{i:05d}"
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": f"node-{i % nodes:04d}"}}
        async with http.post(f"/api/v1/namespaces/raw/pods/{name}/binding", json=body) as r:
            assert r.status == 201, await r.text()

    start = time.perf_counter()
    await run_all(http, count, bind)
    rate = count / (time.perf_counter() - start)
    async with http.delete("/api/v1/namespaces/raw/pods?gracePeriodSeconds=0") as r:
        await r.read()
    return rate, create_rate


class BoundWatch(PodWatch):
    """Watch a namespace's pods; note when each is first seen with a nodeName (pods found bound
    by a relist are counted as bound then)."""

    events = ("ADDED", "MODIFIED", "DELETED")

    def __init__(self, http: aiohttp.ClientSession, ns: str, count: int) -> None:
        super().__init__(http, ns)
        self.count = count
        self.bound: dict[str, float] = {}
        self.done = asyncio.Event()

    def observe(self, pod: Object) -> None:
        name = pod["metadata"]["name"]
        if name not in self.bound and (pod.get("spec") or {}).get("nodeName"):
            self.bound[name] = time.perf_counter()
            if len(self.bound) == self.count:
                self.done.set()

    def finished(self) -> bool:
        return self.done.is_set()

    async def wait(self, timeout: float, stall: float = 30.0) -> None:
        """Until every pod is bound, `timeout` passes, or nothing is bound for `stall` s (a pod
        the scheduler never saw: the report then says how many were bound)."""
        deadline = time.perf_counter() + timeout
        try:
            while not self.done.is_set() and time.perf_counter() < deadline:
                before = len(self.bound)
                try:
                    await asyncio.wait_for(self.done.wait(), stall)
                except TimeoutError:
                    if len(self.bound) == before:
                        print(f"    no pod bound for {stall:.0f} s: {self.count - before} left "
                              "unbound", flush=True)
                        return
        finally:
            if self.task:
                self.task.cancel()


def start_scheduler(api: APIServerProcess, base: Path, name: str, profile: bool) -> Process:
    python = [sys.executable, "-m", "cProfile", "-o", str(base / f"{name}.prof")] if profile \
        else [sys.executable]
    process = PinnaceDaemon("scheduler", ["--kubeconfig", str(api.kubeconfig),
                                          "--leader-elect=false", "--scheduler-name", name,
                                          "--v", "1"], base / f"{name}.log", name=name,
                            python=python)
    process.start()
    try:
        process.wait_notified(120)
    except Exception:
        process.stop()
        raise
    return process


def stop_scheduler(proc: Process, base: Path, profile: bool) -> None:
    proc.stop()
    if profile:
        out = io.StringIO()
        pstats.Stats(str(base / f"{proc.name}.prof"), stream=out).sort_stats(
            "tottime").print_stats(30)
        print(f"where `pinnace scheduler` ({proc.name}) spent its time:\n{out.getvalue()}")


def report(title: str, count: int, created: dict[str, float], bound: dict[str, float],
           start: float, proc: Process, cpu0: float, limit: float, api: APIServerProcess,
           api_cpu0: float) -> None:
    end = max(bound.values())
    rate = len(bound) / (end - start)
    latency = [bound[n] - created[n] for n in bound if n in created]
    cpu = cpu_seconds(proc.pid or 0) - cpu0
    text = (f"{title:<44} {rate:6.0f} pods/s ({len(bound)}/{count} bound in {end - start:5.1f} s)"
            f" | raw binding {limit:6.0f}/s ratio {rate / limit:4.2f}")
    if latency:
        text += (f"\n{'':<44} create->bound p50 {pct(latency, 50) * 1e3:7.0f} ms  "
                 f"p99 {pct(latency, 99) * 1e3:7.0f} ms")
    api_cpu = cpu_seconds(api.process.pid or 0) - api_cpu0
    text += (f"\n{'':<44} scheduler CPU {cpu * 1e3 / len(bound):5.2f} ms/pod "
             f"({cpu / (end - start) * 100:3.0f}% of a core), RSS {rss_mb(proc.pid or 0):4.0f} MB;"
             f" apiserver {api_cpu / (end - start) * 100:3.0f}% of a core  [{load()}]")
    print(text, flush=True)


async def through_api(api: APIServerProcess, base: Path, args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(ssl=api.ssl_context(), limit=CONCURRENCY + 8)
    async with aiohttp.ClientSession(api.url, connector=connector) as http:
        t0 = time.perf_counter()
        await make_nodes(http, args.nodes)
        print(f"{args.nodes} nodes made in {time.perf_counter() - t0:.1f} s  [{load()}]",
              flush=True)
        bind_rate, create_rate = await raw_bindings(http, args.nodes, args.pods)
        print(f"{'(a) raw pods/binding POSTs (no scheduling)':<44} {bind_rate:6.0f} binds/s"
              f"  (raw pod creates {create_rate:.0f}/s, concurrency {CONCURRENCY})  [{load()}]",
              flush=True)

        rate, _ = await in_process(args.nodes, args.pods, False)
        print(f"{'(b) in-process scheduling, no I/O':<44} {rate:6.0f} pods/s  [{load()}]",
              flush=True)

        await namespace(http, "stream")
        proc = start_scheduler(api, base, "stream", args.profile_scheduler)
        try:
            watch = BoundWatch(http, "stream", args.pods)
            await watch.start()
            created: dict[str, float] = {}
            cpu0, api_cpu0 = cpu_seconds(proc.pid or 0), cpu_seconds(api.process.pid or 0)
            start = time.perf_counter()
            rate_created = await create_pods(http, "stream", args.pods, "stream", created)
            await watch.wait(600)
            report("(c) pinnace scheduler, pods created meanwhile", args.pods, created,
                   watch.bound, start, proc, cpu0, bind_rate, api, api_cpu0)
            print(f"{'':<44} (pods created at {rate_created:.0f}/s meanwhile; "
                  f"bench watch relisted {watch.relists}x)", flush=True)
        finally:
            stop_scheduler(proc, base, args.profile_scheduler)

        await namespace(http, "backlog")
        await create_pods(http, "backlog", args.pods, "backlog")
        watch = BoundWatch(http, "backlog", args.pods)
        await watch.start()
        proc = start_scheduler(api, base, "backlog", args.profile_scheduler)
        try:
            cpu0, api_cpu0 = cpu_seconds(proc.pid or 0), cpu_seconds(api.process.pid or 0)
            start = time.perf_counter()
            await watch.wait(600)
            report("(d) pinnace scheduler, backlog of pods", args.pods, {}, watch.bound,
                   start, proc, cpu0, bind_rate, api, api_cpu0)
        finally:
            stop_scheduler(proc, base, args.profile_scheduler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--in-process", action="store_true", help="only (b), no root needed")
    parser.add_argument("--profile-scheduler", action="store_true",
                        help="run the scheduler processes under cProfile; print their profiles")
    parser.add_argument("--profile", action="store_true",
                        help="only (b), under cProfile: print where the cycle's time goes")
    args = parser.parse_args()
    if args.profile or args.in_process:
        rate, text = asyncio.run(in_process(args.nodes, args.pods, args.profile))
        under = " under cProfile" if args.profile else ""
        print(f"(b) in-process scheduling, no I/O{under}: {rate:.0f} pods/s  [{load()}]\n{text}")
        return 0
    if os.geteuid() != 0:
        print("scheduler bench: needs root (etcd and the apiserver run as root here)",
              file=sys.stderr)
        return 1
    # SIGTERM (and SIGINT, which a background job ignores) stops the run and what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with control_plane("pn-bench-sched-") as cp:
        asyncio.run(through_api(cp.api, cp.base, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
