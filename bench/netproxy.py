"""Service rule sync against a raw `iptables-restore` of the same rules, in one run.

In a network namespace of its own (removed at the end), with N services x 2 endpoints fed to a
real Proxier as API objects (through the change trackers):
  (a) render alone (the pure function);
  (b) the physical limit: `iptables-restore --noflush` of the very text the proxier renders;
  (c) a full sync (render, restore, jump check) and its ratio to (b); (c') the same with the
      listing of the kernel's chains that the first sync and a sync after an error add;
  (d) a partial sync after one endpoint change (what the API-to-rule latency is made of);
  (e) the canary check the daemon runs every few seconds;
for the nf_tables backend (`iptables`) and the legacy one (`iptables-legacy`). Medians and p99.
Run as root: `.venv/bin/python bench/netproxy.py [--services 1000] [--runs 15]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# Run as a script, this file's directory comes first on sys.path and this module would shadow
# the netproxy package it measures.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

from netproxy.conntrack import FakeConntrack  # noqa: E402
from netproxy.iptables import RestoreBackend  # noqa: E402
from netproxy.proxier import Proxier, ProxierConfig  # noqa: E402
from netproxy.routes import FakeNetlink  # noqa: E402
from netproxy.rules import render  # noqa: E402
from pinnace.local.netns import NetworkNamespace  # noqa: E402


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def line(what: str, samples: list[float], limit: list[float] | None = None) -> str:
    p50, p99 = statistics.median(samples), percentile(samples, 99)
    ratio = f"  ratio {p50 / statistics.median(limit):.2f}x" if limit else ""
    return f"  {what:<50} p50 {p50 * 1e3:8.1f} ms  p99 {p99 * 1e3:8.1f} ms{ratio}"


def objects(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    services, slices = [], []
    for i in range(n):
        name = f"svc-{i}"
        services.append({"metadata": {"namespace": "bench", "name": name},
                         "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                                  "ports": [{"name": "http", "port": 80}]}})
        slices.append({"metadata": {"namespace": "bench", "name": f"{name}-x",
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4",
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       "endpoints": [{"addresses": [f"10.{100 + k}.{i // 250}.{i % 250 + 1}"]}
                                     for k in range(2)]})
    return services, slices


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def measure(binary: str, n: int, runs: int) -> None:
    """Runs inside the namespace (the parent re-executes us under nsenter)."""
    backend = RestoreBackend(binary)
    proxier = Proxier(ProxierConfig(node_name="bench", cluster_cidr="10.64.0.0/10",
                                    min_sync_period=0), backend, FakeConntrack(),
                      FakeNetlink(["192.168.1.5"]))
    services, slices = objects(n)
    for s in services:
        proxier.on_service(None, s)
    for s in slices:
        proxier.on_endpointslice(None, s)
    proxier.set_synced()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(proxier.sync())
    text = render(proxier.services, proxier.endpoints, proxier.render_options(),
                  existing_nat_chains=proxier._nat_chains).text
    rules = text.count("\n-A ")
    print(f"{binary}: {n} services x 2 endpoints, {rules} rules, {len(text) // 1024} KiB")
    rendering = timed(lambda: render(proxier.services, proxier.endpoints,
                                     proxier.render_options()), runs)
    raw = timed(lambda: subprocess.run([f"{binary}-restore", "-w", "--noflush"], input=text,
                                       text=True, check=True), runs)

    def full(relist: bool) -> Callable[[], None]:
        def run() -> None:
            proxier.need_full_sync = True
            proxier._listed = not relist
            loop.run_until_complete(proxier.sync())
        return run

    full_syncs = timed(full(False), runs)
    relisting = timed(full(True), runs)
    flip = [0]

    def one_change() -> None:
        i = flip[0] = flip[0] + 1
        old = slices[0]
        new = {**old, "endpoints": [{"addresses": [f"10.99.0.{i % 200 + 1}"]}]}
        proxier.on_endpointslice(old, new)
        slices[0] = new
        loop.run_until_complete(proxier.sync())

    partial = timed(one_change, runs)
    canary = timed(proxier.canary_present, runs)
    assert proxier.stats.failures == 0, proxier.stats.last_error
    print(line("(a) render (pure)", rendering))
    print(line(f"(b) raw {binary}-restore of the same text", raw))
    print(line("(c) full sync (render, restore, jump check)", full_syncs, raw))
    print(line("(c') full sync listing chains (first/after error)", relisting, raw))
    print(line("(d) sync after one endpoint change (partial)", partial))
    print(line("(e) canary check (3 tables)", canary))
    loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # binary, when re-executed
    args = parser.parse_args()
    if args.inside:
        measure(args.inside, args.services, args.runs)
        return 0
    if os.geteuid() != 0:
        print("bench/netproxy.py needs root (network namespaces, iptables)", file=sys.stderr)
        return 1
    status = 0
    for binary in ("iptables", "iptables-legacy"):
        ns = NetworkNamespace(f"pnbench{os.getpid() % 0x10000:04x}")
        ns.create()
        try:
            status |= subprocess.run(
                ["nsenter", f"--net=/run/netns/{ns.name}", "--", sys.executable, __file__,
                 "--inside", binary, "--services", str(args.services), "--runs",
                 str(args.runs)]).returncode
        finally:
            ns.remove()
    return status


if __name__ == "__main__":
    sys.exit(main())
