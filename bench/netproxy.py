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
Then, end to end, in another namespace of its own with a private etcd and `pinnace apiserver`
(as bench/api.py starts them) holding the same N services x 2 endpoints, and a real
`pinnace netproxy` process (real informers, default --iptables-min-sync-period 1s):
  (f) one endpoint change: from the API write (a merge PATCH of a slice: its one endpoint moves
      to another local address) to the first connection to the ClusterIP that reaches the new
      endpoint, probed every millisecond; writes spaced by the min sync period, so this is the
      pipeline (write, watch, sync, restore), not the rate limit. Goal p50 <= 200 ms, p99 <= 1 s;
  (g) DNS queries per second and latency of netproxy's cluster DNS (A records of the services,
      dnspython from many concurrent clients, one socket each), next to a trivial UDP echo
      server in another process (flips the QR bit, so dnspython accepts it) as the limit;
  (h) netproxy's RSS with everything loaded (goal <= 50 MB).
The machine may be shared: load averages are printed before and after.
Run as root: `.venv/bin/python bench/netproxy.py [--services 1000] [--runs 15] [--samples 60]`
(`--only e2e` or `--only sync` for one half).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path and this module would shadow
# the netproxy package it measures.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import aiohttp  # noqa: E402

from netproxy.conntrack import FakeConntrack  # noqa: E402
from netproxy.iptables import RestoreBackend  # noqa: E402
from netproxy.proxier import Proxier, ProxierConfig  # noqa: E402
from netproxy.routes import FakeNetlink  # noqa: E402
from netproxy.rules import render  # noqa: E402
from pinnace.local.apiserver import APIServerProcess  # noqa: E402
from pinnace.local.etcd import Etcd  # noqa: E402
from pinnace.local.netns import NetworkNamespace  # noqa: E402
from pinnace.local.process import Process, free_port  # noqa: E402


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


# -- end to end: apiserver -> netproxy process -> kernel ------------------------------------------

LOCAL_ENDPOINTS = ("10.200.0.1", "10.200.0.2")  # on loopback; one listener answers for both


def loadavg() -> str:
    return "load average " + " ".join(open("/proc/loadavg").read().split()[:3])


def rss_mb(pid: int) -> float:
    for row in open(f"/proc/{pid}/status").read().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


def endpoint_listener() -> socket.socket:
    """Port 8080 on every local address; each connection is told the address it reached."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 8080))
    server.listen(128)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.getsockname()[0].encode())
    threading.Thread(target=serve, daemon=True).start()
    return server


def probe(cluster_ip: str) -> str:
    """The endpoint a new connection to the ClusterIP reaches ("" if none yet)."""
    try:
        with socket.create_connection((cluster_ip, 80), timeout=0.2) as s:
            return s.recv(64).decode()
    except OSError:
        return ""


def reaches(cluster_ip: str, endpoint: str) -> Callable[[], bool]:
    return lambda: probe(cluster_ip) == endpoint


def until(check: Callable[[], bool], timeout: float, pause: float = 0.001) -> float | None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        time.sleep(pause)
    return None


async def load(api: APIServerProcess, services: list[dict[str, Any]],
               slices: list[dict[str, Any]]) -> None:
    """Create the namespace, the services (ClusterIPs allocated) and their slices."""
    connector = aiohttp.TCPConnector(ssl=api.ssl_context(), limit=32)
    async with aiohttp.ClientSession(connector=connector, base_url=api.url) as http:
        async with http.post("/api/v1/namespaces", json={"metadata": {"name": "bench"}}) as r:
            assert r.status == 201, await r.text()
        # Services one at a time: concurrent creates contend on the ClusterIP and NodePort
        # allocators (measured here: ~95/s sequential, ~9/s at 32 in flight).
        for path, items, workers in (
                ("/api/v1/namespaces/bench/services", services, 1),
                ("/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices", slices, 32)):
            queue = iter(items)
            start = time.perf_counter()

            async def worker(path: str = path, queue: Any = queue) -> None:
                for item in queue:
                    async with http.post(path, json=item) as r:
                        assert r.status == 201, await r.text()
            await asyncio.gather(*(worker() for _ in range(workers)))
            print(f"  created {len(items)} {path.rsplit('/', 1)[1]} through the API at "
                  f"{len(items) / (time.perf_counter() - start):.0f}/s")


class API:
    """A blocking keep-alive HTTPS client for the samples (one write per sample)."""

    def __init__(self, api: APIServerProcess) -> None:
        self.conn = http.client.HTTPSConnection("127.0.0.1", api.port,
                                                context=api.ssl_context())

    def request(self, method: str, path: str, body: object = None,
                content_type: str = "application/json") -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": content_type})
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        assert response.status < 300, payload
        return dict(payload)


def endpoints_of(ip: str) -> dict[str, Any]:
    return {"endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]}


def dns_echo_server(port: int) -> subprocess.Popen[bytes]:
    """The physical limit of a UDP request/response server here: echo, QR bit set."""
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind(('127.0.0.1', {port}))\n"
            "while True:\n    d, a = s.recvfrom(4096)\n    d = bytearray(d)\n"
            "    d[2] |= 0x80\n    s.sendto(d, a)\n")
    return subprocess.Popen([sys.executable, "-c", code])


async def dns_load(port: int, names: list[str], total: int, clients: int
                   ) -> tuple[float, list[float], int]:
    """`clients` concurrent resolvers, `total` A queries: (queries/s, latencies, failures)."""
    import dns.asyncbackend
    import dns.asyncquery
    import dns.message

    backend = dns.asyncbackend.get_default_backend()
    latencies: list[float] = []
    failures = [0]
    queue = iter(range(total))

    async def client(k: int) -> None:
        sock = await backend.make_socket(  # type: ignore[no-untyped-call]
            socket.AF_INET, socket.SOCK_DGRAM, 0, ("127.0.0.1", 0))
        try:
            for i in queue:
                query = dns.message.make_query(names[(i * 7 + k) % len(names)], "A")
                t0 = time.perf_counter()
                try:
                    answer = await dns.asyncquery.udp(query, "127.0.0.1", port=port,
                                                      timeout=2, sock=sock)
                    latencies.append(time.perf_counter() - t0)
                    if answer.rcode() != 0:
                        failures[0] += 1
                except Exception:  # noqa: BLE001 - counted: a lost or bad answer
                    failures[0] += 1
        finally:
            await sock.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return total / (time.perf_counter() - start), latencies, failures[0]


def rate_line(what: str, rate: float, samples: list[float], limit: float | None = None) -> str:
    ratio = f"  ratio {rate / limit:.2f}x of the limit" if limit else ""
    return (f"  {what:<50} {rate:8.0f}/s  p50 {statistics.median(samples) * 1e3:6.2f} ms  "
            f"p99 {percentile(samples, 99) * 1e3:6.2f} ms{ratio}")


def imports_rss() -> float:
    """RSS of a Python that imported what netproxy imports, and did nothing else."""
    code = ("import netproxy.daemon, netproxy.dns.main, netproxy.healthcheck, netproxy.metrics, "
            "netproxy.main\nprint(open('/proc/self/status').read())")
    status = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def synced(port: int) -> Callable[[], bool]:
    """netproxy's /healthz says it has synced once."""
    def check() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return not json.load(r)["lastUpdated"].startswith("0001-")
    return check


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (all its threads)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    for row in text.splitlines():
        if row.startswith(name + " "):
            return float(row.split()[1])
    return 0.0


def measure_e2e(n: int, samples: int, min_sync: float, dns_queries: int, clients: int) -> None:
    """Runs inside the namespace (the parent re-executes us under nsenter)."""
    from pyroute2 import IPRoute

    print(f"end to end: {n} services x 2 endpoints through etcd + apiserver + netproxy "
          f"({os.cpu_count()} cores, {loadavg()})")
    with IPRoute() as ipr:  # no dummy links on this kernel: loopback takes them
        index = ipr.link_lookup(ifname="lo")[0]
        for ip in LOCAL_ENDPOINTS:
            ipr.addr("add", index=index, address=ip, prefixlen=32)
        ipr.route("add", dst="10.96.0.0/12", oif=index)  # a route, so connect() reaches OUTPUT
    listener = endpoint_listener()
    base = Path(tempfile.mkdtemp(prefix="pn-bench-netproxy-", dir="/tmp"))
    etcd = Etcd(base / "etcd")
    api = APIServerProcess(base / "api", etcd.endpoint, extra=("--v", "0"))
    dns_port, echo_port, metrics_port, healthz_port = (free_port() for _ in range(4))
    proxy = Process("netproxy", [
        sys.executable, "-m", "pinnace", "netproxy", "--kubeconfig", str(api.kubeconfig),
        "--node-name", "bench", "--iptables-min-sync-period", f"{min_sync}s",
        "--dns-address", "127.0.0.1", "--dns-port", str(dns_port),
        "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
        "--healthz-bind-address", f"127.0.0.1:{healthz_port}", "-v", "1"],
        base / "netproxy.log")
    echo: subprocess.Popen[bytes] | None = None
    try:
        etcd.start()
        api.start()
        services, slices = objects(n)
        for svc in services:
            del svc["spec"]["clusterIP"]  # the apiserver allocates them
        slices[0].update(endpoints_of(LOCAL_ENDPOINTS[0]))
        t0 = time.perf_counter()
        asyncio.run(load(api, services, slices))
        print(f"  loaded {2 * n} objects through the API in {time.perf_counter() - t0:.1f} s")
        client = API(api)
        cluster_ip = client.request("GET", "/api/v1/namespaces/bench/services/svc-0")[
            "spec"]["clusterIP"]
        t0 = time.perf_counter()
        proxy.start()
        proxy.wait_ready(synced(healthz_port), timeout=120)
        assert probe(cluster_ip) == LOCAL_ENDPOINTS[0]
        first = time.perf_counter() - t0
        rss_loaded = rss_mb(proxy.pid or 0)
        print(f"  netproxy start to first sync of {n} services: {first:.2f} s "
              f"(RSS {rss_loaded:.1f} MB)")
        time.sleep(2)  # let the DNS caches settle
        latencies: list[float] = []
        misses = 0
        path = "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices/svc-0-x"
        for i in range(samples):
            target = LOCAL_ENDPOINTS[(i + 1) % 2]
            time.sleep(min_sync * 1.05 + random.uniform(0, 0.1))
            t0 = time.perf_counter()
            client.request("PATCH", path, endpoints_of(target), "application/merge-patch+json")
            took = until(reaches(cluster_ip, target), 10.0)
            if took is None:
                misses += 1
            else:
                latencies.append(time.perf_counter() - t0)
        print(line(f"(f) API write -> new endpoint reached ({len(latencies)})", latencies) +
              f"  max {max(latencies) * 1e3:.1f} ms  (goal p50 <= 200 ms, p99 <= 1000 ms)"
              + (f"  {misses} not seen in 10 s" if misses else ""))
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            text = response.read().decode()
        partial = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
        count = metric(text, f"{partial}_count")
        if count:
            print(f"  {'    netproxy partial syncs meanwhile, mean':<50} "
                  f"{metric(text, f'{partial}_sum') / count * 1e3:8.1f} ms  ({count:.0f} syncs)")
        echo = dns_echo_server(echo_port)
        names = [f"svc-{i}.bench.svc.cluster.local." for i in range(n)]
        asyncio.run(dns_load(dns_port, names, 500, 4))  # warm up both sides
        asyncio.run(dns_load(echo_port, names, 500, 4))
        runs = []
        for port, pid in ((echo_port, echo.pid), (dns_port, proxy.pid or 0)):
            before = (cpu_seconds(pid), cpu_seconds(os.getpid()))
            runs.append((*asyncio.run(dns_load(port, names, dns_queries, clients)),
                         (cpu_seconds(pid) - before[0]) / dns_queries * 1e6,
                         (cpu_seconds(os.getpid()) - before[1]) / dns_queries * 1e6))
        (limit_rate, limit_lat, _, limit_cpu, limit_client), (rate, lat, failed, cpu, client_cpu) \
            = runs
        print(rate_line(f"(g) raw UDP echo server, {clients} clients", limit_rate, limit_lat) +
              f"  cpu/query: server {limit_cpu:.0f} us, client {limit_client:.0f} us")
        print(rate_line(f"(g) netproxy cluster DNS, {clients} clients", rate, lat, limit_rate) +
              f"  cpu/query: server {cpu:.0f} us, client {client_cpu:.0f} us" +
              (f"  {failed} failed" if failed else ""))
        print(f"  {'    the client is the bottleneck above; by CPU, per core:':<50} netproxy DNS "
              f"{1e6 / max(cpu, 1e-9):8.0f}/s, echo {1e6 / max(limit_cpu, 1e-9):8.0f}/s")
        print(f"  {'(h) netproxy RSS':<50} {rss_mb(proxy.pid or 0):8.1f} MB at the end "
              f"({rss_loaded:.1f} MB after the first sync; goal <= 50 MB)")
        proxy.stop()
        print(f"  {'    where it goes: imports alone':<50} {imports_rss():8.1f} MB")
        bare = Process("netproxy-bare", [*proxy.argv[:proxy.argv.index("--dns-address")],
                                         "--enable-dns=false", "--healthz-bind-address",
                                         f"127.0.0.1:{healthz_port}",
                                         "--metrics-bind-address", ""], base / "bare.log")
        try:
            bare.start()
            bare.wait_ready(synced(healthz_port), timeout=120)
            print(f"  {'    without DNS and metrics, after a first sync':<50} "
                  f"{rss_mb(bare.pid or 0):8.1f} MB")
        finally:
            bare.stop()
        print(f"  {loadavg()} after")
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait()
        proxy.stop()
        api.stop()
        etcd.stop()
        listener.close()
        shutil.rmtree(base, ignore_errors=True)


def in_namespace(argv: list[str]) -> int:
    """Re-execute this script with `argv` inside a network namespace of its own."""
    ns = NetworkNamespace(f"pnbench{os.getpid() % 0x10000:04x}")
    ns.create()
    try:
        return subprocess.run(["nsenter", f"--net=/run/netns/{ns.name}", "--",
                               sys.executable, __file__, *argv]).returncode
    finally:
        ns.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--samples", type=int, default=60, help="endpoint changes timed")
    parser.add_argument("--min-sync-period", type=float, default=1.0,
                        help="netproxy's --iptables-min-sync-period, seconds (default 1)")
    parser.add_argument("--dns-queries", type=int, default=20000)
    parser.add_argument("--dns-clients", type=int, default=32)
    parser.add_argument("--only", choices=("sync", "e2e"))
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # binary, when re-executed
    parser.add_argument("--inside-e2e", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        measure(args.inside, args.services, args.runs)
        return 0
    if args.inside_e2e:
        measure_e2e(args.services, args.samples, args.min_sync_period, args.dns_queries,
                    args.dns_clients)
        return 0
    if os.geteuid() != 0:
        print("bench/netproxy.py needs root (network namespaces, iptables)", file=sys.stderr)
        return 1
    print(loadavg())
    status = 0
    common = ["--services", str(args.services)]
    if args.only != "e2e":
        for binary in ("iptables", "iptables-legacy"):
            status |= in_namespace(["--inside", binary, *common, "--runs", str(args.runs)])
    if args.only != "sync":
        status |= in_namespace([
            "--inside-e2e", *common, "--samples", str(args.samples), "--min-sync-period",
            str(args.min_sync_period), "--dns-queries", str(args.dns_queries),
            "--dns-clients", str(args.dns_clients)])
    return status


if __name__ == "__main__":
    sys.exit(main())
