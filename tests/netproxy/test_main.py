"""`pinnace netproxy` command line: flags, usage errors and the IPVS answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netproxy import ipvs, main

IPVS_MISSING = ipvs.unavailable_reason()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinnace", "netproxy", *args],
                          capture_output=True, text=True, timeout=30)


def test_flags_become_the_proxier_config() -> None:
    args = main.parser().parse_args([
        "--kubeconfig", "k", "--node-name", "n1", "--cluster-cidr", "10.244.0.0/16",
        "--nodeport-addresses", "primary,192.168.0.0/16", "--masquerade-all",
        "--iptables-localhost-nodeports", "--iptables-sync-period", "1m",
        "--iptables-min-sync-period", "250ms"])
    config = main.config_of(args)
    assert (config.node_name, config.cluster_cidr, config.masquerade_all) == (
        "n1", "10.244.0.0/16", True)
    assert config.nodeport_addresses == ("primary", "192.168.0.0/16")
    assert config.localhost_nodeports and config.sync_period == 60.0
    assert config.min_sync_period == 0.25
    assert not main.config_of(main.parser().parse_args(
        ["--iptables-localhost-nodeports=false"])).localhost_nodeports


@pytest.mark.parametrize("args,message", [
    ((), "--kubeconfig is required"),
    (("--cluster-cidr", "10.0.0.0/33"), "invalid CIDR"),
    (("--iptables-sync-period", "soon"), "invalid duration"),
    (("--proxy-mode", "userspace"), "invalid choice"),
])
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.skipif(IPVS_MISSING is None, reason="this kernel has ip_vs")
def test_ipvs_mode_says_plainly_that_the_kernel_lacks_it() -> None:
    result = run("--proxy-mode", "ipvs", "--kubeconfig", "/nonexistent")
    assert result.returncode == 1
    assert result.stderr == f"pinnace netproxy: {IPVS_MISSING}\n"
    assert "needs the ip_vs kernel module" in result.stderr


@pytest.mark.skipif(IPVS_MISSING is not None, reason=str(IPVS_MISSING))
def test_ipvs_mode_where_the_kernel_has_ip_vs() -> None:
    result = run("--proxy-mode", "ipvs", "--kubeconfig", "/nonexistent")
    assert result.returncode == 1 and "ip_vs" not in result.stderr  # past the check


def test_ipvs_detection(tmp_path: Path) -> None:
    present = tmp_path / "ip_vs"
    present.write_text("")
    assert ipvs.unavailable_reason(present) is None
