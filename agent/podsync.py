"""One pod's sync: make the runtime match the pod's spec, and compute what the pod's status is.

The kubelet's SyncPod, in order: volumes, the sandbox (a new one when it is gone or not ready),
init containers one at a time, then every container — created when missing, restarted per
restartPolicy with CrashLoopBackOff, replaced when its spec changed or its liveness probe
failed. Failures become a container's waiting reason (ErrImagePull, CreateContainerConfigError,
CreateContainerError, RunContainerError, CrashLoopBackOff) with the cause as message; the sync
itself never raises for one bad pod. `terminate` runs preStop, stops with the grace period,
removes everything and tells the apiserver the pod is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import kuberuntime, labels
from agent.config import AgentConfig
from agent.envvars import ConfigError, resolve_env
from agent.image_pulls import ImageError, ImageManager
from agent.restart_backoff import RestartBackoff
from agent.status import crash_loop_message
from agent.volumes import VolumeError, VolumeManager
from controlplane.client.events import Recorder
from cri import errors as cri_errors
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)
Object = dict[str, Any]
Lookup = Callable[[str, str], Object | None]


@dataclass
class RuntimePod:
    """What the runtime holds for one pod uid: sandboxes (newest first) and container statuses."""

    sandboxes: list[api.PodSandbox] = field(default_factory=list)
    containers: list[api.ContainerStatus] = field(default_factory=list)

    def ready_sandbox(self) -> api.PodSandbox | None:
        return next((s for s in self.sandboxes if s.state == api.SANDBOX_READY), None)

    def latest(self, name: str) -> api.ContainerStatus | None:
        """The newest container of `name` (highest restart count, then newest)."""
        mine = [c for c in self.containers if c.labels.get(labels.CONTAINER_NAME) == name]
        if not mine:
            return None
        return max(mine, key=lambda c: (restart_count(c), c.created_at))


def restart_count(container: api.ContainerStatus) -> int:
    try:
        return int(container.annotations.get(labels.RESTART_COUNT, "0"))
    except ValueError:
        return 0


@dataclass
class SyncResult:
    sandbox: api.PodSandboxStatus | None = None
    containers: list[api.ContainerStatus] = field(default_factory=list)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    retry_after: float | None = None  # seconds until a back-off ends or a retry is due


class PodSyncer:
    """Owns the runtime side of every pod on the node; called by the pod workers only."""

    def __init__(self, runtime: Any, config: AgentConfig, *, images: ImageManager,
                 volumes: VolumeManager, recorder: Recorder, configmap: Lookup,
                 secret: Lookup, services: Callable[[str], list[Object]],
                 liveness_failed: Callable[[str, str], bool],
                 node_allocatable: Callable[[], dict[str, str]],
                 clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.config = config
        self.images = images
        self.volumes = volumes
        self.recorder = recorder
        self.configmap = configmap
        self.secret = secret
        self.services = services
        self.liveness_failed = liveness_failed
        self.node_allocatable = node_allocatable
        self.clock = clock
        self.backoff = RestartBackoff(clock)

    async def runtime_pod(self, uid: str) -> RuntimePod:
        selector = {labels.POD_UID: uid}
        sandboxes = await self.runtime.list_pod_sandbox(
            api.PodSandboxFilter(label_selector=selector))
        listed = await self.runtime.list_containers(api.ContainerFilter(label_selector=selector))
        statuses = []
        for container in listed:
            try:
                statuses.append(await self.runtime.container_status(container.id))
            except cri_errors.NotFound:
                continue
        return RuntimePod(sorted(sandboxes, key=lambda s: s.created_at, reverse=True), statuses)

    # -- sync ------------------------------------------------------------------------------------

    async def sync(self, pod: Object) -> SyncResult:
        uid = pod["metadata"]["uid"]
        result = SyncResult()
        try:
            volume_paths = await self.volumes.setup(pod)
            await self.volumes.refresh(pod)  # configMap/secret/downwardAPI contents changed?
        except VolumeError as exc:
            self.recorder.event(pod, "Warning", "FailedMount", str(exc))
            result.retry_after = 10.0
            return await self._observe(uid, result)
        rp = await self.runtime_pod(uid)
        sandbox = rp.ready_sandbox()
        if sandbox is None:
            if _terminal(pod):
                return await self._observe(uid, result)
            sandbox_id = await self._new_sandbox(pod, rp)
            if sandbox_id is None:
                result.retry_after = 5.0
                return await self._observe(uid, result)
            rp = await self.runtime_pod(uid)
        else:
            sandbox_id = sandbox.id
        sandbox_status = (await self.runtime.pod_sandbox_status(sandbox_id)).status
        config = kuberuntime.sandbox_config(pod, self.config)
        ctx = _Ctx(pod, sandbox_id, config, sandbox_status, volume_paths, rp, result)
        if await self._init_containers(ctx):
            for container in (pod.get("spec") or {}).get("containers") or []:
                await self._container(ctx, container, init=False)
        return await self._observe(uid, result)

    async def observe(self, uid: str) -> SyncResult:
        """What the runtime holds for the pod, without changing anything."""
        return await self._observe(uid, SyncResult())

    async def _observe(self, uid: str, result: SyncResult) -> SyncResult:
        rp = await self.runtime_pod(uid)
        sandbox = rp.ready_sandbox() or (rp.sandboxes[0] if rp.sandboxes else None)
        if sandbox is not None:
            try:
                result.sandbox = (await self.runtime.pod_sandbox_status(sandbox.id)).status
            except cri_errors.NotFound:
                result.sandbox = None
        result.containers = rp.containers
        return result

    async def _new_sandbox(self, pod: Object, rp: RuntimePod) -> str | None:
        for old in rp.sandboxes:  # a dead sandbox: its containers go with it
            await self._remove_sandbox(old.id)
        attempt = max((s.metadata.attempt for s in rp.sandboxes), default=-1) + 1
        try:
            sandbox_id: str = await self.runtime.run_pod_sandbox(
                kuberuntime.sandbox_config(pod, self.config, attempt))
        except cri_errors.CRIError as exc:
            self.recorder.event(pod, "Warning", "FailedCreatePodSandBox",
                                f"Failed to create pod sandbox: {exc.details}")
            return None
        return sandbox_id

    async def _init_containers(self, ctx: _Ctx) -> bool:
        """Run init containers in order; True once every one has succeeded."""
        policy = (ctx.pod.get("spec") or {}).get("restartPolicy", "Always")
        for container in (ctx.pod.get("spec") or {}).get("initContainers") or []:
            current = ctx.rp.latest(container["name"])
            if current is not None and current.state == api.CONTAINER_EXITED and (
                    current.exit_code == 0):
                continue
            if current is not None and current.state in (api.CONTAINER_RUNNING,
                                                          api.CONTAINER_CREATED):
                return False
            if current is not None and policy == "Never":
                return False  # a failed init container fails the pod
            await self._container(ctx, container, init=True)
            return False
        return True

    async def _container(self, ctx: _Ctx, container: Object, *, init: bool) -> None:
        pod, name = ctx.pod, container["name"]
        uid = pod["metadata"]["uid"]
        current = ctx.rp.latest(name)
        policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        if current is None:
            await self._start(ctx, container, 0, init)
            return
        if current.state == api.CONTAINER_RUNNING:
            changed = current.annotations.get(labels.CONTAINER_HASH) != (
                kuberuntime.container_hash(container))
            if changed or self.liveness_failed(uid, name):
                why = "spec changed" if changed else "failed liveness probe"
                self.recorder.event(pod, "Normal", "Killing",
                                    f"Container {name} {why}, will be restarted")
                await self._stop(pod, current, _grace(pod))
                current = (await self.runtime_pod(uid)).latest(name) or current
            else:
                return
        if current.state == api.CONTAINER_CREATED:
            await self._run(ctx, current.id, container)
            return
        if init:
            wanted = policy != "Never"
        else:
            wanted = policy == "Always" or (policy == "OnFailure" and current.exit_code != 0)
        if not wanted:
            return
        key = f"{uid}/{name}"
        remaining = self.backoff.remaining(key, current.finished_at / 1e9)
        if remaining > 0:
            message = crash_loop_message(pod, name, int(self.backoff.delay(key)))
            ctx.result.waiting[name] = ("CrashLoopBackOff", message)
            self.recorder.event(pod, "Warning", "BackOff",
                                "Back-off restarting failed container " + name +
                                f" in pod {pod['metadata']['name']}_"
                                f"{pod['metadata'].get('namespace', '')}({uid})")
            ctx.result.retry_after = min(ctx.result.retry_after or remaining, remaining)
            return
        ran_for = max(0.0, (current.finished_at - current.started_at) / 1e9)
        self.backoff.restarted(key, ran_for)
        await self._start(ctx, container, restart_count(current) + 1, init)

    async def _start(self, ctx: _Ctx, container: Object, restarts: int, init: bool) -> None:
        pod, name = ctx.pod, container["name"]
        try:
            await self.images.ensure(pod, container)
            env = resolve_env(
                pod, container, configmap=self.configmap, secret=self.secret,
                services=self.services(pod["metadata"].get("namespace", "")),
                node_name=self.config.node_name, host_ip=self.config.node_ip,
                pod_ip=ctx.sandbox_status.network.ip,
                pod_ips=[ctx.sandbox_status.network.ip, *(
                    i.ip for i in ctx.sandbox_status.network.additional_ips)],
                node_allocatable=self.node_allocatable())
            mounts = self.volumes.container_mounts(pod, container, ctx.volume_paths, env=env)
        except ImageError as exc:
            ctx.result.waiting[name] = (exc.reason, exc.message)
            ctx.result.retry_after = 5.0
            return
        except ConfigError as exc:
            ctx.result.waiting[name] = ("CreateContainerConfigError", str(exc))
            self.recorder.event(pod, "Warning", "Failed", f"Error: {exc}")
            ctx.result.retry_after = 10.0
            return
        mounts.append(self._termination_log(pod, container))
        config = kuberuntime.container_config(pod, container, restart_count=restarts, env=env,
                                              mounts=mounts, init=init)
        try:
            container_id = await self.runtime.create_container(ctx.sandbox_id, config,
                                                               ctx.sandbox_config)
        except cri_errors.CRIError as exc:
            ctx.result.waiting[name] = ("CreateContainerError", exc.details)
            self.recorder.event(pod, "Warning", "Failed", f"Error: {exc.details}")
            ctx.result.retry_after = 10.0
            return
        self.recorder.event(pod, "Normal", "Created", f"Created container {name}")
        await self._run(ctx, container_id, container)

    async def _run(self, ctx: _Ctx, container_id: str, container: Object) -> None:
        pod, name = ctx.pod, container["name"]
        try:
            await self.runtime.start_container(container_id)
        except cri_errors.CRIError as exc:
            ctx.result.waiting[name] = ("RunContainerError", exc.details)
            self.recorder.event(pod, "Warning", "Failed", f"Error: {exc.details}")
            ctx.result.retry_after = 10.0
            return
        self.recorder.event(pod, "Normal", "Started", f"Started container {name}")
        post_start = ((container.get("lifecycle") or {}).get("postStart") or {}).get("exec")
        if post_start:
            try:
                result = await self.runtime.exec_sync(container_id, post_start.get("command")
                                                      or [], 30)
                failed = result.exit_code != 0
            except cri_errors.CRIError:
                failed = True
            if failed:
                self.recorder.event(pod, "Warning", "FailedPostStartHook",
                                    f"PostStartHook failed for container {name}")
                await self.runtime.stop_container(container_id, 0)

    def _termination_log(self, pod: Object, container: Object) -> api.Mount:
        path = kuberuntime.termination_message_file(self.config.pods_dir, pod["metadata"]["uid"],
                                                    container["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return api.Mount(container_path=container.get("terminationMessagePath",
                                                      "/dev/termination-log"),
                         host_path=str(path))

    # -- stopping --------------------------------------------------------------------------------

    async def _stop(self, pod: Object, container: api.ContainerStatus, grace: int) -> None:
        name = container.labels.get(labels.CONTAINER_NAME, "")
        spec: Object = next((c for c in (pod.get("spec") or {}).get("containers") or []
                             if c.get("name") == name), {})
        pre_stop = ((spec.get("lifecycle") or {}).get("preStop") or {}).get("exec")
        started = self.clock()
        if pre_stop and grace > 0:
            try:
                await asyncio.wait_for(self.runtime.exec_sync(
                    container.id, pre_stop.get("command") or [], grace), grace)
            except (cri_errors.CRIError, TimeoutError):
                self.recorder.event(pod, "Warning", "FailedPreStopHook",
                                    f"PreStopHook failed for container {name}")
        remaining = max(0, int(grace - (self.clock() - started)))
        try:
            await self.runtime.stop_container(container.id, remaining)
        except cri_errors.NotFound:
            pass

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        try:
            await self.runtime.stop_pod_sandbox(sandbox_id)
            await self.runtime.remove_pod_sandbox(sandbox_id)
        except cri_errors.NotFound:
            pass

    async def kill_pod(self, pod: Object | None, uid: str, grace: int) -> None:
        """Stop every container (preStop, SIGTERM, SIGKILL after `grace`) and the sandbox."""
        rp = await self.runtime_pod(uid)
        running = [c for c in rp.containers if c.state == api.CONTAINER_RUNNING]
        if pod is not None:
            for c in running:
                self.recorder.event(pod, "Normal", "Killing",
                                    f"Stopping container {c.labels.get(labels.CONTAINER_NAME)}")
        await asyncio.gather(*(self._stop(pod or {}, c, grace) for c in running))
        for sandbox in rp.sandboxes:
            try:
                await self.runtime.stop_pod_sandbox(sandbox.id)
            except cri_errors.NotFound:
                pass

    async def remove_pod(self, uid: str) -> None:
        """Remove the pod's containers, sandboxes and volumes (after kill_pod)."""
        rp = await self.runtime_pod(uid)
        for container in rp.containers:
            try:
                await self.runtime.remove_container(container.id)
            except cri_errors.NotFound:
                pass
        for sandbox in rp.sandboxes:
            await self._remove_sandbox(sandbox.id)
        await self.volumes.teardown(uid)
        self.backoff.forget_pod(uid)


@dataclass
class _Ctx:
    pod: Object
    sandbox_id: str
    sandbox_config: api.PodSandboxConfig
    sandbox_status: api.PodSandboxStatus
    volume_paths: dict[str, Any]
    rp: RuntimePod
    result: SyncResult


def _terminal(pod: Object) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _grace(pod: Object) -> int:
    meta_grace = pod["metadata"].get("deletionGracePeriodSeconds")
    if meta_grace is not None:
        return int(meta_grace)
    return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
