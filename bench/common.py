"""What the benchmarks share: a private control plane, a pod watch, percentiles, a process's RSS
and CPU, and the load average (the machine is shared: every figure is printed with it).

`control_plane` starts a private etcd and a quiet `pinnace apiserver` under a fresh directory in
/tmp and stops and removes them at the end. `PodWatch` lists a namespace's pods, then watches
from that list's resourceVersion; a watch that ends or falls behind (an ERROR event: 410, this
client was too slow for the apiserver's window) resumes from a fresh list. Daemons the benches
start are `pinnace.local.daemon.PinnaceDaemon`s, gated on their READY=1. A bench script imports
this as `common` (its own directory is first on sys.path).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from pinnace.local.apiserver import APIServerProcess
from pinnace.local.etcd import Etcd

Object = dict[str, Any]


def pct(samples: list[float], p: float) -> float:
    """The `p`th percentile of `samples` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU of a process or thread, from its /proc stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


@dataclass
class ControlPlane:
    base: Path  # the run's directory: logs and profiles go here too
    etcd: Etcd
    api: APIServerProcess


@contextmanager
def control_plane(prefix: str) -> Iterator[ControlPlane]:
    """etcd and `pinnace apiserver --v 0` under a fresh /tmp/<prefix>*, stopped and removed at
    the end."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    etcd = Etcd(base / "etcd")
    api = APIServerProcess(base / "api", etcd.endpoint, extra=("--v", "0"))
    try:
        etcd.start()
        api.start()
        yield ControlPlane(base, etcd, api)
    finally:
        api.stop()
        etcd.stop()
        shutil.rmtree(base, ignore_errors=True)


class PodWatch:
    """A namespace's pods, listed and then watched; `observe` sees each listed pod and each one
    an event of a type in `events` carries, until `finished()`."""

    events: tuple[str, ...] = ("ADDED", "MODIFIED")

    def __init__(self, http: aiohttp.ClientSession, ns: str) -> None:
        self.http, self.ns = http, ns
        self.relists = 0
        self.task: asyncio.Task[None] | None = None

    def observe(self, pod: Object) -> None:
        raise NotImplementedError

    def finished(self) -> bool:
        return False

    async def start(self) -> None:
        rv = await self._list()
        self.task = asyncio.create_task(self._watch(rv))

    async def _list(self) -> str:
        async with self.http.get(f"/api/v1/namespaces/{self.ns}/pods") as r:
            listed = orjson.loads(await r.read())
        for obj in listed["items"]:
            self.observe(obj)
        return str(listed["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> None:
        while not self.finished():
            url = (f"/api/v1/namespaces/{self.ns}/pods?watch=true&resourceVersion={rv}"
                   "&allowWatchBookmarks=true")
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for line in r.content:
                    event = orjson.loads(line)
                    if event["type"] == "ERROR":
                        break
                    rv = event["object"]["metadata"].get("resourceVersion") or rv
                    if event["type"] in self.events:
                        self.observe(event["object"])
                    if self.finished():
                        return
            self.relists += 1
            rv = await self._list()
