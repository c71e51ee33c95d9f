"""An in-memory CRI runtime for unit tests of the agent: sandboxes, containers, images and events.

`FakeRuntime` has the public methods of `cri.runtime.RuntimeClient` (same names, parameters and
return types) plus `subscribe` from `cri.containerd_client.ContainerdClient`, and answers the way
containerd's CRI plugin does where a kubelet can tell: ids, states, timestamps, exit reasons, pod
IPs, idempotent removes, errors from `cri.errors`. Test hooks (`exit_container`, `fail_next`,
`calls`, `exec_results`, `fail_pulls`, ...) let a test drive it. It lives beside the real client on
purpose, so that a change to the client's surface is made to both in one place.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from cri import errors
from cri.containerd import task_events_pb2 as task_events
from cri.containerd_client import CRI_NAMESPACE, Event
from cri.v1 import api_pb2 as api

SOCKET = "fake"  # what CRIError.socket says for errors raised here
POD_SUBNET = "10.88.0."  # a /24; .1 is the bridge, pods get .2 to .254
SNAPSHOTTER_ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"
DEFAULT_IMAGE_SIZE = 5 * 1024 * 1024
SIGKILL_EXIT = 137  # 128 + SIGKILL: a stop with no grace period, and every stop of a sandbox
SIGTERM_EXIT = 143  # 128 + SIGTERM: the default exit code of a stop with a grace period

# Python method name -> the gRPC name the real client puts in its errors.
_RPC = {
    "version": "RuntimeService/Version",
    "status": "RuntimeService/Status",
    "run_pod_sandbox": "RuntimeService/RunPodSandbox",
    "stop_pod_sandbox": "RuntimeService/StopPodSandbox",
    "remove_pod_sandbox": "RuntimeService/RemovePodSandbox",
    "pod_sandbox_status": "RuntimeService/PodSandboxStatus",
    "list_pod_sandbox": "RuntimeService/ListPodSandbox",
    "create_container": "RuntimeService/CreateContainer",
    "start_container": "RuntimeService/StartContainer",
    "stop_container": "RuntimeService/StopContainer",
    "remove_container": "RuntimeService/RemoveContainer",
    "list_containers": "RuntimeService/ListContainers",
    "container_status": "RuntimeService/ContainerStatus",
    "update_container_resources": "RuntimeService/UpdateContainerResources",
    "reopen_container_log": "RuntimeService/ReopenContainerLog",
    "exec_sync": "RuntimeService/ExecSync",
    "exec": "RuntimeService/Exec",
    "attach": "RuntimeService/Attach",
    "port_forward": "RuntimeService/PortForward",
    "container_stats": "RuntimeService/ContainerStats",
    "list_container_stats": "RuntimeService/ListContainerStats",
    "list_images": "ImageService/ListImages",
    "image_status": "ImageService/ImageStatus",
    "pull_image": "ImageService/PullImage",
    "remove_image": "ImageService/RemoveImage",
    "image_fs_info": "ImageService/ImageFsInfo",
    "subscribe": "Events/Subscribe",
}

Call = tuple[str, tuple[Any, ...]]
ExecKey = tuple[str, tuple[str, ...]]


def normalize_image(ref: str) -> str:
    """Docker-style normalization, as containerd resolves names: `nginx` is
    `docker.io/library/nginx:latest`, `localhost/pause:1` stays as it is."""
    name, at, digest = ref.partition("@")
    domain, slash, rest = name.partition("/")
    if not slash or ("." not in domain and ":" not in domain and domain != "localhost"):
        domain, rest = "docker.io", name
    if domain == "docker.io" and "/" not in rest:
        rest = "library/" + rest
    if not at and ":" not in rest.rsplit("/", 1)[-1]:
        rest += ":latest"
    return f"{domain}/{rest}{at}{digest}"


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def _labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@dataclass
class _Sandbox:
    id: str
    config: api.PodSandboxConfig
    runtime_handler: str
    created_at: int
    name: str  # the reserved name, as containerd builds it from the metadata
    ip: str  # "" for host-network sandboxes and once the sandbox is stopped
    pid: int
    state: api.PodSandboxState = api.SANDBOX_READY


@dataclass
class _Container:
    id: str
    sandbox_id: str
    config: api.ContainerConfig
    image_id: str
    image_ref: str  # what ContainerStatus reports: a repo digest if there is one, else the id
    created_at: int
    name: str
    log_path: str
    resources: api.LinuxContainerResources
    state: api.ContainerState = api.CONTAINER_CREATED
    pid: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""


@dataclass
class _Image:
    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    pinned: bool = False

    def message(self) -> api.Image:
        return api.Image(id=self.id, repo_tags=self.repo_tags, repo_digests=self.repo_digests,
                         size=self.size, spec=api.ImageSpec(image=self.id), pinned=self.pinned)


@dataclass(eq=False)
class _Subscription:
    """One `subscribe()` stream: registered when created, so no event after that is missed."""

    owner: FakeRuntime
    filters: list[list[tuple[str, str]]]  # OR of ANDs of (field, value)
    items: deque[Event | BaseException | None] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self.items:
            if self.done:
                raise StopAsyncIteration
            self.wakeup.clear()
            await self.wakeup.wait()
        item = self.items.popleft()
        if item is None:
            self.done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self.done = True
            self.owner._subscriptions.discard(self)
            raise item
        return item

    async def aclose(self) -> None:
        self.owner._subscriptions.discard(self)
        self.push(None)

    def matches(self, event: Event) -> bool:
        values = {"topic": event.topic, "namespace": event.namespace}
        return not self.filters or any(
            all(values[key] == value for key, value in clause) for clause in self.filters
        )

    def push(self, item: Event | BaseException | None) -> None:
        self.items.append(item)
        self.wakeup.set()


_FILTER = re.compile(r'\s*(topic|namespace)\s*==\s*(?:"([^"]*)"|([^,"\s]+))\s*')


def _parse_filters(filters: Sequence[str]) -> list[list[tuple[str, str]]]:
    parsed = []
    for text in filters:
        clause = []
        for part in text.split(","):
            match = _FILTER.fullmatch(part)
            if match is None:
                raise errors.InvalidArgument(
                    SOCKET, _RPC["subscribe"], grpc.StatusCode.INVALID_ARGUMENT,
                    f"the fake understands only topic==/namespace== filters, not {part!r}")
            clause.append((match[1], match[2] if match[2] is not None else match[3]))
        parsed.append(clause)
    return parsed


class FakeRuntime:
    """containerd's CRI in memory. Construct with the images it has and, optionally, a clock.

    Hooks for tests:
    - `calls`: every call in order as (method name, key arguments); `called(name)` filters it.
    - `fail_next(method, exc)`: the next call of `method` (a method name) raises `exc`.
    - `exit_container(id, code)`: a running container's process exits (publishes /tasks/exit).
    - `exit_sandbox(id)`: a sandbox's pause process dies; the sandbox becomes NOTREADY.
    - `exec_results[(container_id or "*", tuple(cmd))] = ExecSyncResponse(...)` for exec_sync.
    - `fail_pulls[image] = exc`: pulling `image` raises `exc` until the entry is removed.
    - `pin_image(ref)`: the image is reported pinned (never garbage collected).
    - `stop_exit_code`: what a container stopped with a grace period exits with (143).
    - `runtime_ready`, `network_ready`: the conditions `status()` reports.
    - `break_subscriptions(exc)`: open `subscribe()` streams raise `exc` (containerd went away).
    """

    def __init__(self, *, images: Iterable[str] | Mapping[str, int] = (),
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.socket = SOCKET
        self.clock = clock
        self.calls: list[Call] = []
        self.exec_results: dict[ExecKey, api.ExecSyncResponse] = {}
        self.fail_pulls: dict[str, BaseException] = {}
        self.stop_exit_code = SIGTERM_EXIT
        self.runtime_ready = True
        self.network_ready = True
        self._failures: dict[str, deque[BaseException]] = {}
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._images: dict[str, _Image] = {}
        self._names: dict[str, str] = {}  # reserved sandbox and container names -> id
        self._subscriptions: set[_Subscription] = set()
        self._next_pid = 1000
        sizes = images if isinstance(images, Mapping) else dict.fromkeys(images, DEFAULT_IMAGE_SIZE)
        for ref, size in sizes.items():
            self._add_image(ref, size)

    def __repr__(self) -> str:
        return (f"<FakeRuntime sandboxes={len(self._sandboxes)} "
                f"containers={len(self._containers)} images={len(self._images)}>")

    async def __aenter__(self) -> FakeRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End open event streams. The fake keeps its state: it stands for containerd, which
        outlives a client, so an agent that closes and reconnects finds what it left."""
        self.calls.append(("close", ()))
        for subscription in list(self._subscriptions):
            await subscription.aclose()

    # -- test hooks ------------------------------------------------------------------------------

    def called(self, method: str) -> list[tuple[Any, ...]]:
        """The key arguments of each call of `method`, in order."""
        return [args for name, args in self.calls if name == method]

    def fail_next(self, method: str, exc: BaseException) -> None:
        """Make the next call of `method` (e.g. "start_container") raise `exc`; calls stack."""
        if method not in _RPC:
            raise ValueError(f"FakeRuntime has no method {method!r}")
        self._failures.setdefault(method, deque()).append(exc)

    def exit_container(self, container_id: str, exit_code: int = 0, *,
                       reason: str | None = None, message: str = "") -> None:
        """The container's process exits with `exit_code` (`reason` e.g. "OOMKilled")."""
        container = self._containers.get(container_id)
        if container is None or container.state != api.CONTAINER_RUNNING:
            state = "absent" if container is None else api.ContainerState.Name(container.state)
            raise ValueError(f"container {container_id} is not running ({state})")
        self._exit(container, exit_code, reason=reason, message=message)

    def exit_sandbox(self, sandbox_id: str) -> None:
        """The sandbox's pause process dies: NOTREADY, its containers untouched (as in runc)."""
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.state != api.SANDBOX_READY:
            raise ValueError(f"sandbox {sandbox_id} is not ready")
        sandbox.state = api.SANDBOX_NOTREADY
        self._publish_exit(sandbox.id, sandbox.pid, SIGKILL_EXIT)

    def pin_image(self, ref: str) -> None:
        """Mark the image pinned (CRI `Image.pinned`), as containerd marks its sandbox image."""
        image = self._find_image(ref)
        if image is None:
            raise ValueError(f"no image {ref}")
        image.pinned = True

    def break_subscriptions(self, exc: BaseException | None = None) -> None:
        """Open event streams raise `exc` (default: Unavailable), as when containerd restarts."""
        exc = exc or errors.Unavailable(SOCKET, _RPC["subscribe"], grpc.StatusCode.UNAVAILABLE,
                                        "containerd went away")
        for subscription in list(self._subscriptions):
            self._subscriptions.discard(subscription)
            subscription.push(exc)

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, filters: Sequence[str] = ()) -> AsyncIterator[Event]:
        """Events from now on, as `ContainerdClient.subscribe` yields them: `/tasks/start` and
        `/tasks/exit`, for containers and for sandboxes (pause containers), as containerd does.
        Filters: `topic=="/tasks/exit"`, `namespace==k8s.io`; a list is OR, a comma is AND."""
        self.calls.append(("subscribe", tuple(filters)))
        subscription = _Subscription(self, _parse_filters(filters))
        pending = self._failures.get("subscribe")
        if pending:
            subscription.push(pending.popleft())
        else:
            self._subscriptions.add(subscription)
        return subscription

    def _publish(self, topic: str, payload: Any) -> None:
        event = Event(topic=topic, namespace=CRI_NAMESPACE, timestamp=self.clock() / 1e9,
                      payload=payload)
        for subscription in list(self._subscriptions):
            if subscription.matches(event):
                subscription.push(event)

    def _publish_exit(self, task_id: str, pid: int, exit_code: int) -> None:
        self._publish("/tasks/exit", task_events.TaskExit(
            container_id=task_id, id=task_id, pid=pid, exit_status=exit_code,
            exited_at=_timestamp(self.clock()),
        ))

    # -- plumbing --------------------------------------------------------------------------------

    async def _call(self, method: str, *key: Any) -> None:
        """Record the call, raise an injected failure, and yield once as a real call would."""
        self.calls.append((method, key))
        pending = self._failures.get(method)
        if pending:
            raise pending.popleft()
        await asyncio.sleep(0)

    def _new_id(self) -> str:
        while True:
            new = secrets.token_hex(32)
            if new not in self._sandboxes and new not in self._containers:
                return new

    def _new_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def _sandbox(self, method: str, sandbox_id: str) -> _Sandbox:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise errors.NotFound(
                SOCKET, _RPC[method], grpc.StatusCode.NOT_FOUND,
                f"an error occurred when try to find sandbox {sandbox_id!r}: not found")
        return sandbox

    def _container(self, method: str, container_id: str) -> _Container:
        container = self._containers.get(container_id)
        if container is None:
            raise errors.NotFound(
                SOCKET, _RPC[method], grpc.StatusCode.NOT_FOUND,
                f"an error occurred when try to find container {container_id!r}: not found")
        return container

    def _refuse(self, method: str, details: str) -> errors.FailedPrecondition:
        return errors.FailedPrecondition(SOCKET, _RPC[method],
                                         grpc.StatusCode.FAILED_PRECONDITION, details)

    def _require_running(self, method: str, container: _Container) -> None:
        if container.state != api.CONTAINER_RUNNING:
            state = api.ContainerState.Name(container.state)
            raise self._refuse(method, f"container {container.id} is in {state} state")

    def _reserve(self, method: str, name: str, owner: str) -> None:
        if name in self._names:
            raise errors.AlreadyExists(
                SOCKET, _RPC[method], grpc.StatusCode.ALREADY_EXISTS,
                f"failed to reserve name {name!r}: reserved for {self._names[name]!r}")
        self._names[name] = owner

    def _allocate_ip(self) -> str:
        used = {sandbox.ip for sandbox in self._sandboxes.values()}
        for host in range(2, 255):
            if POD_SUBNET + str(host) not in used:
                return POD_SUBNET + str(host)
        raise errors.CRIError(SOCKET, _RPC["run_pod_sandbox"], grpc.StatusCode.UNKNOWN,
                              f"no IP addresses available in range {POD_SUBNET}0/24")

    def _exit(self, container: _Container, exit_code: int, *, reason: str | None = None,
              message: str = "") -> None:
        container.state = api.CONTAINER_EXITED
        container.finished_at = self.clock()
        container.exit_code = exit_code
        container.reason = reason or ("Completed" if exit_code == 0 else "Error")
        container.message = message
        self._publish_exit(container.id, container.pid, exit_code)

    def _stop_sandbox(self, sandbox: _Sandbox) -> None:
        for container in self._containers.values():
            if container.sandbox_id == sandbox.id and container.state == api.CONTAINER_RUNNING:
                self._exit(container, SIGKILL_EXIT)
        if sandbox.state == api.SANDBOX_READY:
            sandbox.state = api.SANDBOX_NOTREADY
            self._publish_exit(sandbox.id, sandbox.pid, SIGKILL_EXIT)
        sandbox.ip = ""  # the network is torn down, the address goes back to the pool

    def _remove_container(self, container: _Container) -> None:
        if container.state == api.CONTAINER_RUNNING:
            self._exit(container, SIGKILL_EXIT)
        del self._containers[container.id]
        self._names.pop(container.name, None)

    def _find_image(self, ref: str) -> _Image | None:
        if ref in self._images:
            return self._images[ref]
        if ref.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{64}", ref):
            return self._images.get(ref if ref.startswith("sha256:") else "sha256:" + ref)
        name = normalize_image(ref)
        for image in self._images.values():
            if name in image.repo_tags or name in image.repo_digests:
                return image
        return None

    def _add_image(self, ref: str, size: int = DEFAULT_IMAGE_SIZE) -> _Image:
        existing = self._find_image(ref)
        if existing is not None:
            return existing
        name = normalize_image(ref)
        repo, at, digest = name.partition("@")
        if not at:
            repo, digest = repo.rsplit(":", 1)[0], _sha256("manifest " + name)
        image = _Image(id=_sha256("config " + name), repo_tags=[] if at else [name],
                       repo_digests=[f"{repo}@{digest}"], size=size)
        self._images[image.id] = image
        return image

    # -- runtime ---------------------------------------------------------------------------------

    async def version(self, *, timeout: float | None = None) -> api.VersionResponse:
        await self._call("version")
        return api.VersionResponse(version="0.1.0", runtime_name="fake",
                                   runtime_version="0.0.0", runtime_api_version="v1")

    async def status(self, *, verbose: bool = False,
                     timeout: float | None = None) -> api.StatusResponse:
        await self._call("status")
        runtime = api.RuntimeCondition(type="RuntimeReady", status=self.runtime_ready)
        network = api.RuntimeCondition(type="NetworkReady", status=self.network_ready)
        if not self.network_ready:
            network.reason, network.message = "NetworkPluginNotReady", "cni plugin not initialized"
        return api.StatusResponse(status=api.RuntimeStatus(conditions=[runtime, network]))

    async def run_pod_sandbox(self, config: api.PodSandboxConfig, *, runtime_handler: str = "",
                              timeout: float | None = None) -> str:
        """Create and start a sandbox; return its id."""
        meta = config.metadata
        await self._call("run_pod_sandbox", meta.namespace, meta.name, meta.attempt)
        sandbox_id = self._new_id()
        name = "_".join(["k8s", meta.name, meta.namespace, meta.uid, str(meta.attempt)])
        host_network = config.linux.security_context.namespace_options.network == api.NODE
        ip = "" if host_network else self._allocate_ip()
        self._reserve("run_pod_sandbox", name, sandbox_id)
        stored = api.PodSandboxConfig()
        stored.CopyFrom(config)
        self._sandboxes[sandbox_id] = _Sandbox(
            id=sandbox_id, config=stored, runtime_handler=runtime_handler,
            created_at=self.clock(), name=name, ip=ip, pid=self._new_pid(),
        )
        self._publish("/tasks/start", task_events.TaskStart(container_id=sandbox_id,
                                                             pid=self._sandboxes[sandbox_id].pid))
        return sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        """Kill the sandbox's containers and its pause process, tear down its network."""
        await self._call("stop_pod_sandbox", sandbox_id)
        self._stop_sandbox(self._sandbox("stop_pod_sandbox", sandbox_id))

    async def remove_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        """Stop if need be, remove its containers and it. An unknown id is fine (containerd)."""
        await self._call("remove_pod_sandbox", sandbox_id)
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            return
        self._stop_sandbox(sandbox)
        for container in list(self._containers.values()):
            if container.sandbox_id == sandbox_id:
                self._remove_container(container)
        del self._sandboxes[sandbox_id]
        self._names.pop(sandbox.name, None)

    async def pod_sandbox_status(self, sandbox_id: str, *, verbose: bool = False,
                                 timeout: float | None = None) -> api.PodSandboxStatusResponse:
        await self._call("pod_sandbox_status", sandbox_id)
        sandbox = self._sandbox("pod_sandbox_status", sandbox_id)
        options = sandbox.config.linux.security_context.namespace_options
        status = api.PodSandboxStatus(
            id=sandbox.id, metadata=sandbox.config.metadata, state=sandbox.state,
            created_at=sandbox.created_at, network=api.PodSandboxNetworkStatus(ip=sandbox.ip),
            linux=api.LinuxPodSandboxStatus(namespaces=api.Namespace(options=options)),
            labels=sandbox.config.labels, annotations=sandbox.config.annotations,
            runtime_handler=sandbox.runtime_handler,
        )
        info = {"info": f'{{"pid": {sandbox.pid}}}'} if verbose else {}
        containers = [self._container_status(c) for c in self._containers.values()
                      if c.sandbox_id == sandbox_id]
        return api.PodSandboxStatusResponse(status=status, info=info,
                                            containers_statuses=containers,
                                            timestamp=self.clock())

    async def list_pod_sandbox(self, filter: api.PodSandboxFilter | None = None, *,
                               timeout: float | None = None) -> Sequence[api.PodSandbox]:
        await self._call("list_pod_sandbox", filter)
        result = []
        for sandbox in self._sandboxes.values():
            if filter is not None and (
                (filter.id and filter.id != sandbox.id)
                or (filter.HasField("state") and filter.state.state != sandbox.state)
                or not _labels_match(filter.label_selector, sandbox.config.labels)
            ):
                continue
            result.append(api.PodSandbox(
                id=sandbox.id, metadata=sandbox.config.metadata, state=sandbox.state,
                created_at=sandbox.created_at, labels=sandbox.config.labels,
                annotations=sandbox.config.annotations, runtime_handler=sandbox.runtime_handler,
            ))
        return result

    async def create_container(self, sandbox_id: str, config: api.ContainerConfig,
                               sandbox_config: api.PodSandboxConfig, *,
                               timeout: float | None = None) -> str:
        """Create a container in a sandbox; return its id."""
        await self._call("create_container", sandbox_id, config.metadata.name,
                         config.metadata.attempt)
        sandbox = self._sandbox("create_container", sandbox_id)
        if sandbox.state != api.SANDBOX_READY:
            raise self._refuse("create_container", f"sandbox {sandbox_id} is not ready")
        image = self._find_image(config.image.image)
        if image is None:
            raise errors.NotFound(
                SOCKET, _RPC["create_container"], grpc.StatusCode.NOT_FOUND,
                f"failed to resolve image {config.image.image!r}: not found")
        meta, pod = config.metadata, sandbox.config.metadata
        container_id = self._new_id()
        name = "_".join(["k8s", meta.name, pod.name, pod.namespace, pod.uid, str(meta.attempt)])
        self._reserve("create_container", name, container_id)
        stored = api.ContainerConfig()
        stored.CopyFrom(config)
        resources = api.LinuxContainerResources()
        resources.CopyFrom(config.linux.resources)
        log_dir = sandbox.config.log_directory
        self._containers[container_id] = _Container(
            id=container_id, sandbox_id=sandbox_id, config=stored, image_id=image.id,
            image_ref=image.repo_digests[0] if image.repo_digests else image.id,
            created_at=self.clock(), name=name, resources=resources,
            log_path=f"{log_dir.rstrip('/')}/{config.log_path}" if log_dir and config.log_path
            else "",
        )
        return container_id

    async def start_container(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._call("start_container", container_id)
        container = self._container("start_container", container_id)
        if container.state != api.CONTAINER_CREATED:
            state = api.ContainerState.Name(container.state)
            raise self._refuse("start_container", f"container is in {state} state")
        if self._sandboxes[container.sandbox_id].state != api.SANDBOX_READY:
            raise self._refuse("start_container",
                               f"sandbox container {container.sandbox_id!r} is not running")
        container.state = api.CONTAINER_RUNNING
        container.started_at = self.clock()
        container.pid = self._new_pid()
        self._publish("/tasks/start", task_events.TaskStart(container_id=container_id,
                                                             pid=container.pid))

    async def stop_container(self, container_id: str, grace_seconds: int = 0, *,
                             timeout: float | None = None) -> None:
        """Stop a container: SIGTERM, then SIGKILL after `grace_seconds`.

        It exits with `stop_exit_code` (143) if given a grace period, else 137. Stopping a
        container that is not running does nothing, as in containerd."""
        await self._call("stop_container", container_id, grace_seconds)
        container = self._container("stop_container", container_id)
        if container.state == api.CONTAINER_RUNNING:
            self._exit(container, self.stop_exit_code if grace_seconds > 0 else SIGKILL_EXIT)

    async def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        """Remove a container, killing it first if it runs. An unknown id is fine (containerd)."""
        await self._call("remove_container", container_id)
        container = self._containers.get(container_id)
        if container is not None:
            self._remove_container(container)

    async def list_containers(self, filter: api.ContainerFilter | None = None, *,
                              timeout: float | None = None) -> Sequence[api.Container]:
        await self._call("list_containers", filter)
        result = []
        for c in self._containers.values():
            if filter is not None and (
                (filter.id and filter.id != c.id)
                or (filter.pod_sandbox_id and filter.pod_sandbox_id != c.sandbox_id)
                or (filter.HasField("state") and filter.state.state != c.state)
                or not _labels_match(filter.label_selector, c.config.labels)
            ):
                continue
            result.append(api.Container(
                id=c.id, pod_sandbox_id=c.sandbox_id, metadata=c.config.metadata,
                image=c.config.image, image_ref=c.image_id, state=c.state,
                created_at=c.created_at, labels=c.config.labels,
                annotations=c.config.annotations, image_id=c.image_id,
            ))
        return result

    def _container_status(self, c: _Container) -> api.ContainerStatus:
        return api.ContainerStatus(
            id=c.id, metadata=c.config.metadata, state=c.state, created_at=c.created_at,
            started_at=c.started_at, finished_at=c.finished_at, exit_code=c.exit_code,
            image=c.config.image, image_ref=c.image_ref, reason=c.reason, message=c.message,
            labels=c.config.labels, annotations=c.config.annotations, mounts=c.config.mounts,
            log_path=c.log_path, resources=api.ContainerResources(linux=c.resources),
            image_id=c.image_id,
        )

    async def container_status(self, container_id: str, *, verbose: bool = False,
                               timeout: float | None = None) -> api.ContainerStatus:
        await self._call("container_status", container_id)
        return self._container_status(self._container("container_status", container_id))

    async def update_container_resources(self, container_id: str,
                                         linux: api.LinuxContainerResources, *,
                                         timeout: float | None = None) -> None:
        await self._call("update_container_resources", container_id, linux)
        self._container("update_container_resources", container_id).resources.CopyFrom(linux)

    async def reopen_container_log(self, container_id: str, *,
                                   timeout: float | None = None) -> None:
        await self._call("reopen_container_log", container_id)
        container = self._container("reopen_container_log", container_id)
        if container.state != api.CONTAINER_RUNNING:
            raise self._refuse("reopen_container_log", "container is not running")

    async def exec_sync(self, container_id: str, cmd: Sequence[str], exec_timeout: int = 0, *,
                        timeout: float | None = None) -> api.ExecSyncResponse:
        """Return `exec_results[(id, cmd)]`, else `[("*", cmd)]`, else exit code 0, no output."""
        await self._call("exec_sync", container_id, tuple(cmd))
        self._require_running("exec_sync", self._container("exec_sync", container_id))
        result = api.ExecSyncResponse()
        for key in ((container_id, tuple(cmd)), ("*", tuple(cmd))):
            if key in self.exec_results:
                result.CopyFrom(self.exec_results[key])
                break
        return result

    async def exec(self, request: api.ExecRequest, *, timeout: float | None = None) -> str:
        """Prepare a streaming exec; return a URL (nothing serves it)."""
        await self._call("exec", request.container_id, tuple(request.cmd))
        self._require_running("exec", self._container("exec", request.container_id))
        return f"http://{SOCKET}/exec/{secrets.token_urlsafe(6)}"

    async def attach(self, request: api.AttachRequest, *, timeout: float | None = None) -> str:
        await self._call("attach", request.container_id)
        self._require_running("attach", self._container("attach", request.container_id))
        return f"http://{SOCKET}/attach/{secrets.token_urlsafe(6)}"

    async def port_forward(self, sandbox_id: str, ports: Sequence[int], *,
                           timeout: float | None = None) -> str:
        await self._call("port_forward", sandbox_id, tuple(ports))
        if self._sandbox("port_forward", sandbox_id).state != api.SANDBOX_READY:
            raise self._refuse("port_forward", "sandbox container is not running")
        return f"http://{SOCKET}/portforward/{secrets.token_urlsafe(6)}"

    def _stats(self, c: _Container) -> api.ContainerStats:
        now = self.clock()
        zero = api.UInt64Value(value=0)
        return api.ContainerStats(
            attributes=api.ContainerAttributes(id=c.id, metadata=c.config.metadata,
                                               labels=c.config.labels,
                                               annotations=c.config.annotations),
            cpu=api.CpuUsage(timestamp=now, usage_core_nano_seconds=zero, usage_nano_cores=zero),
            memory=api.MemoryUsage(timestamp=now, working_set_bytes=zero, usage_bytes=zero),
            writable_layer=api.FilesystemUsage(
                timestamp=now, fs_id=api.FilesystemIdentifier(mountpoint=SNAPSHOTTER_ROOT),
                used_bytes=zero, inodes_used=zero),
        )

    async def container_stats(self, container_id: str, *,
                              timeout: float | None = None) -> api.ContainerStats:
        await self._call("container_stats", container_id)
        return self._stats(self._container("container_stats", container_id))

    async def list_container_stats(self, filter: api.ContainerStatsFilter | None = None, *,
                                   timeout: float | None = None) -> Sequence[api.ContainerStats]:
        await self._call("list_container_stats", filter)
        return [self._stats(c) for c in self._containers.values() if filter is None or not (
            (filter.id and filter.id != c.id)
            or (filter.pod_sandbox_id and filter.pod_sandbox_id != c.sandbox_id)
            or not _labels_match(filter.label_selector, c.config.labels)
        )]

    # -- images ----------------------------------------------------------------------------------

    async def list_images(self, filter: api.ImageFilter | None = None, *,
                          timeout: float | None = None) -> Sequence[api.Image]:
        await self._call("list_images", filter)
        if filter is not None and filter.image.image:
            found = self._find_image(filter.image.image)
            return [found.message()] if found is not None else []
        return [image.message() for image in self._images.values()]

    async def image_status(self, image: str, *, timeout: float | None = None) -> api.Image | None:
        """Return the image (by name, normalized, or by id), or None when it is absent."""
        await self._call("image_status", image)
        found = self._find_image(image)
        return found.message() if found is not None else None

    async def pull_image(self, image: str, *, auth: api.AuthConfig | None = None,
                         sandbox_config: api.PodSandboxConfig | None = None,
                         timeout: float | None = None) -> str:
        """Add `image` (or raise `fail_pulls[image]`); return its id, as containerd does."""
        await self._call("pull_image", image)
        for key in (image, normalize_image(image)):
            if key in self.fail_pulls:
                raise self.fail_pulls[key]
        return self._add_image(image).id

    async def remove_image(self, image: str, *, timeout: float | None = None) -> None:
        """Remove the image with all its names. An absent image is fine (containerd)."""
        await self._call("remove_image", image)
        found = self._find_image(image)
        if found is not None:
            del self._images[found.id]

    async def image_fs_info(self, *,
                            timeout: float | None = None) -> api.ImageFsInfoResponse:
        await self._call("image_fs_info")
        usage = api.FilesystemUsage(
            timestamp=self.clock(), fs_id=api.FilesystemIdentifier(mountpoint=SNAPSHOTTER_ROOT),
            used_bytes=api.UInt64Value(value=sum(i.size for i in self._images.values())),
            inodes_used=api.UInt64Value(value=len(self._images)),
        )
        return api.ImageFsInfoResponse(image_filesystems=[usage])
