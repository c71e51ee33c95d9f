"""API server benchmark against raw etcd, in one run on this machine.

Starts a private etcd and `pinnace apiserver`, then measures, each beside the physical limit of
the same operation done directly on etcd with the same gRPC stubs and concurrency:
  create pod at concurrency 1 and 32 (throughput, p50/p99)  vs  raw etcd create transactions
  create service (ClusterIP) at concurrency 1 and 32, and    vs  raw etcd create transactions
    NodePort at 32: each allocates from a range bitmap
    in one etcd key (group-committed compare-and-swaps;
    "range CAS tries per create" counts them)
  get pod (p50/p99)                                          vs  raw etcd range
  list 5000 pods (p50/p99 of 5 lists; from etcd, and with    vs  raw etcd range of 5000 keys
    resourceVersion=0 from the watch cache)
  watch delivery to 200 watchers (write -> receipt p50/p99)
  apiserver RSS with 5000 pods (after the lists, and before them)
Creates run in 3 rounds, raw etcd then apiserver each round, so that a noisy neighbour on a
shared machine hits both sides alike; the throughputs printed are the median rounds', the
latencies those of all rounds. This process is the client of both sides, on one event loop
(asyncio, or uvloop with --loop uvloop): aiohttp over TLS for the apiserver, our EtcdStorage
for raw etcd. Under each create line, the CPU each process spent per create says where the
time goes: the apiserver serves requests on one thread, so when that thread is ~100% busy,
the apiserver's CPU per create is the limit.
Run as root: `.venv/bin/python bench/api.py [--pods 5000] [--loop uvloop]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop
from common import control_plane, pct, rss_mb, stat_cpu_seconds

from controlplane.apiserver.storage.etcd import EtcdStorage
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.etcd import Etcd

ROUNDS = 3  # of each create measurement, raw etcd and apiserver alternating


def service(name: str, kind: str = "ClusterIP") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": 80}]}}


def pod(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "localhost/busybox:1",
                                     "command": ["sleep", "3600"]}]}}


async def timed(concurrency: int, count: int,
                op: Callable[[int], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run op(i) for i < count with `concurrency` workers; return (ops/s, latencies)."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start), latencies


def line(name: str, rate: float | None, lat: list[float], limit_rate: float | None = None,
         limit_lat: list[float] | None = None) -> str:
    text = f"{name:<34}"
    if rate is not None:
        text += f" {rate:8.0f}/s"
    text += f"  p50 {pct(lat, 50) * 1e3:7.2f} ms  p99 {pct(lat, 99) * 1e3:7.2f} ms"
    if limit_rate is not None and rate is not None:
        text += f"  | raw etcd {limit_rate:8.0f}/s  ratio {rate / limit_rate:5.2f}"
    if limit_lat is not None:
        text += f"  | raw etcd p50 {pct(limit_lat, 50) * 1e3:.2f} ms"
    return text


class CPU:
    """CPU seconds spent by this process (the client), the apiserver (and its main thread, the
    one serving requests) and etcd."""

    def __init__(self, api_pid: int, etcd_pid: int) -> None:
        self.stats = {"apiserver": Path(f"/proc/{api_pid}/stat"),
                      "main thread": Path(f"/proc/{api_pid}/task/{api_pid}/stat"),
                      "etcd": Path(f"/proc/{etcd_pid}/stat")}

    def now(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"client": usage.ru_utime + usage.ru_stime, "wall": time.perf_counter(),
                **{name: stat_cpu_seconds(path) for name, path in self.stats.items()}}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


def cpu_line(ops: int, api: dict[str, float], raw: dict[str, float]) -> str:
    def ms(seconds: float) -> str:
        return f"{seconds / ops * 1e3:.3f}"
    busy = api["main thread"] / api["wall"] * 100
    return (f"{'':<4}cpu ms per create: apiserver {ms(api['apiserver'])} (its serving thread "
            f"{busy:.0f}% busy), etcd {ms(api['etcd'])}, client {ms(api['client'])}  | "
            f"raw: etcd {ms(raw['etcd'])}, client {ms(raw['client'])}")


Op = Callable[[int], Awaitable[None]]


async def rounds(cpu: CPU, label: str, concurrency: int, n: int, api_op: Callable[[str], Op],
                 raw_op: Callable[[str], Op]) -> None:
    """ROUNDS rounds of `n` creates at `concurrency`, raw etcd then the apiserver each round;
    print the median rates, all latencies and the CPU per create."""
    rates: list[float] = []
    raw_rates: list[float] = []
    lat: list[float] = []
    api_cpu: dict[str, float] = {}
    raw_cpu: dict[str, float] = {}
    for round_ in range(ROUNDS):
        prefix = f"c{concurrency}r{round_}"
        before = cpu.now()
        raw_rate, _ = await timed(concurrency, n, raw_op(prefix))
        between = cpu.now()
        rate, round_lat = await timed(concurrency, n, api_op(prefix))
        after = cpu.now()
        raw_rates.append(raw_rate)
        rates.append(rate)
        lat += round_lat
        for total, part in ((raw_cpu, spent(before, between)), (api_cpu, spent(between, after))):
            for name, seconds in part.items():
                total[name] = total.get(name, 0.0) + seconds
    print(line(f"{label}, concurrency {concurrency}", statistics.median(rates), lat,
               statistics.median(raw_rates)))
    print(cpu_line(ROUNDS * n, api_cpu, raw_cpu))


async def range_writes(http: aiohttp.ClientSession) -> float:
    """The apiserver's compare-and-swap tries on the range bitmaps (/registry/ranges/*) so far:
    its etcd_request_duration_seconds count of updates of type "ranges"."""
    async with http.get("/metrics") as r:
        text = await r.text()
    for row in text.splitlines():
        if (row.startswith("etcd_request_duration_seconds_count{")
                and 'operation="update"' in row and 'type="ranges"' in row):
            return float(row.rsplit(" ", 1)[1])
    return 0.0


async def run(args: argparse.Namespace, etcd: Etcd, api: APIServerProcess) -> None:
    raw = EtcdStorage([etcd.endpoint])
    cpu = CPU(api.process.pid or 0, etcd.process.pid or 0)
    ctx: ssl.SSLContext = api.ssl_context()
    connector = aiohttp.TCPConnector(ssl=ctx, limit=64)
    async with aiohttp.ClientSession(connector=connector, base_url=api.url) as http:
        def api_create(prefix: str) -> Op:
            async def op(i: int) -> None:
                async with http.post("/api/v1/namespaces/default/pods",
                                     json=pod(f"{prefix}-{i}")) as r:
                    assert r.status == 201, await r.text()
                    await r.read()
            return op

        def raw_create(prefix: str) -> Op:
            async def op(i: int) -> None:
                await raw.create(f"/registry/rawbench/{prefix}-{i}", pod(f"{prefix}-{i}"))
            return op

        print(f"pinnace apiserver vs raw etcd on this machine ({args.pods} pods, client on "
              f"{args.loop}, {os.cpu_count()} cores)")
        created = 0
        for concurrency in (1, 32):
            n = 200 if concurrency == 1 else 700
            await rounds(cpu, "create pod", concurrency, n, api_create, raw_create)
            created += ROUNDS * n

        for kind, concurrency, n in (("ClusterIP", 1, 200), ("ClusterIP", 32, 700),
                                     ("NodePort", 32, 300)):  # 3 x 300 of 2768 node ports
            def api_service(prefix: str, kind: str = kind) -> Op:
                async def op(i: int) -> None:
                    name = f"{kind.lower()}-{prefix}-{i}"
                    async with http.post("/api/v1/namespaces/default/services",
                                         json=service(name, kind)) as r:
                        assert r.status == 201, await r.text()
                        await r.read()
                return op

            def raw_service(prefix: str, kind: str = kind) -> Op:
                async def op(i: int) -> None:
                    name = f"{kind.lower()}-{prefix}-{i}"
                    await raw.create(f"/registry/rawbench/services/{name}", service(name, kind))
                return op

            tries = await range_writes(http)
            label = "create service" if kind == "ClusterIP" else "create NodePort svc"
            await rounds(cpu, label, concurrency, n, api_service, raw_service)
            tries = await range_writes(http) - tries
            ranges = "1 range" if kind == "ClusterIP" else "2 ranges"
            print(f"{'':<4}range CAS tries per create: {tries / (ROUNDS * n):.2f} ({ranges} "
                  "per create; below 1 when concurrent ones share a compare-and-swap)")

        async def api_get(i: int) -> None:
            async with http.get("/api/v1/namespaces/default/pods/c1r0-7") as r:
                await r.read()

        async def raw_get(i: int) -> None:
            await raw.get("/registry/rawbench/c1r0-7")

        _, raw_lat = await timed(1, 500, raw_get)
        _, lat = await timed(1, 500, api_get)
        print(line("get pod", None, lat, None, raw_lat))

        await timed(32, max(0, args.pods - created), api_create("fill"))
        rss_filled = rss_mb(api.process.pid or 0)
        lists: list[float] = []
        cached_lists: list[float] = []
        raw_lists: list[float] = []
        for _ in range(5):
            for path, samples in (("/api/v1/namespaces/default/pods", lists),
                                  ("/api/v1/namespaces/default/pods?resourceVersion=0",
                                   cached_lists)):
                t0 = time.perf_counter()
                async with http.get(path) as r:
                    body = await r.read()
                samples.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await raw.list("/registry/pods/default/")
            raw_lists.append(time.perf_counter() - t0)
        count = len(json.loads(body)["items"])
        print(line(f"list {count} pods", None, lists, None, raw_lists))
        print(line(f"list {count} pods, watch cache", None, cached_lists, None, raw_lists))
        print(f"{'apiserver RSS':<34} {rss_mb(api.process.pid or 0):8.0f} MB with {count} pods"
              f"  ({rss_filled:.0f} MB before the lists)")

        watchers = 200
        received: list[list[float]] = [[] for _ in range(watchers)]
        sent: dict[str, float] = {}
        ready = asyncio.Event()
        started = 0

        watch_http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=watchers + 8), base_url=api.url)

        async def watch(slot: int) -> None:
            nonlocal started
            rv = json.loads(body)["metadata"]["resourceVersion"]
            url = (f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
                   "&timeoutSeconds=60")
            async with watch_http.get(url, timeout=aiohttp.ClientTimeout(total=90)) as r:
                started += 1
                if started == watchers:
                    ready.set()
                async for raw_line in r.content:
                    event = json.loads(raw_line)
                    name = event["object"]["metadata"]["name"]
                    if name in sent:
                        received[slot].append(time.perf_counter() - sent[name])
                    if name == "last":
                        return

        tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(0.5)
        for i in range(20):
            name = f"w{i}" if i < 19 else "last"
            sent[name] = time.perf_counter()
            async with http.post("/api/v1/namespaces/default/configmaps",
                                 json={"metadata": {"name": name}}) as r:
                assert r.status == 201
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await watch_http.close()
        delivery = [d for slot in received for d in slot]
        print(line(f"watch delivery to {watchers} watchers", None, delivery) +
              f"  ({len(delivery)} deliveries, mean {statistics.mean(delivery) * 1e3:.1f} ms)")
    await raw.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the client's event loop, for both sides (the apiserver runs uvloop)")
    args = parser.parse_args()
    with control_plane("pn-bench-api-") as cp:
        if args.loop == "uvloop":
            uvloop.run(run(args, cp.etcd, cp.api))
        else:
            asyncio.run(run(args, cp.etcd, cp.api))
    return 0


if __name__ == "__main__":
    sys.exit(main())
