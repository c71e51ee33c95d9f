"""`pinnace certs`: one /etc/pinnace per host, kept across runs, nodes added later."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cryptography import x509

from pinnace import certs
from pinnace.up.certs import missing_sans, signed_by

URL = "https://192.168.56.10:6443"
NODES = [certs.HostNode("node1", "192.168.56.11"), certs.HostNode("node2", "192.168.56.12")]


def server_of(kubeconfig: Path) -> str:
    server: str = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    return server


def test_every_host_gets_its_own_directory(tmp_path: Path) -> None:
    issued = certs.ensure(tmp_path, URL, ["server.local"], NODES)
    assert issued[0] == "CA" and "node-node2-serving" in issued
    ca = tmp_path / "server" / "pki" / "ca.crt"
    assert missing_sans(tmp_path / "server" / "pki" / "apiserver.crt",
                        ["192.168.56.10", "server.local", "kubernetes.default.svc"]) == []
    for name in ("scheduler", "controller-manager", "cloud-controller-manager"):
        assert server_of(tmp_path / "server" / "kubeconfigs" / f"{name}.kubeconfig") == URL
    node = tmp_path / "nodes" / "node2"
    assert sorted(p.name for p in (node / "pki").iterdir()) == [
        "agent-serving.crt", "agent-serving.key", "ca.crt"]  # never the CA key
    serving = node / "pki" / "agent-serving.crt"
    assert signed_by(serving, ca) and missing_sans(serving, ["node2", "192.168.56.12"]) == []
    agent = yaml.safe_load((node / "kubeconfigs" / "agent.kubeconfig").read_text())
    assert agent["users"][0]["name"] == "system:node:node2"
    assert server_of(tmp_path / "admin.kubeconfig") == URL


def test_a_rerun_keeps_everything_and_a_new_node_gets_only_its_own(tmp_path: Path) -> None:
    certs.ensure(tmp_path, URL, [], NODES)
    key = (tmp_path / "server" / "pki" / "ca.key").read_bytes()
    assert certs.ensure(tmp_path, URL, [], NODES) == []
    more = [*NODES, certs.HostNode("node3", "192.168.56.13")]
    assert certs.ensure(tmp_path, URL, [], more) == ["node-node3", "node-node3-serving"]
    assert (tmp_path / "server" / "pki" / "ca.key").read_bytes() == key


def test_a_new_apiserver_address_reissues_only_its_serving_pair(tmp_path: Path) -> None:
    certs.ensure(tmp_path, URL, [], NODES)
    assert certs.ensure(tmp_path, URL, ["10.0.0.5"], NODES) == ["apiserver"]
    cert = x509.load_pem_x509_certificate(
        (tmp_path / "server" / "pki" / "apiserver.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=kube-apiserver"


@pytest.mark.parametrize("bad", ["node1", "node1=", "=10.0.0.1", "node1=not-an-ip"])
def test_a_bad_node_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        certs.main(["--dir", "/nonexistent", "--server-url", URL, "--node", bad])
    assert exit_.value.code == 2
    assert "expected NAME=IP" in capsys.readouterr().err
