"""The agent's run script: watch this node's pods, sync each through its worker, report status.

Order (as k3s' agent/run.go reads): import air-gapped images -> register the node -> start the
informers (this node's pods; configmaps, secrets and services for env and volumes) -> adopt
what the runtime already runs (after a restart nothing starts twice; pods deleted meanwhile are
removed) -> PLEG + probes + pod workers. Status is PATCHed only when it changed; a deleted pod
is stopped with its grace period, then the agent confirms the deletion to the apiserver.
A write the apiserver fails (it may be restarting) is retried within 0.5-5 s, and a containerd
that answers again after failing makes every pod sync at once (see the PLEG).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from agent import labels
from agent import status as podstatus
from agent.config import AgentConfig
from agent.gc import GarbageCollector
from agent.image_pulls import ImageManager
from agent.pleg import PLEG
from agent.pod_workers import DONE, PodWorkers
from agent.podsync import PodSyncer
from agent.probes import ProbeManager
from agent.volumes import VolumeManager
from controlplane.api import errors
from controlplane.api.meta import now_rfc3339, parse_time
from controlplane.api.sdnotify import Readiness
from controlplane.client.events import EventSink
from controlplane.client.informer import Informer
from controlplane.client.rest import CONFIGMAPS, PODS, SECRETS, SERVICES, RESTClient
from cri import errors as cri_errors
from cri.containerd_client import ContainerdClient
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)
Object = dict[str, Any]
API_RETRY_MIN, API_RETRY_MAX = 0.5, 5.0  # seconds between a pod's failed API writes


def deadline_remaining(pod: Object, now: float) -> float | None:
    """Seconds left of the pod's activeDeadlineSeconds (None: no deadline or not started)."""
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    started = (pod.get("status") or {}).get("startTime")
    if deadline is None or not started:
        return None
    return float(deadline) - (now - parse_time(str(started)).timestamp())


class Agent:
    def __init__(self, config: AgentConfig, client: RESTClient, runtime: Any,
                 events: ContainerdClient, *, node_allocatable: Any = None) -> None:
        self.config = config
        self.client = client
        self.runtime = runtime
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={config.node_name}")
        self.configmaps = Informer(client, CONFIGMAPS)
        self.secrets = Informer(client, SECRETS)
        self.services = Informer(client, SERVICES)
        self.sink = EventSink(client, host=config.node_name)
        self.recorder = self.sink.recorder("kubelet")
        self._uid_key: dict[str, str] = {}  # pod uid -> namespace/name, from the informer
        self._allocatable: Callable[[], dict[str, str]] = node_allocatable or (lambda: {})
        self.probes = ProbeManager(runtime, on_result=self._probe_result,
                                   on_event=self._probe_event)
        self.volumes = VolumeManager(config.pods_dir, configmap=self._configmap,
                                     secret=self._secret, node_name=config.node_name,
                                     pod_info=self._pod_by_uid,
                                     node_allocatable=self._allocatable)
        self.images = ImageManager(runtime, self.recorder, secret=self._secret)
        self.syncer = PodSyncer(
            runtime, config, images=self.images, volumes=self.volumes, recorder=self.recorder,
            configmap=self._configmap, secret=self._secret, services=self._services,
            liveness_failed=self._liveness_failed, node_allocatable=self._allocatable)
        self.workers = PodWorkers(self.sync)
        self.pleg = PLEG(runtime, events, on_change=self.workers.update,
                         on_recovered=self._runtime_recovered)
        self._liveness: set[tuple[str, str]] = set()  # (uid, container) that failed liveness
        self._api_retry: dict[str, float] = {}  # pod uid -> the last delay after a failed write
        self._adopted = asyncio.Event()  # set once what the runtime runs has been adopted
        self.gc = GarbageCollector(runtime, config.gc, recorder=self.recorder,
                                   node_name=config.node_name, log_dir=config.log_dir,
                                   pod_exists=lambda uid: self._pod_by_uid(uid) is not None)

    def __repr__(self) -> str:
        return f"<Agent {self.config.node_name} {self.workers!r}>"

    # -- lookups for env and volumes -------------------------------------------------------------

    def _configmap(self, namespace: str, name: str) -> Object | None:
        return self.configmaps.get(f"{namespace}/{name}")

    def _secret(self, namespace: str, name: str) -> Object | None:
        return self.secrets.get(f"{namespace}/{name}")

    def _services(self, namespace: str) -> list[Object]:
        """The namespace's services plus default/kubernetes (KUBERNETES_SERVICE_HOST, ...)."""
        found = self.services.list(namespace)
        kubernetes = self.services.get("default/kubernetes")
        if namespace != "default" and kubernetes is not None:
            found.append(kubernetes)
        return found

    def _pod_by_uid(self, uid: str) -> Object | None:
        key = self._uid_key.get(uid)
        pod = self.pods.get(key) if key else None
        return pod if pod is not None and pod["metadata"].get("uid") == uid else None

    # -- events in -------------------------------------------------------------------------------

    def _pod_changed(self, pod: Object) -> None:
        uid = pod["metadata"]["uid"]
        self._uid_key[uid] = f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"
        self.workers.update(uid)

    def _pod_deleted(self, pod: Object) -> None:
        self.workers.update(pod["metadata"]["uid"])

    def _source_changed(self, obj: Object) -> None:
        """A configMap or secret changed: resync the pods whose volumes use it."""
        namespace = obj["metadata"].get("namespace", "")
        for uid, key in list(self._uid_key.items()):
            if key.startswith(f"{namespace}/"):
                self.workers.update(uid)

    def _probe_result(self, uid: str, container: str, kind: str, result: bool,
                      message: str) -> None:
        if kind == "liveness":
            (self._liveness.discard if result else self._liveness.add)((uid, container))
        self.workers.update(uid)

    def _probe_event(self, uid: str, container: str, reason: str, message: str) -> None:
        pod = self._pod_by_uid(uid)
        if pod is not None:
            self.recorder.event(pod, "Warning", reason, message)

    def _liveness_failed(self, uid: str, container: str) -> bool:
        failed = (uid, container) in self._liveness
        self._liveness.discard((uid, container))
        return failed

    def _runtime_recovered(self) -> None:
        """containerd answers again: sync every pod (their workers may be backing off)."""
        for uid in set(self.workers.uids()) | set(self._uid_key):
            self.workers.update(uid)

    def _api_failed(self, uid: str, what: str, exc: errors.APIError) -> float:
        """Log a failed write for the pod; return when to sync it again (0.5 s doubling to 5 s):
        the apiserver may be restarting, and the pod's state must reach it once it is back."""
        delay = min(self._api_retry.get(uid, API_RETRY_MIN / 2) * 2, API_RETRY_MAX)
        self._api_retry[uid] = delay
        log.warning("pod uid=%s: %s failed, retrying in %.1fs: %s", uid, what, delay, exc)
        return delay

    # -- the sync --------------------------------------------------------------------------------

    async def sync(self, uid: str) -> float | None:
        await self._adopted.wait()  # after a restart, act only on what the runtime settled to
        pod = self._pod_by_uid(uid)
        if pod is None:  # gone from the API (or never ours): stop and remove what runs
            await self.syncer.kill_pod(None, uid, 0)
            await self.syncer.remove_pod(uid)
            self.probes.remove_pod(uid)
            self._uid_key.pop(uid, None)
            self._api_retry.pop(uid, None)
            return DONE
        if pod["metadata"].get("deletionTimestamp"):
            return await self._terminate(pod)
        deadline = deadline_remaining(pod, time.time())
        if deadline is not None and deadline <= 0:
            return await self._deadline_exceeded(pod)
        result = await self.syncer.sync(pod)
        if deadline is not None:
            result.retry_after = min(result.retry_after or deadline, deadline)
        container_ids = {c.labels.get(labels.CONTAINER_NAME, ""): c.id
                         for c in result.containers if c.state == api.CONTAINER_RUNNING}
        pod_ip = result.sandbox.network.ip if result.sandbox is not None else ""
        self.probes.add_pod(pod, container_ids, pod_ip)
        retry = await self._report(pod, result)
        if retry is not None:
            result.retry_after = min(result.retry_after or retry, retry)
        return result.retry_after

    async def _deadline_exceeded(self, pod: Object) -> float | None:
        """activeDeadlineSeconds passed: stop the pod and fail it, as the kubelet does."""
        uid = pod["metadata"]["uid"]
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        message = "Pod was active on the node longer than the specified deadline"
        self.recorder.event(pod, "Normal", "DeadlineExceeded", message)
        grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        await self.syncer.kill_pod(pod, uid, grace)
        return await self._report(pod, await self.syncer.observe(uid),
                                  failed=("DeadlineExceeded", message))

    async def _report(self, pod: Object, result: Any,
                      failed: tuple[str, str] | None = None) -> float | None:
        """PATCH the pod's status if it changed; return when to retry if the write failed."""
        uid = pod["metadata"]["uid"]
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        new = podstatus.compute_pod_status(
            pod, sandbox=result.sandbox, containers=result.containers, waiting=result.waiting,
            ready={n: self.probes.ready(uid, n) for n in names},
            started={n: self.probes.started(uid, n) for n in names},
            host_ip=self.config.node_ip, now=now_rfc3339(), previous=pod.get("status"),
            pod_is_terminal=failed is not None)
        if failed is not None:
            new.update(phase="Failed", reason=failed[0], message=failed[1])
        old = pod.get("status") or {}
        if not podstatus.status_changed(old, new):
            self._api_retry.pop(uid, None)
            return None
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["name"], podstatus.merge_patch_for(old, new),
                                    meta.get("namespace", ""), subresource="status")
        except errors.NotFound:
            return None
        except errors.APIError as exc:
            return self._api_failed(uid, "status update", exc)
        self._api_retry.pop(uid, None)
        if new.get("phase") in ("Succeeded", "Failed") and result.sandbox is not None:
            await self.syncer.kill_pod(pod, uid, 0)  # a finished pod keeps no sandbox
        return None

    async def _terminate(self, pod: Object) -> float:
        meta = pod["metadata"]
        grace = int(meta.get("deletionGracePeriodSeconds") or 0)
        await self.syncer.kill_pod(pod, meta["uid"], grace)
        await self.syncer.remove_pod(meta["uid"])
        self.probes.remove_pod(meta["uid"])
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace", ""),
                                     grace_period=0, preconditions={"uid": meta["uid"]})
        except (errors.NotFound, errors.Conflict):
            pass
        except errors.APIError as exc:  # the informer still has it: confirm again later
            return self._api_failed(meta["uid"], "confirming the deletion", exc)
        self._api_retry.pop(meta["uid"], None)
        return DONE

    # -- running ---------------------------------------------------------------------------------

    async def _runtime_settled(self, timeout: float = 10.0) -> None:
        """Wait until the runtime stops changing before adopting what it runs.

        An agent killed mid-call leaves CRI calls that containerd still completes (a sandbox
        being set up looks not-ready, a container appears a moment later); acting on the
        half-done state would start things twice. Two identical listings 0.5 s apart mean the
        previous agent's calls are done.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        previous = None
        while loop.time() < deadline:
            try:
                sandboxes = await self.runtime.list_pod_sandbox()
                containers = await self.runtime.list_containers()
            except cri_errors.CRIError as exc:  # containerd down: nothing to adopt yet
                log.warning("agent %s: cannot list the runtime: %s", self.config.node_name, exc)
                return
            state = (sorted((s.id, s.state) for s in sandboxes),
                     sorted((c.id, c.state) for c in containers))
            if state == previous:
                return
            previous = state
            await asyncio.sleep(0.5)

    async def run(self) -> None:
        self.pods.add_handlers(on_add=self._pod_changed,
                               on_update=lambda old, new: self._pod_changed(new),
                               on_delete=self._pod_deleted)
        for informer in (self.configmaps, self.secrets):
            informer.add_handlers(on_update=lambda old, new: self._source_changed(new))
        for informer in (self.pods, self.configmaps, self.secrets, self.services):
            informer.start()
        sink = asyncio.create_task(self.sink.run(), name="event sink")
        await asyncio.gather(*(i.wait_synced() for i in (self.pods, self.configmaps,
                                                           self.secrets, self.services)))
        await self._runtime_settled()
        try:
            adopted = await self.pleg.relist()  # adopt what runs; orphans get cleaned up
        except cri_errors.CRIError as exc:  # the PLEG adopts once containerd answers
            log.warning("agent %s: runtime not listed: %s", self.config.node_name, exc)
            adopted = set()
        for uid in adopted:
            if uid:
                self.workers.update(uid)
        self._adopted.set()
        log.info("agent %s: caches synced, %d pods", self.config.node_name,
                 len(self.pods.store))
        readiness = Readiness("agent")
        readiness.ready(f"node {self.config.node_name}: {len(self.pods.store)} pods adopted")
        gc = asyncio.create_task(self.gc.run(), name="garbage collection")  # after adoption
        try:
            await self.pleg.run()
        finally:
            readiness.stopping()
            sink.cancel()
            gc.cancel()
            await self.workers.stop()
            for informer in (self.pods, self.configmaps, self.secrets, self.services):
                await informer.stop()
