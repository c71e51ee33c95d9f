"""The Vagrantfile, checked without Vagrant: Ruby syntax, the machines it defines (through a
recording stand-in for Vagrant's API, tests/vagrant/load_vagrantfile.rb) and its shell
provisioners (bash syntax; they call the same scripts the README and CI use)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TOP = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("ruby") is None,
                                reason="ruby is missing (scripts/setup.sh installs it)")


def defined(**env: str) -> dict[str, Any]:
    done = subprocess.run(["ruby", str(TOP / "tests" / "vagrant" / "load_vagrantfile.rb")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def machines(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["args"][0]: d["block"]["vm"] for d in config["vm"]["define()"]}


def scripts(vm: dict[str, Any]) -> dict[str, str]:
    return {p["args"][0]: p["args"][1]["inline"] for p in vm["provision()"]}


def test_ruby_syntax() -> None:
    done = subprocess.run(["ruby", "-c", str(TOP / "Vagrantfile")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stderr


def test_one_server_and_n_nodes_on_a_private_network() -> None:
    vms = machines(defined(PINNACE_NODES="3", PINNACE_NETWORK="10.20.30"))
    assert list(vms) == ["server", "node1", "node2", "node3"]  # server provisioned first
    ips = {name: vm["network()"][0]["args"][1]["ip"] for name, vm in vms.items()}
    assert ips == {"server": "10.20.30.10", "node1": "10.20.30.11", "node2": "10.20.30.12",
                   "node3": "10.20.30.13"}
    assert all(vm["network()"][0]["args"][0] == "private_network" for vm in vms.values())


def test_box_and_sizes_are_configurable() -> None:
    config = defined(PINNACE_BOX="generic/ubuntu2204", PINNACE_CPUS="4", PINNACE_MEMORY="4096")
    assert config["vm"]["box"] == "generic/ubuntu2204"
    providers = {p["args"][0]: p["block"] for p in config["vm"]["provider()"]}
    assert providers["virtualbox"] == {"cpus": 4, "memory": 4096}


def test_provisioners_use_the_shared_scripts_and_are_valid_bash() -> None:
    vms = machines(defined(PINNACE_NODES="2"))
    server = scripts(vms["server"])
    assert "/opt/pinnace/scripts/setup.sh" in server["copy"]
    assert "pinnace certs" in server["server"] and "install-systemd.sh server" in server["server"]
    node2 = scripts(vms["node2"])["node"]
    assert "install-systemd.sh node" in node2
    assert "--name node2 --ip 192.168.56.12 --server-ip 192.168.56.10" in " ".join(node2.split())
    for vm in vms.values():
        for name, text in scripts(vm).items():
            done = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 0, f"{name}: {done.stderr}"
    for script in ("setup.sh", "install-systemd.sh"):
        assert (TOP / "scripts" / script).exists()


def test_the_server_hands_every_node_its_certificates(tmp_path: Path) -> None:
    """Run the server provisioner's `pinnace certs` line here, with this checkout's venv."""
    pinnace = TOP / ".venv" / "bin" / "pinnace"
    if not pinnace.exists():
        pytest.skip("no .venv (run scripts/setup.sh)")
    text = scripts(machines(defined(PINNACE_NODES="2"))["server"])["server"]
    certs_part = text.split("cp /vagrant")[0]  # node_args loop + pinnace certs
    script = (certs_part.replace("/opt/pinnace/.venv/bin/pinnace", str(pinnace))
              .replace("/vagrant/.pinnace", str(tmp_path)))
    subprocess.run(["bash", "-c", script], check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in (tmp_path / "certs" / "nodes").iterdir()) == ["node1", "node2"]
    assert (tmp_path / "certs" / "admin.kubeconfig").exists()
