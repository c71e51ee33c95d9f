"""Cloud node initialisation and lifecycle: given these nodes and machines, expect these calls."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.client.rest import NODES
from controlplane.cloud import manager as cloud_manager
from controlplane.cloud.fake import FakeCloud
from controlplane.cloud.node import (
    PROVIDED_NODE_IP,
    UNINITIALIZED,
    CloudNodeController,
    initialized,
    node_addresses,
)
from controlplane.cloud.nodelifecycle import SHUTDOWN, CloudNodeLifecycleController
from controlplane.cloud.provider import CloudError, InstanceMetadata, NodeAddress
from controlplane.controllers import manager
from controlplane.controllers.testing import harness

Object = dict[str, Any]
META = InstanceMetadata(provider_id="fake://n1", instance_type="vm", zone="z1", region="r1",
                        node_addresses=(NodeAddress("InternalIP", "10.0.0.11"),
                                        NodeAddress("ExternalIP", "192.0.2.11")),
                        additional_labels={"example.com/rack": "r1"})


def node(name: str, *, tainted: bool = False, ready: str | None = None,
         taints: list[Object] | None = None, node_ip: str = "") -> Object:
    spec: Object = {"taints": list(taints or [])}
    if tainted:
        spec["taints"].append({"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"})
    if not spec["taints"]:
        del spec["taints"]
    status: Object = {"addresses": [{"type": "Hostname", "address": name}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready}]
    meta: Object = {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"}
    if node_ip:
        meta["annotations"] = {PROVIDED_NODE_IP: node_ip}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec,
            "status": status}


# -- initialisation ---------------------------------------------------------------------------


async def test_a_tainted_node_gets_addresses_then_id_labels_and_loses_the_taint() -> None:
    h = harness()
    cloud = FakeCloud(machines={"n1": META})
    c = CloudNodeController(h.context(), cloud)
    other = {"key": "example.com/dedicated", "effect": "NoSchedule"}
    h.cache(NODES, node("n1", tainted=True, taints=[other]), node("n2"))
    await c.sync("n1")
    await c.sync("n2")  # not tainted: left alone
    assert h.client.actions() == [("patch", "nodes/status", "n1"), ("update", "nodes", "n1")]
    assert h.client.bodies("patch", "nodes/status") == [{"status": {"addresses": [
        {"type": "InternalIP", "address": "10.0.0.11"},
        {"type": "ExternalIP", "address": "192.0.2.11"},
        {"type": "Hostname", "address": "n1"}]}}]
    updated = h.client.bodies("update", "nodes")[0]
    assert updated["spec"] == {"providerID": "fake://n1", "taints": [other]}
    assert updated["metadata"]["labels"] == {
        "node.kubernetes.io/instance-type": "vm", "beta.kubernetes.io/instance-type": "vm",
        "topology.kubernetes.io/zone": "z1", "failure-domain.beta.kubernetes.io/zone": "z1",
        "topology.kubernetes.io/region": "r1", "failure-domain.beta.kubernetes.io/region": "r1",
        "example.com/rack": "r1"}
    assert h.events() == [("Synced", "Node synced successfully")]


async def test_an_unknown_machine_keeps_the_taint_and_says_why() -> None:
    h = harness()
    c = CloudNodeController(h.context(), FakeCloud())
    h.cache(NODES, node("n1", tainted=True))
    await c.process("n1")
    assert h.client.actions() == [] and c.queue.failures("n1") == 1
    assert h.events() == [("InitializationFailed", "Failed to initialize node n1 from the cloud "
                           "provider: instance n1 not found")]


def test_provided_node_ip_picks_the_matching_address() -> None:
    assert node_addresses(node("n1", node_ip="192.0.2.11"), META) == [
        {"type": "ExternalIP", "address": "192.0.2.11"}, {"type": "Hostname", "address": "n1"}]
    with pytest.raises(ValueError, match="matches ip: 10.9.9.9"):
        node_addresses(node("n1", node_ip="10.9.9.9"), META)
    assert node_addresses(node("n1"), InstanceMetadata(provider_id="x://1")) is None


def test_an_existing_provider_id_is_kept() -> None:
    n = node("n1", tainted=True)
    n["spec"]["providerID"] = "other://1"
    assert initialized(n, META)["spec"]["providerID"] == "other://1"


# -- lifecycle ---------------------------------------------------------------------------------


def lifecycle(*nodes: Object, cloud: FakeCloud) -> Any:
    h = harness()
    c = CloudNodeLifecycleController(h.context(), cloud)
    h.cache(NODES, *nodes)
    return h, c


async def test_a_not_ready_node_without_a_machine_is_deleted() -> None:
    h, c = lifecycle(node("gone", ready="Unknown"), node("kept", ready="False"),
                     node("ready", ready="True"), cloud=FakeCloud(machines={"kept": None}))
    for name in ("gone", "kept", "ready"):
        await c.sync(name)
    assert h.client.actions() == [("delete", "nodes", "gone")]
    assert h.events() == [("DeletingNode", "Deleting node gone because it does not exist in "
                           "the cloud provider")]


async def test_shutdown_machines_are_tainted_and_untainted_once_ready() -> None:
    cloud = FakeCloud(machines={"off": None}, shutdown={"off"})
    h, c = lifecycle(node("off", ready="False"), cloud=cloud)
    await c.sync("off")
    assert h.client.bodies("update", "nodes")[0]["spec"]["taints"] == [
        {"key": SHUTDOWN, "effect": "NoSchedule"}]
    h.cache(NODES, node("off", ready="True", taints=[{"key": SHUTDOWN, "effect": "NoSchedule"}]))
    await c.sync("off")
    assert "taints" not in h.client.bodies("update", "nodes")[1]["spec"]
    assert [a for a in h.client.actions() if a[0] == "delete"] == []


async def test_a_provider_error_deletes_nothing() -> None:
    cloud = FakeCloud(fail={"instance_exists": CloudError("directory gone")})
    h, c = lifecycle(node("n", ready="Unknown"), cloud=cloud)
    await c.process("n")
    assert h.client.actions() == [] and c.queue.failures("n") == 1


# -- which controllers run ----------------------------------------------------------------------


def test_controllers_a_provider_cannot_serve_are_left_out() -> None:
    chosen = manager.enabled(["*", "-cloud-node"], cloud_manager.unbound())
    assert [r.name for r in chosen] == ["service", "cloud-node-lifecycle"]
    bound = cloud_manager.registrations(chosen, FakeCloud(instances=False))
    assert [r.name for r in bound] == ["service"]
    with pytest.raises(ValueError, match="'route' is not in the list of known controllers"):
        manager.enabled(["route"], cloud_manager.unbound())


def test_both_node_controllers_need_the_clouds_instances() -> None:
    for controller in (CloudNodeController, CloudNodeLifecycleController):
        with pytest.raises(ValueError, match="cloud provider fake has no instances"):
            controller(harness().context(), FakeCloud(instances=False))
