"""Finding a pod's containers in the runtime by their CRI labels (agent/labels.py).

The agent's own pod list may be behind or absent (after a restart, or in tests), so the runtime
is the truth: every container carries its pod's namespace, name and uid and its container name.
When several pod instances of one name exist (deleted and recreated), the uid of the pod the
agent runs wins, else the newest container's. Of one container's instances the newest has the
highest restart count (then the newest creation time). Logs are the kubelet's choice
(validateContainerLogStatus): `previous` is the container status' lastState.terminated, so while
the newest instance has exited and will be restarted (CrashLoopBackOff: state waiting) it is the
newest one, otherwise the one before it; without `previous`, the newest instance, or the last
terminated one while the newest is only created. Container GC keeps exactly these (the newest
dead instance of each container). Errors are Kubernetes Statuses worded as the kubelet words them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from agent import labels
from controlplane.api import errors
from cri.errors import CRIError
from cri.v1 import api_pb2 as api

Object = dict[str, Any]
PodLister = Callable[[], Iterable[Object]]


class Runtime(Protocol):
    """The part of `cri.runtime.RuntimeClient` (and `cri.fake.FakeRuntime`) the server uses."""

    async def list_containers(self, filter: api.ContainerFilter | None = None, *,
                              timeout: float | None = None) -> Sequence[api.Container]: ...

    async def container_status(self, container_id: str, *, verbose: bool = False,
                               timeout: float | None = None) -> api.ContainerStatus: ...

    async def exec(self, request: api.ExecRequest, *, timeout: float | None = None) -> str: ...

    async def attach(self, request: api.AttachRequest, *,
                     timeout: float | None = None) -> str: ...


def restart_count(container: api.Container) -> int:
    try:
        return int(container.annotations.get(labels.RESTART_COUNT, "0"))
    except ValueError:
        return 0


class ContainerWaiting(errors.BadRequest):
    """The agent runs the pod, but this container has not been created yet."""


def _in_spec(pod: Object, container: str) -> bool:
    spec = pod.get("spec") or {}
    return any(c.get("name") == container for key in ("initContainers", "containers")
               for c in spec.get(key) or [])


def _waiting_reason(pod: Object, container: str) -> str:
    status = pod.get("status") or {}
    for entry in (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []):
        if entry.get("name") == container:
            reason = ((entry.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                return str(reason)
    return "ContainerCreating"


def _newest_first(containers: Iterable[api.Container]) -> list[api.Container]:
    return sorted(containers, key=lambda c: (restart_count(c), c.created_at), reverse=True)


def will_restart(pod: Object | None, container: str, exit_code: int) -> bool:
    """Whether the agent runs `container` again after it exited with `exit_code` (the kubelet's
    ShouldContainerBeRestarted), so that its status is waiting with the exit as lastState.
    Without the pod's spec, no: the exit is then the container's terminated state."""
    spec = (pod or {}).get("spec")
    if not spec or ((pod or {}).get("metadata") or {}).get("deletionTimestamp"):
        return False
    policy = spec.get("restartPolicy") or "Always"
    for c in spec.get("initContainers") or []:
        if c.get("name") == container:
            if c.get("restartPolicy") == "Always":  # a sidecar
                return True
            return exit_code != 0 and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


class ContainerLookup:
    """Resolves (namespace, pod, container) to CRI containers on this node."""

    def __init__(self, runtime: Runtime, *, node_name: str, pods: PodLister) -> None:
        self.runtime = runtime
        self.node_name = node_name
        self.pods = pods

    def _known(self, namespace: str, pod: str) -> Object | None:
        for obj in self.pods():
            meta = obj.get("metadata") or {}
            if meta.get("namespace") == namespace and meta.get("name") == pod:
                return obj
        return None

    async def instances(self, namespace: str, pod: str, container: str) -> list[api.Container]:
        """Every instance of the container, current first; NotFound when there is none."""
        return (await self._resolve(namespace, pod, container))[1]

    async def _resolve(self, namespace: str, pod: str,
                       container: str) -> tuple[Object | None, list[api.Container]]:
        """The pod as the agent knows it (None if it does not) and the container's instances."""
        selector = {labels.POD_NAMESPACE: namespace, labels.POD_NAME: pod}
        found = list(await self.runtime.list_containers(
            api.ContainerFilter(label_selector=selector)))
        known = self._known(namespace, pod)
        uid = str((known or {}).get("metadata", {}).get("uid") or "")
        if not found and known is None:
            raise errors.NotFound(f'pod "{pod}" in namespace "{namespace}" is not running on '
                                  f'node "{self.node_name}"', name=pod, kind="pods")
        if not uid and found:
            uid = _newest_first(found)[0].labels.get(labels.POD_UID, "")
        mine = [c for c in found if c.labels.get(labels.CONTAINER_NAME) == container
                and (not uid or c.labels.get(labels.POD_UID, "") == uid)]
        if not mine and known is not None and _in_spec(known, container):
            raise ContainerWaiting(f'container "{container}" in pod "{pod}" is waiting to '
                                   f"start: {_waiting_reason(known, container)}")
        if not mine:
            raise errors.NotFound(f'container "{container}" in pod "{pod}" is not available',
                                  name=pod, kind="pods")
        return known, _newest_first(mine)

    async def for_logs(self, namespace: str, pod: str, container: str, *,
                       previous: bool) -> api.ContainerStatus:
        """The status (with its log path) of the instance whose logs are asked for: the
        current one or, with `previous`, the last terminated one (see the module docstring)."""
        known, instances = await self._resolve(namespace, pod, container)
        newest, older = instances[0], instances[1:]
        if previous:
            if newest.state == api.CONTAINER_EXITED:
                status = await self.runtime.container_status(newest.id)
                if will_restart(known, container, status.exit_code):
                    return status  # waiting to restart: its last run is lastState
            if not older:
                raise errors.BadRequest(f'previous terminated container "{container}" in pod '
                                        f'"{pod}" not found')
            return await self.runtime.container_status(older[0].id)
        if newest.state == api.CONTAINER_CREATED and older:
            return await self.runtime.container_status(older[0].id)
        return await self.runtime.container_status(newest.id)

    async def running(self, namespace: str, pod: str, container: str) -> api.Container:
        """The current instance, which must be running (exec and attach need a process)."""
        try:
            current = (await self.instances(namespace, pod, container))[0]
        except ContainerWaiting:
            current = None
        if current is None or current.state != api.CONTAINER_RUNNING:
            raise errors.BadRequest(f'container not found ("{container}")')
        return current

    async def is_running(self, container_id: str) -> bool:
        try:
            status = await self.runtime.container_status(container_id)
        except CRIError:  # removed, or containerd is gone: nothing more will be written
            return False
        return bool(status.state == api.CONTAINER_RUNNING)
