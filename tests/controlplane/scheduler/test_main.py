"""`pinnace scheduler` flags on top of the configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.scheduler import main


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("profiles: [{schedulerName: from-file}]\n"
                      "leaderElection: {leaderElect: true, resourceName: file-lease}\n")
    args = main.parser().parse_args([
        "--kubeconfig", "k", "--config", str(config), "--scheduler-name", "flagged",
        "--leader-elect=false", "--lease-name", "flag-lease",
        "--leader-elect-lease-duration", "4"])
    effective = main.effective_config(args)
    assert effective.profiles[0].scheduler_name == "flagged"
    assert (effective.leader_elect, effective.lease_name, effective.lease_duration) == (
        False, "flag-lease", 4.0)
    defaults = main.effective_config(main.parser().parse_args(["--kubeconfig", "k"]))
    assert defaults.profiles[0].scheduler_name == "default-scheduler"
    assert (defaults.leader_elect, defaults.lease_name) == (True, "kube-scheduler")
    assert main.parser().parse_args(["--kubeconfig", "k", "--leader-elect"]).leader_elect


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--kubeconfig", str(tmp_path / "missing")]) == 1
    assert "pinnace scheduler:" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [{plugins: {filter: {enabled: [{name: Nope}]}}}]")
    assert main.main(["--kubeconfig", "k", "--config", str(bad)]) == 1
    assert "unknown plugin 'Nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main.parser().parse_args(["--kubeconfig", "k", "--leader-elect=maybe"])
