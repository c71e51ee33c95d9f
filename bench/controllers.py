"""Controller-manager: a Deployment of 1000 replicas, and its rolling update, against raw creates.

Starts a private etcd, `pinnace apiserver`, `pinnace scheduler` and `pinnace controller-manager`
(deployment and replicaset controllers), and 100 Node objects (Ready; no agent runs: this bench
plays the kubelet, setting each pod bound to a node Running and Ready, and finishing the deletion
of pods being deleted). Then measures:
  (a) the raw limit: 1000 pod creates straight through the API, in the ReplicaSet controller's
      slow-start batches (1, 2, 4, ...) but never more at once than its client's connection
      pool (64);
  (b) a Deployment of 1000 replicas: create -> all 1000 pods exist, -> all bound,
      -> availableReplicas 1000; the ratio of "all exist" to (a);
  (c) a rolling update of it (new image; 25% surge, 25% unavailable): -> the rollout complete
      (updatedReplicas = availableReplicas = 1000, old ReplicaSet at 0);
with the controller-manager's RSS and CPU after each. The machine is shared: the load average
is printed with each figure. Run as root: `.venv/bin/python bench/controllers.py [--replicas N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from common import PodWatch, control_plane, cpu_seconds, load, rss_mb

from pinnace.local.apiserver import APIServerProcess
from pinnace.local.daemon import PinnaceDaemon
from pinnace.local.process import Process

Object = dict[str, Any]
NODES = 100
NS = "bench"
KUBELET_CONCURRENCY = 32
CLIENT_CONNECTIONS = 64  # the RESTClient's pool: the most requests a controller has in flight


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pod_template(image: str) -> Object:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "web", "image": image,
                                     "resources": {"requests": {"cpu": "10m",
                                                                "memory": "16Mi"}}}]}}


class Kubelet(PodWatch):
    """The bench's stand-in for the agents: watches the namespace's pods and
    - marks a pod bound to a node Running and Ready (status subresource),
    - finishes a bound pod's graceful deletion (DELETE with grace 0, as the kubelet does),
    and records, per pod name, when it was first seen, bound and Ready."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        super().__init__(http, NS)
        self.seen: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.changed = asyncio.Event()
        self._busy: set[str] = set()
        self._limit = asyncio.Semaphore(KUBELET_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        for task in list(self._tasks):
            task.cancel()

    def observe(self, pod: Object) -> None:
        name = pod["metadata"]["name"]
        at = time.perf_counter()
        self.seen.setdefault(name, at)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.bound.setdefault(name, at)
        running = (pod.get("status") or {}).get("phase") == "Running"
        if running:
            self.ready.setdefault(name, at)
        self.changed.set()
        if not node or name in self._busy:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._spawn(name, self._finish_deletion(name))
        elif not running:
            self._spawn(name, self._run(pod))

    def _spawn(self, name: str, work: Awaitable[None]) -> None:
        async def limited() -> None:
            async with self._limit:
                try:
                    await work
                finally:
                    self._busy.discard(name)

        self._busy.add(name)
        task = asyncio.create_task(limited())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, pod: Object) -> None:
        stamp = now_rfc3339()
        container = pod["spec"]["containers"][0]
        conditions = [{"type": t, "status": "True", "lastTransitionTime": stamp}
                      for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        status = {"status": {
            "phase": "Running", "conditions": conditions, "startTime": stamp,
            "hostIP": "10.0.0.1", "podIP": "10.1.0.1",
            "containerStatuses": [{
                "name": container["name"], "ready": True, "started": True, "restartCount": 0,
                "image": container["image"], "imageID": container["image"],
                "containerID": f"containerd://{pod['metadata']['uid']}",
                "state": {"running": {"startedAt": stamp}}}]}}
        async with self.http.patch(
                f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/status",
                data=orjson.dumps(status),
                headers={"Content-Type": "application/merge-patch+json"}) as r:
            await r.read()

    async def _finish_deletion(self, name: str) -> None:
        async with self.http.delete(f"/api/v1/namespaces/{NS}/pods/{name}",
                                    json={"gracePeriodSeconds": 0}) as r:
            await r.read()


async def wait_until(kubelet: Kubelet, check: Callable[[], Awaitable[bool] | bool],
                     timeout: float = 900) -> float:
    """Poll `check` on every pod change (and every second); return when it held."""
    deadline = time.perf_counter() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError("the benchmark timed out")
        kubelet.changed.clear()
        try:
            await asyncio.wait_for(kubelet.changed.wait(), 1.0)
        except TimeoutError:
            pass


async def get(http: aiohttp.ClientSession, path: str) -> Object:
    async with http.get(path) as r:
        body: Object = orjson.loads(await r.read())
        return body


async def raw_creates(http: aiohttp.ClientSession, count: int) -> float:
    """(a): `count` pod creates, in slow-start batches of at most CLIENT_CONNECTIONS."""
    template = pod_template("localhost/busybox:1")
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "raw"}},
            "spec": dict(template["spec"], schedulerName="nobody")}
    made, batch = 0, 1
    start = time.perf_counter()

    async def one(i: int) -> None:
        pod = dict(body, metadata={"name": f"raw-{i}", "labels": {"app": "raw"}})
        async with http.post("/api/v1/namespaces/raw/pods", data=orjson.dumps(pod),
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 201, await r.text()

    while made < count:
        size = min(batch, count - made, CLIENT_CONNECTIONS)
        await asyncio.gather(*(one(made + i) for i in range(size)))
        made += size
        batch *= 2
    return time.perf_counter() - start


async def make_nodes(http: aiohttp.ClientSession) -> None:
    allocatable = {"cpu": "64", "memory": "256Gi", "pods": "110"}

    async def one(i: int) -> None:
        name = f"node-{i:03d}"
        async with http.post("/api/v1/nodes", json={"metadata": {
                "name": name, "labels": {"kubernetes.io/hostname": name}}}) as r:
            assert r.status == 201, await r.text()
        status = {"status": {"capacity": allocatable, "allocatable": allocatable,
                             "conditions": [{"type": "Ready", "status": "True",
                                             "reason": "KubeletReady",
                                             "lastHeartbeatTime": now_rfc3339(),
                                             "lastTransitionTime": now_rfc3339()}]}}
        async with http.patch(f"/api/v1/nodes/{name}/status", data=orjson.dumps(status),
                              headers={"Content-Type": "application/merge-patch+json"}) as r:
            assert r.status == 200, await r.text()

    await asyncio.gather(*(one(i) for i in range(NODES)))


def figures(manager: Process, cpu0: float) -> str:
    pid = manager.pid or 0
    return (f"controller-manager RSS {rss_mb(pid):4.0f} MB, CPU {cpu_seconds(pid) - cpu0:5.1f} s"
            f"  [{load()}]")


async def run(api: APIServerProcess, manager: Process, args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(ssl=api.ssl_context(), limit=600)
    async with aiohttp.ClientSession(api.url, connector=connector) as http:
        for ns in (NS, "raw"):
            async with http.post("/api/v1/namespaces", json={"metadata": {"name": ns}}) as r:
                assert r.status == 201, await r.text()
        await make_nodes(http)
        raw = await raw_creates(http, args.replicas)
        print(f"(a) raw: {args.replicas} pod creates through the API   {raw:6.2f} s "
              f"({args.replicas / raw:.0f}/s)  [{load()}]", flush=True)
        async with http.delete("/api/v1/namespaces/raw/pods") as r:
            await r.read()

        kubelet = Kubelet(http)
        await kubelet.start()
        n = args.replicas
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web", "namespace": NS},
                      "spec": {"replicas": n, "selector": {"matchLabels": {"app": "web"}},
                               "template": pod_template("localhost/busybox:1")}}
        idle_rss = rss_mb(manager.pid or 0)
        cpu0 = cpu_seconds(manager.pid or 0)
        start = time.perf_counter()
        async with http.post(f"/apis/apps/v1/namespaces/{NS}/deployments",
                             data=orjson.dumps(deployment),
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 201, await r.text()
        exist = await wait_until(kubelet, lambda: len(kubelet.seen) >= n)
        bound = await wait_until(kubelet, lambda: len(kubelet.bound) >= n)

        async def available() -> bool:
            status = (await get(http, f"/apis/apps/v1/namespaces/{NS}/deployments/web")).get(
                "status") or {}
            return bool(int(status.get("availableReplicas") or 0) >= n)

        ready = await wait_until(kubelet, available)
        print(f"(b) Deployment of {n}: all pods exist  {exist - start:6.2f} s "
              f"({n / (exist - start):.0f}/s) | raw creates {raw:.2f} s, "
              f"ratio {(exist - start) / raw:4.2f}", flush=True)
        print(f"    all bound {bound - start:6.2f} s, availableReplicas {n} after "
              f"{ready - start:6.2f} s; {figures(manager, cpu0)} (idle {idle_rss:.0f} MB)",
              flush=True)

        cpu0 = cpu_seconds(manager.pid or 0)
        patch = {"spec": {"template": pod_template("localhost/busybox:2")}}
        start = time.perf_counter()
        async with http.patch(f"/apis/apps/v1/namespaces/{NS}/deployments/web",
                              data=orjson.dumps(patch),
                              headers={"Content-Type": "application/merge-patch+json"}) as r:
            assert r.status == 200, await r.text()

        async def complete() -> bool:
            d = await get(http, f"/apis/apps/v1/namespaces/{NS}/deployments/web")
            status = d.get("status") or {}
            return bool(int(status.get("observedGeneration") or 0) >= d["metadata"]["generation"]
                        and status.get("updatedReplicas") == n == status.get("availableReplicas")
                        and status.get("replicas") == n)

        done = await wait_until(kubelet, complete)
        print(f"(c) rolling update of {n} (25% surge/unavailable): complete in "
              f"{done - start:6.2f} s ({n / (done - start):.0f} pods replaced/s); "
              f"{figures(manager, cpu0)}", flush=True)
        await kubelet.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("controllers bench: needs root", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with control_plane("pn-bench-ctrl-") as cp:
        daemons = [PinnaceDaemon(name, ["--kubeconfig", str(cp.api.kubeconfig), "--v", "1",
                                        *extra], cp.base / f"{name}.log")
                   for name, extra in (("scheduler", ["--leader-elect=false"]),
                                       ("controller-manager", ["--leader-elect=false",
                                                               "--controllers",
                                                               "deployment,replicaset"]))]
        try:
            for daemon in daemons:
                daemon.start()
            for daemon in daemons:
                daemon.wait_notified(60)
            asyncio.run(run(cp.api, daemons[1], args))
        finally:
            for daemon in daemons:
                daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
