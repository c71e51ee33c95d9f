"""Unit tests of the agent's sync over the fake CRI and a recording API fake: an apiserver that
fails a status write or a deletion is retried soon (0.5 s doubling to 5 s), not after the pod
workers' error back-off; workers wait for adoption; a runtime that answers again resyncs every
pod."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from agent.agent import Agent
from agent.config import AgentConfig
from agent.pod_workers import DONE
from controlplane.api import errors
from controlplane.client.rest import PODS, RESTClient
from controlplane.controllers.testing import FakeClient
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api

Object = dict[str, Any]


def make_agent(tmp_path: Path) -> tuple[Agent, FakeClient, FakeRuntime]:
    client = FakeClient()
    runtime = FakeRuntime(images=["localhost/pause:1", "localhost/busybox:1"])
    config = AgentConfig(node_name="n1", node_ip="10.0.0.5", containerd="fake",
                         root_dir=tmp_path / "root", log_dir=tmp_path / "logs")
    agent = Agent(config, cast(RESTClient, client), runtime, runtime)  # type: ignore[arg-type]
    return agent, client, runtime


def add_pod(agent: Agent, name: str, **meta: Any) -> Object:
    pod: Object = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", **meta},
                   "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 0,
                            "containers": [{"name": "main", "image": "localhost/busybox:1"}]}}
    agent.pods.store[f"ns/{name}"] = pod
    agent._pod_changed(pod)
    return pod


async def test_a_failed_status_write_is_retried_soon_then_succeeds(tmp_path: Path) -> None:
    agent, client, runtime = make_agent(tmp_path)
    agent._adopted.set()
    try:
        add_pod(agent, "web")
        await agent.workers.stop()  # drive the syncs by hand
        client.fail[("patch", "pods/status")] = errors.ServiceUnavailable("apiserver down")
        delays = [await agent.sync("uid-web") for _ in range(6)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
        assert len(runtime.called("run_pod_sandbox")) == 1  # retries only re-report
        del client.fail[("patch", "pods/status")]
        assert await agent.sync("uid-web") is None
        patch = client.bodies("patch", "pods/status")[-1]
        assert patch["status"]["containerStatuses"][0]["state"]["running"]
        assert agent._api_retry == {}
    finally:
        await agent.workers.stop()


async def test_a_failed_deletion_confirmation_is_retried(tmp_path: Path) -> None:
    agent, client, runtime = make_agent(tmp_path)
    agent._adopted.set()
    add_pod(agent, "gone", deletionTimestamp="2025-01-01T00:00:00Z",
            deletionGracePeriodSeconds=0)
    await agent.workers.stop()
    client.fail[("delete", "pods")] = errors.ServiceUnavailable("apiserver down")
    assert await agent.sync("uid-gone") == 0.5
    del client.fail[("delete", "pods")]
    client.seed(PODS, agent.pods.store["ns/gone"])
    assert await agent.sync("uid-gone") == DONE
    assert client.actions()[-1] == ("delete", "pods", "gone")


async def test_workers_wait_for_adoption_and_a_recovered_runtime_resyncs_every_pod(
        tmp_path: Path) -> None:
    agent, client, runtime = make_agent(tmp_path)
    synced: list[str] = []
    real_sync = agent.sync

    async def sync(uid: str) -> float | None:
        result = await real_sync(uid)
        synced.append(uid)
        return result

    agent.workers.sync = sync
    try:
        add_pod(agent, "a")
        add_pod(agent, "b")
        await asyncio.sleep(0.05)
        assert synced == [] and runtime.called("run_pod_sandbox") == []  # not adopted yet
        agent._adopted.set()
        for _ in range(200):
            if len(synced) >= 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(synced) == ["uid-a", "uid-b"]
        synced.clear()
        agent._runtime_recovered()
        for _ in range(200):
            if len(synced) >= 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(synced) == ["uid-a", "uid-b"]
        sandboxes = await runtime.list_pod_sandbox()
        assert len(sandboxes) == 2 and all(s.state == api.SANDBOX_READY for s in sandboxes)
    finally:
        await agent.workers.stop()
