"""The certificate and kubeconfig plan of `pinnace up`, and applying it to a directory."""

from __future__ import annotations

from pathlib import Path

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from controlplane.apiserver import pki
from pinnace.up import certs
from pinnace.up.plan import Ports, plan_cluster

PORTS = Ports(apiserver=6443, etcd_client=2379, etcd_peer=2380, registry=5000)


def subject(path: Path) -> tuple[str, list[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), [str(o) for o in orgs]


def server_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])


def test_identities_cover_admin_components_and_each_node() -> None:
    plan = plan_cluster(Path("/d"), nodes=2, ports=PORTS)
    found = {i.stem: i for i in certs.identities(plan)}
    assert set(found) == {"admin", "apiserver-kubelet-client", "scheduler", "controller-manager",
                          "cloud-controller-manager", "netproxy", "node-node1", "node-node2"}
    assert (found["admin"].user, found["admin"].groups) == ("kubernetes-admin",
                                                            ("system:masters",))
    assert found["admin"].kubeconfig == Path("/d/kubeconfig")
    assert found["node-node2"].user == "system:node:node2"
    assert found["node-node2"].groups == ("system:nodes",)
    assert found["scheduler"].user == "system:kube-scheduler"
    assert found["controller-manager"].user == "system:kube-controller-manager"
    # host-side clients dial loopback; node-side ones the bridge address
    assert found["scheduler"].server == "https://127.0.0.1:6443"
    assert found["node-node1"].server == found["netproxy"].server == "https://10.254.0.1:6443"
    assert found["apiserver-kubelet-client"].kubeconfig is None


def test_ensure_issues_everything_once_then_reuses_it(tmp_path: Path) -> None:
    plan = plan_cluster(tmp_path, nodes=2, ports=PORTS)
    issued = certs.ensure(plan)
    assert issued[0] == "CA" and "node-node2" in issued
    assert subject(tmp_path / "pki" / "node-node1.crt") == ("system:node:node1",
                                                            ["system:nodes"])
    serving = tmp_path / "pki" / "apiserver.crt"
    assert certs.missing_sans(serving, ["127.0.0.1", "10.254.0.1", "localhost"]) == []
    assert server_of(tmp_path / "kubeconfig") == "https://127.0.0.1:6443"
    assert server_of(tmp_path / "kubeconfigs" / "node-node1.kubeconfig") == (
        "https://10.254.0.1:6443")
    key = (tmp_path / "pki" / "node-node1.key").read_bytes()

    moved = plan_cluster(tmp_path, nodes=2, ports=Ports(7443, 2379, 2380, 5000))
    assert certs.ensure(moved) == []
    assert (tmp_path / "pki" / "node-node1.key").read_bytes() == key
    # the port moved: every kubeconfig follows it
    assert server_of(tmp_path / "kubeconfig") == "https://127.0.0.1:7443"
    assert server_of(tmp_path / "kubeconfigs" / "netproxy.kubeconfig") == (
        "https://10.254.0.1:7443")


def test_a_serving_certificate_without_the_bridge_address_is_reissued(tmp_path: Path) -> None:
    plan = plan_cluster(tmp_path, nodes=1, ports=PORTS)
    pki.ensure_cert_dir(tmp_path / "pki", hosts=["127.0.0.1"], server_url=plan.local_url)
    serving = tmp_path / "pki" / "apiserver.crt"
    assert certs.missing_sans(serving, ["10.254.0.1"]) == ["10.254.0.1"]
    assert certs.ensure(plan) == ["apiserver-kubelet-client", "scheduler", "controller-manager",
                                  "cloud-controller-manager", "netproxy", "node-node1",
                                  "node-node1-serving"]
    assert certs.missing_sans(serving, certs.serving_hosts()) == []


def test_each_agent_gets_a_serving_pair_for_its_name_and_address(tmp_path: Path) -> None:
    plan = plan_cluster(tmp_path, nodes=2, ports=PORTS)
    certs.ensure(plan)
    node = plan.nodes[1]
    cert = tmp_path / "pki" / "node-node2-serving.crt"
    assert certs.signed_by(cert, tmp_path / "pki" / "ca.crt")
    assert certs.missing_sans(cert, [node.name, node.address]) == []
    assert subject(cert)[0] == "system:node:node2"


def test_a_client_certificate_of_another_ca_is_reissued(tmp_path: Path) -> None:
    plan = plan_cluster(tmp_path, nodes=1, ports=PORTS)
    certs.ensure(plan)
    other = tmp_path / "other"
    pki.ensure_cert_dir(other, hosts=[], server_url="https://x")
    (other / "admin.crt").replace(tmp_path / "pki" / "scheduler.crt")
    (other / "admin.key").replace(tmp_path / "pki" / "scheduler.key")
    ca = tmp_path / "pki" / "ca.crt"
    assert not certs.signed_by(tmp_path / "pki" / "scheduler.crt", ca)
    assert certs.ensure(plan) == ["scheduler"]
    assert certs.signed_by(tmp_path / "pki" / "scheduler.crt", ca)
    assert not certs.signed_by(tmp_path / "pki" / "missing.crt", ca)
