"""systemd/: every unit runs a real subcommand with flags it accepts, verifies with
systemd-analyze, and scripts/install-systemd.sh lays out a server and a node."""

from __future__ import annotations

import configparser
import importlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pinnace import certs
from pinnace.cli import SUBCOMMANDS

TOP = Path(__file__).resolve().parents[1]
UNITS = sorted((TOP / "systemd").glob("pinnace-*.service"))
FILLED = {"@SERVER_IP@": "192.168.56.10", "@NODE_NAME@": "node1", "@NODE_IP@": "192.168.56.11"}


def unit(path: Path) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(interpolation=None, strict=True)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read(path)
    return parsed


def env_args(command: str) -> list[str]:
    text = (TOP / "systemd" / "env" / f"{command}.env").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("PINNACE_ARGS=")]
    assert len(lines) == 1, f"{command}.env needs exactly one PINNACE_ARGS line"
    value = lines[0].removeprefix("PINNACE_ARGS=")
    for placeholder, filled in FILLED.items():
        value = value.replace(placeholder, filled)
    return shlex.split(value)


def test_there_is_a_unit_per_daemon() -> None:
    assert {p.stem for p in UNITS} == {
        "pinnace-apiserver", "pinnace-scheduler", "pinnace-controller-manager",
        "pinnace-cloud-controller-manager", "pinnace-agent", "pinnace-netproxy"}


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_units_notify_restart_and_take_flags_from_their_environment_file(path: Path) -> None:
    command = path.stem.removeprefix("pinnace-")
    service = unit(path)["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == f"/etc/pinnace/{command}.env"
    assert service["ExecStart"] == f"/usr/local/bin/pinnace {command} $PINNACE_ARGS"
    assert command in SUBCOMMANDS


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_environment_files_hold_flags_the_daemon_accepts(path: Path) -> None:
    command = path.stem.removeprefix("pinnace-")
    module = importlib.import_module(SUBCOMMANDS[command][0])
    assert hasattr(module, "parser"), f"{command} has no parser() to check its flags against"
    module.parser().parse_args(env_args(command))  # exits 2 on an unknown or bad flag


def test_node_units_are_ordered_after_their_runtime_and_the_server_after_etcd() -> None:
    after = {p.stem: unit(p)["Unit"]["After"].split() for p in UNITS}
    assert "containerd.service" in after["pinnace-agent"]
    assert "etcd.service" in after["pinnace-apiserver"]
    assert "pinnace-apiserver.service" in after["pinnace-scheduler"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    pinnace = TOP / ".venv" / "bin" / "pinnace"
    if not pinnace.exists():
        pytest.skip(f"{pinnace} is missing (run scripts/setup.sh)")
    for path in UNITS:  # verify needs ExecStart's binary to exist: point it at this checkout
        text = path.read_text().replace("/usr/local/bin/pinnace", str(pinnace))
        (tmp_path / path.name).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", *sorted(map(str, tmp_path.iterdir()))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_install_script_lays_out_a_server_and_a_node(tmp_path: Path) -> None:
    if not (TOP / ".venv" / "bin" / "pinnace").exists():
        pytest.skip("no .venv (run scripts/setup.sh)")
    bundle = tmp_path / "certs"
    certs.ensure(bundle, "https://192.168.56.10:6443", [],
                 [certs.HostNode("node1", "192.168.56.11")])
    script = str(TOP / "scripts" / "install-systemd.sh")
    server, node = tmp_path / "server", tmp_path / "node"
    subprocess.run([script, "server", "--certs", str(bundle), "--server-ip", "192.168.56.10",
                    "--root", str(server)], check=True, capture_output=True, timeout=120)
    subprocess.run([script, "node", "--certs", str(bundle), "--name", "node1", "--ip",
                    "192.168.56.11", "--server-ip", "192.168.56.10", "--root", str(node)],
                   check=True, capture_output=True, timeout=120)
    units = sorted(p.name for p in (server / "etc/systemd/system").iterdir())
    assert units == ["pinnace-apiserver.service", "pinnace-cloud-controller-manager.service",
                     "pinnace-controller-manager.service", "pinnace-scheduler.service"]
    assert "--advertise-address=192.168.56.10" in (server / "etc/pinnace/apiserver.env").read_text()
    assert (server / "etc/pinnace/pki/ca.key").exists()
    assert not (node / "etc/pinnace/pki/ca.key").exists()
    agent_env = (node / "etc/pinnace/agent.env").read_text()
    assert "--node-name=node1" in agent_env and "@" not in agent_env.split("PINNACE_ARGS=")[1]
    assert (node / "etc/pinnace/kubeconfigs/agent.kubeconfig").exists()
    assert (node / "etc/containerd/config.toml").exists()
    assert (node / "etc/containerd/certs.d/docker.io/hosts.toml").exists()
    assert {p.name for p in (node / "var/lib/pinnace/images").iterdir()} >= {
        "pause.tar", "busybox.tar"}
    # a second run keeps the operator's environment files
    (node / "etc/pinnace/agent.env").write_text("PINNACE_ARGS=--mine\n")
    again = subprocess.run([script, "node", "--certs", str(bundle), "--name", "node1", "--ip",
                            "192.168.56.11", "--root", str(node)],
                           check=True, capture_output=True, text=True, timeout=120)
    assert "keeping" in again.stdout
    assert (node / "etc/pinnace/agent.env").read_text() == "PINNACE_ARGS=--mine\n"


def test_install_script_refuses_without_certificates(tmp_path: Path) -> None:
    done = subprocess.run([str(TOP / "scripts" / "install-systemd.sh"), "node", "--certs",
                           str(tmp_path), "--name", "n", "--ip", "10.0.0.2", "--root",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "run `pinnace certs` on the server first" in done.stderr
