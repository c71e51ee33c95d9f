"""The local provider: its config, the pool behind load balancers, machines from a directory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.cloud import registry
from controlplane.cloud.local import LocalProvider, machine_name, metadata_of, parse_config
from controlplane.cloud.provider import CloudError, NodeAddress

Object = dict[str, Any]


def svc(name: str, *, ip: str = "", ingress: list[str] | None = None) -> Object:
    spec: Object = {"type": "LoadBalancer"}
    if ip:
        spec["loadBalancerIP"] = ip
    status: Object = {"loadBalancer": {}}
    if ingress:
        status["loadBalancer"]["ingress"] = [{"ip": i} for i in ingress]
    return {"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}"},
            "spec": spec, "status": status}


def node(name: str, provider_id: str = "") -> Object:
    return {"metadata": {"name": name}, "spec": {"providerID": provider_id} if provider_id else {}}


def provider(text: str) -> LocalProvider:
    built = registry.get_cloud_provider("local", text)
    assert isinstance(built, LocalProvider)
    return built


# -- config -----------------------------------------------------------------------------------


def test_config_with_both_parts_and_none() -> None:
    config = parse_config("loadBalancer:\n  addresses: 10.0.0.0/29\n"
                          "instances:\n  directory: /srv/machines\n")
    assert config.addresses == ("10.0.0.0/29",)
    assert config.instances_dir == Path("/srv/machines")
    empty = provider("")
    assert empty.load_balancer() is None and empty.instances_v2() is None
    assert empty.routes() is None and empty.provider_name() == "local"


@pytest.mark.parametrize("text,message", [
    ("loadBalancer: [1]", "loadBalancer: want a mapping"),
    ("pool: 10.0.0.0/24", "cloud config: unknown key 'pool' (known: instances, loadBalancer)"),
    ("loadBalancer:\n  addresses: []", "the address pool is empty"),
    ("loadBalancer:\n  addresses: [10.0.0.0/24, 10.0.0.9]", "overlap"),
    ("loadBalancer:\n  addresses: [nope]", "invalid address range 'nope'"),
    ("loadBalancer:\n  addresses: {a: 1}", "want a list of ranges"),
    ("instances: {}", "instances.directory: want the path of a directory"),
    ("instances:\n  dir: /x", "unknown key 'dir'"),
    ("a: [", "cloud config is not YAML"),
], ids=["not-mapping", "unknown", "empty-pool", "overlap", "bad-range", "not-list", "no-dir",
        "typo", "yaml"])
def test_bad_configs_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        provider(text)
    assert "\n" not in str(info.value)


def test_unknown_providers_and_double_registration() -> None:
    with pytest.raises(ValueError, match="unknown cloud provider 'aws' \\(known: local"):
        registry.factory("aws")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("local", lambda _text: provider(""))


def test_missing_config_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"--cloud-config {tmp_path}/none: No such file"):
        registry.read_config(str(tmp_path / "none"))


# -- load balancers ---------------------------------------------------------------------------


async def test_addresses_in_order_then_requested_then_released() -> None:
    lb = provider("loadBalancer:\n  addresses: [10.0.0.1-10.0.0.3]").load_balancer()
    assert lb is not None
    assert await lb.ensure_load_balancer("k", svc("a"), []) == {
        "ingress": [{"ip": "10.0.0.1", "ipMode": "VIP"}]}
    assert (await lb.ensure_load_balancer("k", svc("a"), []))["ingress"][0]["ip"] == "10.0.0.1"
    assert (await lb.ensure_load_balancer("k", svc("b", ip="10.0.0.3"), []))[
        "ingress"][0]["ip"] == "10.0.0.3"
    with pytest.raises(CloudError, match="10.0.0.3 is already allocated to default/b"):
        await lb.ensure_load_balancer("k", svc("c", ip="10.0.0.3"), [])
    assert (await lb.ensure_load_balancer("k", svc("c"), []))["ingress"][0]["ip"] == "10.0.0.2"
    with pytest.raises(CloudError, match="no free address in the pool 10.0.0.1-10.0.0.3"):
        await lb.ensure_load_balancer("k", svc("d"), [])
    assert await lb.get_load_balancer("k", svc("d")) == (None, False)
    await lb.ensure_load_balancer_deleted("k", svc("a"))
    assert (await lb.ensure_load_balancer("k", svc("d"), []))["ingress"][0]["ip"] == "10.0.0.1"


async def test_changing_the_requested_ip_moves_the_service() -> None:
    lb = provider("loadBalancer:\n  addresses: [10.0.0.0/29]").load_balancer()
    assert lb is not None
    await lb.ensure_load_balancer("k", svc("a"), [])
    await lb.ensure_load_balancer("k", svc("a", ip="10.0.0.5"), [])
    status, exists = await lb.get_load_balancer("k", svc("a"))
    assert exists and status == {"ingress": [{"ip": "10.0.0.5", "ipMode": "VIP"}]}
    assert (await lb.ensure_load_balancer("k", svc("b"), []))["ingress"][0]["ip"] == "10.0.0.1"


async def test_a_restarted_pool_adopts_what_services_show_and_never_repeats_it() -> None:
    lb = provider("loadBalancer:\n  addresses: [10.0.0.1-10.0.0.2]").load_balancer()
    assert lb is not None
    # the warm-up: existing services show their addresses; a second claim on one is refused
    assert (await lb.get_load_balancer("k", svc("old", ingress=["10.0.0.1"])))[1]
    assert not (await lb.get_load_balancer("k", svc("dup", ingress=["10.0.0.1"])))[1]
    assert not (await lb.get_load_balancer("k", svc("foreign", ingress=["192.0.2.1"])))[1]
    assert (await lb.ensure_load_balancer("k", svc("dup", ingress=["10.0.0.1"]), []))[
        "ingress"][0]["ip"] == "10.0.0.2"


# -- instances ----------------------------------------------------------------------------------


async def test_machines_are_the_files_of_the_directory(tmp_path: Path) -> None:
    machines = tmp_path / "machines"
    machines.mkdir()
    (machines / "node1").write_text("")
    (machines / "node2").write_text(
        "addresses: [{type: InternalIP, address: 10.254.0.12}]\ninstanceType: vm\n"
        "zone: z1\nregion: local\nshutdown: true\nlabels: {rack: r1}\n")
    (machines / ".node3.tmp").write_text("")
    (machines / "broken").write_text("addresses: [oops]\n")
    instances = provider(f"instances:\n  directory: {machines}").instances_v2()
    assert instances is not None
    assert await instances.instance_exists(node("node1"))
    assert await instances.instance_exists(node("renamed", "local://node2"))
    assert not await instances.instance_exists(node("node3"))
    assert not await instances.instance_shutdown(node("node1"))
    assert await instances.instance_shutdown(node("node2"))
    meta = await instances.instance_metadata(node("node2"))
    assert meta.provider_id == "local://node2" and meta.instance_type == "vm"
    assert meta.node_addresses == (NodeAddress("InternalIP", "10.254.0.12"),)
    assert (meta.zone, meta.region, dict(meta.additional_labels)) == ("z1", "local",
                                                                       {"rack": "r1"})
    assert (await instances.instance_metadata(node("node1"))).provider_id == "local://node1"
    with pytest.raises(CloudError, match="instance node3 not found in"):
        await instances.instance_metadata(node("node3"))
    with pytest.raises(CloudError, match="each address wants a type and an address"):
        await instances.instance_metadata(node("broken"))


async def test_a_missing_directory_is_an_error_not_no_machines(tmp_path: Path) -> None:
    instances = provider(f"instances:\n  directory: {tmp_path}/gone").instances_v2()
    assert instances is not None
    with pytest.raises(CloudError, match="instances directory .*/gone: No such file"):
        await instances.instance_exists(node("node1"))


def test_machine_name_prefers_a_local_provider_id() -> None:
    assert machine_name(node("n", "local://m")) == "m"
    assert machine_name(node("n", "aws:///i-123")) == "n"


def test_the_files_pinnace_up_writes_are_a_valid_local_cloud(tmp_path: Path) -> None:
    from pinnace.up import plan as planning
    from pinnace.up.plan import Ports, plan_cluster

    plan = plan_cluster(tmp_path, nodes=2, ports=Ports(6443, 2379, 2380, 5000))
    files = planning.cloud_files(plan)
    config = parse_config(files["cloud.yaml"])
    assert config.addresses == (planning.LB_POOL,)
    assert config.instances_dir == tmp_path / "cloud" / "instances"
    meta = metadata_of("node2", yaml.safe_load(files["instances/node2"]), tmp_path)
    assert meta.node_addresses == (NodeAddress("InternalIP", "10.254.0.12"),
                                   NodeAddress("Hostname", "node2"))
    argv = planning.cloud_controller_manager_argv(plan)
    assert argv[argv.index("--cloud-config") + 1] == str(tmp_path / "cloud" / "cloud.yaml")
    assert planning.load_balancer_route(plan) == (planning.LB_POOL, "10.254.0.11")
