"""The controller-manager's wiring: --controllers, flags, shared informers, the worker loop."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.client.rest import PODS, REPLICASETS
from controlplane.controllers import main, manager
from controlplane.controllers.base import Controller
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.testing import build, harness


def names(spec: str) -> list[str]:
    return [r.name for r in manager.enabled(spec.split(","))]


def test_controllers_flag_follows_kube_controller_manager() -> None:
    everything = names("*")
    assert everything[:2] == ["deployment", "replicaset"]
    assert {"namespace", "garbagecollector"} <= set(everything)
    assert "deployment" not in names("*,-deployment")
    assert len(names("*,-deployment")) == len(everything) - 1
    assert names("replicaset") == ["replicaset"]
    assert names("") == []
    with pytest.raises(ValueError, match="'jobz' is not in the list of known controllers"):
        names("jobz")


def test_flags_have_kubernetes_names_and_defaults() -> None:
    args = main.parser().parse_args(["--kubeconfig", "k", "--leader-elect=false",
                                     "--concurrent-deployment-syncs", "2",
                                     "--leader-elect-lease-duration", "30s"])
    assert args.leader_elect is False
    assert args.concurrent_deployment_syncs == 2
    assert args.concurrent_replicaset_syncs == 5
    assert args.leader_elect_lease_duration == 30.0
    assert args.leader_elect_resource_name == "kube-controller-manager"
    assert args.leader_elect_resource_namespace == "kube-system"
    assert main.duration("500ms") == 0.5 and main.duration("2m") == 120.0


def test_controllers_share_one_informer_per_resource() -> None:
    h = harness()
    build(h, DeploymentController)
    build(h, ReplicaSetController)
    assert h.informers.informer(PODS) is h.informers.informer(PODS)
    assert sorted(r.resource for r in h.informers._informers) == [
        "deployments", "pods", "replicasets"]
    assert REPLICASETS in h.informers._informers


class Flaky(Controller):
    name = "flaky"

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.seen: list[str] = []

    async def sync(self, key: str) -> None:
        self.seen.append(key)
        if len(self.seen) == 1:
            raise RuntimeError("transient")


async def test_a_failed_sync_is_retried_with_backoff_and_then_forgotten() -> None:
    h = harness()
    c = Flaky(h.context())
    c.queue.base_delay = 0.001
    runner = asyncio.create_task(c.run(2))
    c.queue.add("ns/a")
    for _ in range(200):
        if len(c.seen) >= 2:
            break
        await asyncio.sleep(0.01)
    assert c.seen == ["ns/a", "ns/a"]
    assert c.queue.failures("ns/a") == 0
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


def test_option_values_fall_back_to_the_defaults_of_flags_not_given() -> None:
    ctx = harness().context()
    ctx.options = {"pod_gc_check_period": 1.0, "other": "x"}
    assert ctx.option_values({"pod_gc_check_period": 20.0, "pod_gc_quarantine": 40.0}) == {
        "pod_gc_check_period": 1.0, "pod_gc_quarantine": 40.0}


def test_both_controller_managers_take_the_leader_election_flags_with_their_own_lease() -> None:
    from controlplane.controllers import cloud_main

    cm = main.parser().parse_args(["--kubeconfig", "k", "--leader-elect=false",
                                   "--leader-elect-lease-duration=4s"])
    ccm = cloud_main.parser().parse_args(["--kubeconfig", "k", "--cloud-provider", "local"])
    assert (cm.leader_elect, cm.leader_elect_lease_duration) == (False, 4.0)
    assert (ccm.leader_elect, ccm.leader_elect_lease_duration) == (True, 15.0)
    assert cm.leader_elect_resource_name == "kube-controller-manager"
    assert ccm.leader_elect_resource_name == "cloud-controller-manager"
    assert cm.leader_elect_resource_namespace == ccm.leader_elect_resource_namespace
