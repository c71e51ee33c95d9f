"""FakeRuntime: the in-memory CRI the agent's unit tests run against."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest

from cri import errors
from cri.containerd import task_events_pb2 as task_events
from cri.containerd_client import Event
from cri.fake import FakeRuntime, normalize_image
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api

PAUSE = "localhost/pause:1"
BUSYBOX = "docker.io/library/busybox:1.36"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


def pod_config(name: str = "web", namespace: str = "default", attempt: int = 0,
               labels: dict[str, str] | None = None,
               host_network: bool = False) -> api.PodSandboxConfig:
    config = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace=namespace, uid=f"uid-{name}",
                                        attempt=attempt),
        log_directory=f"/var/log/pods/{namespace}_{name}",
        labels=labels or {"app": name},
        annotations={"note": "pod"},
    )
    if host_network:
        config.linux.security_context.namespace_options.network = api.NODE
    return config


def container_config(name: str = "main", image: str = "busybox:1.36", attempt: int = 0,
                     labels: dict[str, str] | None = None) -> api.ContainerConfig:
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=attempt),
        image=api.ImageSpec(image=image),
        command=["sleep", "3600"],
        labels=labels or {"container": name},
        annotations={"note": "container"},
        log_path=f"{name}/{attempt}.log",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(clock: Clock) -> FakeRuntime:
    return FakeRuntime(images=[PAUSE, BUSYBOX], clock=clock)


async def run_pod(rt: FakeRuntime, name: str = "web",
                  containers: tuple[str, ...] = ("main",)) -> tuple[str, list[str]]:
    config = pod_config(name)
    sandbox_id = await rt.run_pod_sandbox(config)
    ids = []
    for container in containers:
        cid = await rt.create_container(sandbox_id, container_config(container), config)
        await rt.start_container(cid)
        ids.append(cid)
    return sandbox_id, ids


def test_same_public_surface_as_the_real_client() -> None:
    public = [name for name, member in inspect.getmembers(RuntimeClient)
              if callable(member) and not name.startswith("_")]
    assert len(public) == 27
    for name in [*public, "__aenter__", "__aexit__"]:
        real, fake = getattr(RuntimeClient, name), getattr(FakeRuntime, name)
        assert inspect.iscoroutinefunction(fake), name
        real_sig, fake_sig = inspect.signature(real), inspect.signature(fake)
        assert str(real_sig).replace("RuntimeClient", "FakeRuntime") == str(fake_sig), name


async def test_sandbox_and_container_lifecycle(rt: FakeRuntime, clock: Clock) -> None:
    config = pod_config()
    sandbox_id = await rt.run_pod_sandbox(config, runtime_handler="runc")
    assert re.fullmatch(r"[0-9a-f]{64}", sandbox_id)

    status = (await rt.pod_sandbox_status(sandbox_id)).status
    assert status.state == api.SANDBOX_READY
    assert status.metadata == config.metadata
    assert dict(status.labels) == {"app": "web"} and dict(status.annotations) == {"note": "pod"}
    assert status.network.ip == "10.88.0.2"
    assert status.runtime_handler == "runc"
    assert 0 < status.created_at <= clock.now

    cid = await rt.create_container(sandbox_id, container_config(), config)
    assert re.fullmatch(r"[0-9a-f]{64}", cid) and cid != sandbox_id
    created = await rt.container_status(cid)
    assert created.state == api.CONTAINER_CREATED
    assert created.started_at == 0 and created.finished_at == 0
    assert created.metadata.name == "main"
    assert created.image.image == "busybox:1.36"
    assert created.image_id.startswith("sha256:")
    assert created.image_ref.startswith("docker.io/library/busybox@sha256:")
    assert created.log_path == "/var/log/pods/default_web/main/0.log"
    assert dict(created.labels) == {"container": "main"}

    await rt.start_container(cid)
    running = await rt.container_status(cid)
    assert running.state == api.CONTAINER_RUNNING
    assert running.started_at > running.created_at > 0

    await rt.stop_container(cid, 30)
    exited = await rt.container_status(cid)
    assert exited.state == api.CONTAINER_EXITED
    assert exited.finished_at > exited.started_at
    assert (exited.exit_code, exited.reason) == (143, "Error")

    await rt.stop_container(cid, 30)  # stopping again does nothing
    assert (await rt.container_status(cid)).finished_at == exited.finished_at

    await rt.stop_pod_sandbox(sandbox_id)
    stopped = (await rt.pod_sandbox_status(sandbox_id)).status
    assert stopped.state == api.SANDBOX_NOTREADY
    assert stopped.network.ip == ""

    await rt.remove_pod_sandbox(sandbox_id)
    assert await rt.list_pod_sandbox() == []
    assert await rt.list_containers() == []


async def test_exit_codes_and_reasons(rt: FakeRuntime) -> None:
    _, (ok, bad, oom, killed) = await run_pod(rt, containers=("ok", "bad", "oom", "killed"))
    rt.exit_container(ok, 0)
    rt.exit_container(bad, 2)
    rt.exit_container(oom, 137, reason="OOMKilled")
    await rt.stop_container(killed)  # no grace period: SIGKILL
    results = {cid: await rt.container_status(cid) for cid in (ok, bad, oom, killed)}
    assert [(s.exit_code, s.reason) for s in results.values()] == [
        (0, "Completed"), (2, "Error"), (137, "OOMKilled"), (137, "Error"),
    ]
    with pytest.raises(ValueError, match="not running"):
        rt.exit_container(ok, 1)


async def test_pod_ips_are_distinct_and_reused(rt: FakeRuntime) -> None:
    first = await rt.run_pod_sandbox(pod_config("a"))
    second = await rt.run_pod_sandbox(pod_config("b"))
    host = await rt.run_pod_sandbox(pod_config("h", host_network=True))
    ips = [(await rt.pod_sandbox_status(s)).status.network.ip for s in (first, second, host)]
    assert ips == ["10.88.0.2", "10.88.0.3", ""]
    await rt.stop_pod_sandbox(first)
    third = await rt.run_pod_sandbox(pod_config("c"))
    assert (await rt.pod_sandbox_status(third)).status.network.ip == "10.88.0.2"


async def test_stop_and_remove_sandbox_take_its_containers(rt: FakeRuntime) -> None:
    sandbox_id, (first, second) = await run_pod(rt, containers=("first", "second"))
    other_sandbox, (other,) = await run_pod(rt, "other")
    await rt.stop_pod_sandbox(sandbox_id)
    for cid in (first, second):
        status = await rt.container_status(cid)
        assert (status.state, status.exit_code) == (api.CONTAINER_EXITED, 137)
    assert (await rt.container_status(other)).state == api.CONTAINER_RUNNING

    await rt.remove_pod_sandbox(sandbox_id)
    assert [c.id for c in await rt.list_containers()] == [other]
    assert [s.id for s in await rt.list_pod_sandbox()] == [other_sandbox]
    # Removing a ready sandbox stops it first.
    await rt.remove_pod_sandbox(other_sandbox)
    assert await rt.list_containers() == []


async def test_sandbox_status_lists_its_containers(rt: FakeRuntime) -> None:
    sandbox_id, (cid,) = await run_pod(rt)
    response = await rt.pod_sandbox_status(sandbox_id, verbose=True)
    assert [c.id for c in response.containers_statuses] == [cid]
    assert response.timestamp > 0
    assert "pid" in response.info["info"]


async def test_list_filters(rt: FakeRuntime) -> None:
    web, (web_main, web_side) = await run_pod(rt, "web", ("main", "side"))
    db, (db_main,) = await run_pod(rt, "db")
    await rt.stop_pod_sandbox(db)
    created = await rt.create_container(web, container_config("late", labels={"tier": "x"}),
                                        pod_config("web"))

    async def sandboxes(**kwargs: object) -> list[str]:
        return [s.id for s in await rt.list_pod_sandbox(api.PodSandboxFilter(**kwargs))]

    async def containers(**kwargs: object) -> list[str]:
        return [c.id for c in await rt.list_containers(api.ContainerFilter(**kwargs))]

    assert [s.id for s in await rt.list_pod_sandbox()] == [web, db]
    assert await sandboxes(id=db) == [db]
    assert await sandboxes(id="nope") == []
    assert await sandboxes(state=api.PodSandboxStateValue(state=api.SANDBOX_READY)) == [web]
    assert await sandboxes(state=api.PodSandboxStateValue(state=api.SANDBOX_NOTREADY)) == [db]
    assert await sandboxes(label_selector={"app": "db"}) == [db]
    assert await sandboxes(label_selector={"app": "db", "x": "y"}) == []

    assert await containers() == [web_main, web_side, db_main, created]
    assert await containers(pod_sandbox_id=web) == [web_main, web_side, created]
    assert await containers(id=web_side) == [web_side]
    running = api.ContainerStateValue(state=api.CONTAINER_RUNNING)
    assert await containers(state=running) == [web_main, web_side]
    exited = api.ContainerStateValue(state=api.CONTAINER_EXITED)
    assert await containers(state=exited) == [db_main]
    # CONTAINER_CREATED is 0: a filter that sets it explicitly must still select on it.
    assert await containers(state=api.ContainerStateValue(state=api.CONTAINER_CREATED)) == [
        created
    ]
    assert await containers(label_selector={"tier": "x"}) == [created]
    assert await containers(pod_sandbox_id=db, state=running) == []

    listed = (await rt.list_containers(api.ContainerFilter(id=web_main)))[0]
    assert listed.pod_sandbox_id == web and listed.image_ref.startswith("sha256:")
    assert dict(listed.annotations) == {"note": "container"}
    stats = await rt.list_container_stats(api.ContainerStatsFilter(pod_sandbox_id=db))
    assert [s.attributes.id for s in stats] == [db_main]


async def test_unknown_ids_raise_not_found(rt: FakeRuntime) -> None:
    missing = "0" * 64
    with pytest.raises(errors.NotFound) as info:
        await rt.container_status(missing)
    assert info.value.socket == "fake"
    assert info.value.method == "RuntimeService/ContainerStatus"
    assert missing in info.value.details
    for call in (rt.start_container(missing), rt.stop_container(missing),
                 rt.pod_sandbox_status(missing), rt.stop_pod_sandbox(missing),
                 rt.exec_sync(missing, ["true"]), rt.container_stats(missing),
                 rt.create_container(missing, container_config(), pod_config())):
        with pytest.raises(errors.NotFound):
            await call
    # Removes are idempotent, as containerd's are.
    await rt.remove_container(missing)
    await rt.remove_pod_sandbox(missing)
    await rt.remove_image("nope:1")


async def test_refusals(rt: FakeRuntime) -> None:
    config = pod_config()
    sandbox_id = await rt.run_pod_sandbox(config)
    cid = await rt.create_container(sandbox_id, container_config(), config)
    with pytest.raises(errors.FailedPrecondition):
        await rt.exec_sync(cid, ["true"])  # not running yet
    await rt.start_container(cid)
    with pytest.raises(errors.FailedPrecondition, match="CONTAINER_RUNNING"):
        await rt.start_container(cid)
    with pytest.raises(errors.AlreadyExists):
        await rt.run_pod_sandbox(config)  # same name and attempt
    with pytest.raises(errors.AlreadyExists):
        await rt.create_container(sandbox_id, container_config(), config)

    with pytest.raises(errors.NotFound, match="docker.io/library/nginx:9|nginx:9") as info:
        await rt.create_container(sandbox_id, container_config("x", "nginx:9"), config)
    assert info.value.method == "RuntimeService/CreateContainer"

    later = await rt.create_container(sandbox_id, container_config("later"), config)
    await rt.stop_pod_sandbox(sandbox_id)
    with pytest.raises(errors.FailedPrecondition):
        await rt.start_container(later)
    with pytest.raises(errors.FailedPrecondition):
        await rt.create_container(sandbox_id, container_config("again"), config)
    with pytest.raises(errors.FailedPrecondition):
        await rt.port_forward(sandbox_id, [80])

    # Names are released on removal: the kubelet may reuse them.
    await rt.remove_pod_sandbox(sandbox_id)
    assert await rt.run_pod_sandbox(config)


async def test_exec_and_streaming(rt: FakeRuntime) -> None:
    sandbox_id, (cid,) = await run_pod(rt)
    rt.exec_results[("*", ("cat", "/ready"))] = api.ExecSyncResponse(stdout=b"ok\n")
    rt.exec_results[(cid, ("false",))] = api.ExecSyncResponse(exit_code=1, stderr=b"no")
    assert (await rt.exec_sync(cid, ["cat", "/ready"])).stdout == b"ok\n"
    assert (await rt.exec_sync(cid, ["false"])).exit_code == 1
    assert (await rt.exec_sync(cid, ["true"])).exit_code == 0
    assert (await rt.exec(api.ExecRequest(container_id=cid, cmd=["sh"]))).startswith("http://")
    assert await rt.attach(api.AttachRequest(container_id=cid))
    assert await rt.port_forward(sandbox_id, [8080])


async def test_resources_and_logs(rt: FakeRuntime) -> None:
    _, (cid,) = await run_pod(rt)
    await rt.update_container_resources(cid, api.LinuxContainerResources(memory_limit_in_bytes=64))
    assert (await rt.container_status(cid)).resources.linux.memory_limit_in_bytes == 64
    await rt.reopen_container_log(cid)
    rt.exit_container(cid, 0)
    with pytest.raises(errors.FailedPrecondition):
        await rt.reopen_container_log(cid)


async def test_images(rt: FakeRuntime) -> None:
    assert normalize_image("nginx") == "docker.io/library/nginx:latest"
    assert normalize_image("quay.io/x/y@sha256:ab") == "quay.io/x/y@sha256:ab"
    assert normalize_image("localhost:5000/a") == "localhost:5000/a:latest"

    assert await rt.image_status("nginx") is None
    image_id = await rt.pull_image("nginx")
    assert image_id.startswith("sha256:")
    status = await rt.image_status("docker.io/library/nginx:latest")
    assert status is not None and status.id == image_id
    assert list(status.repo_tags) == ["docker.io/library/nginx:latest"]
    assert await rt.pull_image("nginx:latest") == image_id  # the same image again
    assert (await rt.image_status(image_id)) == status
    assert (await rt.image_status(PAUSE)) is not None
    assert len(await rt.list_images()) == 3
    only = await rt.list_images(api.ImageFilter(image=api.ImageSpec(image="busybox:1.36")))
    assert [list(i.repo_tags) for i in only] == [[BUSYBOX]]

    rt.fail_pulls["private/app:1"] = errors.NotFound("fake", "ImageService/PullImage", None,
                                                      "pull access denied")
    with pytest.raises(errors.NotFound, match="pull access denied"):
        await rt.pull_image("private/app:1")
    assert await rt.image_status("private/app:1") is None

    await rt.remove_image("nginx")
    assert await rt.image_status("nginx") is None
    info = await rt.image_fs_info()
    assert info.image_filesystems[0].inodes_used.value == 2

    sized = FakeRuntime(images={"a:1": 100, "b:1": 50})
    fs = (await sized.image_fs_info()).image_filesystems[0]
    assert fs.used_bytes.value == 150


async def test_status_and_version(rt: FakeRuntime) -> None:
    assert (await rt.version()).runtime_api_version == "v1"
    conditions = {c.type: c for c in (await rt.status()).status.conditions}
    assert conditions["RuntimeReady"].status and conditions["NetworkReady"].status
    rt.network_ready = False
    conditions = {c.type: c for c in (await rt.status()).status.conditions}
    assert not conditions["NetworkReady"].status
    assert conditions["NetworkReady"].reason == "NetworkPluginNotReady"


async def next_event(events: object) -> Event:
    assert hasattr(events, "__anext__")
    event: Event = await asyncio.wait_for(events.__anext__(), 1)
    return event


async def test_exit_events_reach_subscribers(rt: FakeRuntime, clock: Clock) -> None:
    exits = rt.subscribe(['topic=="/tasks/exit"'])
    everything = rt.subscribe()
    sandbox_id, (cid,) = await run_pod(rt)

    start = await next_event(everything)  # the sandbox's pause container
    assert start.topic == "/tasks/start" and start.payload.container_id == sandbox_id
    start = await next_event(everything)
    assert isinstance(start.payload, task_events.TaskStart)
    assert start.payload.container_id == cid and start.payload.pid > 0

    rt.exit_container(cid, 3)
    event = await next_event(exits)
    assert event.topic == "/tasks/exit" and event.namespace == "k8s.io"
    assert isinstance(event.payload, task_events.TaskExit)
    assert (event.payload.container_id, event.payload.id) == (cid, cid)
    assert event.payload.exit_status == 3
    assert event.payload.exited_at.seconds == clock.now // 1_000_000_000
    assert event.timestamp == pytest.approx(clock.now / 1e9)
    assert (await next_event(everything)).payload.exit_status == 3

    # A subscriber waiting before the exit is woken by it.
    waiting = asyncio.ensure_future(next_event(exits))
    await asyncio.sleep(0)
    second = await rt.create_container(sandbox_id, container_config("second"), pod_config())
    await rt.start_container(second)
    await rt.stop_container(second, 10)
    event = await waiting
    assert (event.payload.container_id, event.payload.exit_status) == (second, 143)

    await rt.stop_pod_sandbox(sandbox_id)
    event = await next_event(exits)
    assert (event.payload.container_id, event.payload.exit_status) == (sandbox_id, 137)

    await rt.close()  # ends the streams
    assert [e async for e in exits] == []


async def test_subscriptions_can_break_and_filters_are_checked(rt: FakeRuntime) -> None:
    events = rt.subscribe(['topic=="/tasks/exit",namespace==k8s.io'])
    rt.break_subscriptions()
    with pytest.raises(errors.Unavailable):
        await next_event(events)
    with pytest.raises(errors.InvalidArgument):
        rt.subscribe(['topic~="/tasks/"'])
    rt.fail_next("subscribe", errors.Unavailable("fake", "Events/Subscribe", None, "down"))
    with pytest.raises(errors.Unavailable, match="down"):
        await next_event(rt.subscribe())


async def test_calls_are_recorded_and_failures_injected(rt: FakeRuntime) -> None:
    rt.fail_next("start_container", errors.CRIError("fake", "RuntimeService/StartContainer",
                                                    None, "boom"))
    config = pod_config()
    sandbox_id = await rt.run_pod_sandbox(config)
    cid = await rt.create_container(sandbox_id, container_config(), config)
    with pytest.raises(errors.CRIError, match="boom"):
        await rt.start_container(cid)
    assert (await rt.container_status(cid)).state == api.CONTAINER_CREATED
    await rt.start_container(cid)  # only the next call failed
    await rt.stop_container(cid, 5)
    await rt.list_containers(api.ContainerFilter(pod_sandbox_id=sandbox_id))

    assert [name for name, _ in rt.calls] == [
        "run_pod_sandbox", "create_container", "start_container", "container_status",
        "start_container", "stop_container", "list_containers",
    ]
    assert rt.calls[0] == ("run_pod_sandbox", ("default", "web", 0))
    assert rt.calls[1] == ("create_container", (sandbox_id, "main", 0))
    assert rt.called("start_container") == [(cid,), (cid,)]
    assert rt.called("stop_container") == [(cid, 5)]
    assert rt.called("list_containers") == [(api.ContainerFilter(pod_sandbox_id=sandbox_id),)]

    with pytest.raises(ValueError):
        rt.fail_next("start_contianer", RuntimeError())


async def test_async_context_manager_and_close(clock: Clock) -> None:
    async with FakeRuntime(clock=clock) as rt:
        sandbox_id = await rt.run_pod_sandbox(pod_config())
    assert rt.calls[-1] == ("close", ())
    # The fake stands for containerd, which outlives a client: state survives close().
    assert [s.id for s in await rt.list_pod_sandbox()] == [sandbox_id]
