"""KubeSchedulerConfiguration files: defaults, plugin lists and weights, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.scheduler import config as configuration
from controlplane.scheduler.config import ConfigError, SchedulerConfig


def test_defaults_mirror_kubernetes() -> None:
    profile = SchedulerConfig().profiles[0]
    assert profile.scheduler_name == "default-scheduler"
    assert profile.filters == ["NodeUnschedulable", "NodeName", "TaintToleration", "NodeReady",
                               "NodeAffinity", "NodePorts", "NodeResourcesFit",
                               "PodTopologySpread", "InterPodAffinity"]
    assert profile.scores == [("TaintToleration", 3), ("NodeAffinity", 2),
                              ("NodeResourcesFit", 1), ("PodTopologySpread", 2),
                              ("InterPodAffinity", 2), ("NodeResourcesBalancedAllocation", 1),
                              ("ImageLocality", 1)]
    assert profile.preemption


def test_plugins_weights_and_args(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
podInitialBackoffSeconds: 2
podMaxBackoffSeconds: 20
leaderElection: {leaderElect: false, resourceName: other, leaseDuration: 30s}
profiles:
- schedulerName: default-scheduler
  plugins:
    multiPoint:
      disabled: [{name: ImageLocality}]
    score:
      enabled: [{name: NodeResourcesBalancedAllocation, weight: 5}]
      disabled: [{name: TaintToleration}]
    filter:
      disabled: [{name: NodeReady}]
    postFilter:
      disabled: [{name: DefaultPreemption}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
- schedulerName: bin-packer
  plugins:
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit, weight: 1}]
""")
    config = configuration.load(path)
    assert (config.pod_initial_backoff, config.pod_max_backoff) == (2, 20)
    assert (config.leader_elect, config.lease_name, config.lease_duration) == (False, "other", 30)
    first, second = config.profiles
    assert "NodeReady" not in first.filters and "TaintToleration" in first.filters
    assert dict(first.scores) == {"NodeAffinity": 2, "NodeResourcesFit": 1,
                                  "PodTopologySpread": 2, "InterPodAffinity": 2,
                                  "NodeResourcesBalancedAllocation": 5}
    assert not first.preemption
    assert second.scores == [("NodeResourcesFit", 1)]
    profiles = config.build_profiles()
    assert set(profiles) == {"default-scheduler", "bin-packer"}
    fit = next(p for p, _ in profiles["default-scheduler"].scores if p.name == "NodeResourcesFit")
    assert fit.scorer.__name__ == "most_requested"  # type: ignore[attr-defined]


@pytest.mark.parametrize("doc,error", [
    ({"kind": "Pod"}, "is not KubeSchedulerConfiguration"),
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]},
     "unknown plugin 'Nope'"),
    ({"profiles": [{"plugins": {"sideways": {}}}]}, "unknown extension point"),
    ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "NodePorts"}]}}}]},
     "NodePorts is not a score plugin"),
    ({"profiles": [{}, {}]}, "duplicate schedulerName"),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit",
                                      "args": {"scoringStrategy": {"type": "Weird"}}}]}]},
     "scoring strategy 'Weird' is not supported"),
    ({"leaderElection": {"leaseDuration": "soon"}}, "is not a duration"),
])
def test_errors_name_the_problem(doc: dict, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        configuration.parse(doc, "cfg.yaml")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        configuration.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        configuration.load(bad)
