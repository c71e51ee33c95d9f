"""The `pinnace` command: dispatch, usage errors, placeholders that say what they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pinnace import cli


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinnace", *args], capture_output=True,
                          text=True, timeout=30)


def test_unknown_subcommand_prints_usage_and_exits_2() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: pinnace")
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_no_subcommand_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: pinnace" in result.stderr


def test_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0
    for name in cli.SUBCOMMANDS:
        assert name in result.stdout


def test_cloud_controller_manager_needs_a_provider_and_names_its_flags() -> None:
    result = run("cloud-controller-manager", "--kubeconfig", "/nonexistent")
    assert result.returncode == 2
    assert "--cloud-provider" in result.stderr
    result = run("cloud-controller-manager", "--help")
    assert result.returncode == 0
    for flag in ("--cloud-provider", "--cloud-config", "--controllers", "--cluster-name",
                 "--leader-elect", "--concurrent-service-syncs", "--node-monitor-period"):
        assert flag in result.stdout


@pytest.mark.parametrize("config,message", [
    ("loadBalancer:\n  addresses: [10.0.0.9-10.0.0.1]\n",
     "invalid address range '10.0.0.9-10.0.0.1'"),
    ("loadBalancer:\n  pool: 10.0.0.0/24\n", "loadBalancer: unknown key 'pool'"),
], ids=["bad-range", "unknown-key"])
def test_cloud_controller_manager_bad_config_is_one_line(tmp_path: Path, config: str,
                                                          message: str) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(config)
    result = run("cloud-controller-manager", "--kubeconfig", "/nonexistent",
                 "--cloud-provider", "local", "--cloud-config", str(path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"pinnace cloud-controller-manager: --cloud-config {path}: ")
    assert message in result.stderr


def test_cloud_controller_manager_unknown_provider_is_one_line() -> None:
    result = run("cloud-controller-manager", "--kubeconfig", "/nonexistent",
                 "--cloud-provider", "nimbus")
    assert result.returncode == 1
    assert result.stderr == ("pinnace cloud-controller-manager: unknown cloud provider "
                             "'nimbus' (known: local)\n")


def test_apiserver_help_names_kubernetes_flags() -> None:
    result = run("apiserver", "--help")
    assert result.returncode == 0
    for flag in ("--etcd-servers", "--secure-port", "--cert-dir", "--tls-cert-file",
                 "--client-ca-file", "--token-auth-file"):
        assert flag in result.stdout


def test_images_subcommand_usage_error_exits_2() -> None:
    result = run("images", "import")
    assert result.returncode == 2
    assert "--containerd" in result.stderr or "FILE" in result.stderr


def test_images_import_missing_file_is_one_line() -> None:
    result = run("images", "import", "/nonexistent.tar", "--containerd", "/nonexistent.sock")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "/nonexistent.tar: no such file" in result.stderr


def test_images_import_to_missing_containerd_names_the_socket(tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    fake.write_text("#!/bin/sh\nprintf 'bin/sh\\n'\n")
    fake.chmod(0o755)
    built = run("images", "build", str(tmp_path / "out"), "--busybox", str(fake))
    assert built.returncode == 0, built.stderr
    sock = str(tmp_path / "no-containerd.sock")
    result = run("images", "import", str(tmp_path / "out" / "busybox.tar"), "--containerd", sock)
    assert result.returncode == 1
    assert result.stderr == (f"pinnace images import: containerd at {sock}: Leases/Create: "
                             "UNAVAILABLE: no such socket (is containerd running?)\n")
