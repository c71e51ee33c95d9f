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


@pytest.mark.parametrize("command,issue", [("cloud-controller-manager", 5)])
def test_unbuilt_daemons_say_so(command: str, issue: int) -> None:
    result = run(command)
    assert result.returncode == 1
    assert result.stderr.strip() == f"pinnace {command}: not built yet (issue {issue})"


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
