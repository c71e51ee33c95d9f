"""The scheduler's configuration: a KubeSchedulerConfiguration-like YAML file, and its defaults.

```yaml
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
podInitialBackoffSeconds: 1
podMaxBackoffSeconds: 10
leaderElection: {leaderElect: true, resourceName: kube-scheduler, resourceNamespace: kube-system}
profiles:
- schedulerName: default-scheduler
  plugins:
    multiPoint: {enabled: [{name: NodeReady}], disabled: [{name: ImageLocality}]}
    score: {enabled: [{name: NodeResourcesBalancedAllocation, weight: 2}]}
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
```
Defaults mirror Kubernetes 1.32's plugin list, order and score weights, plus NodeReady (see its
module). `filter` and `score` lists refine `multiPoint`; `disabled: [{name: "*"}]` drops every
default of that point. Unknown plugins are errors, reported with the file name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.scheduler.framework import Profile
from controlplane.scheduler.plugin import FilterPlugin, Plugin, ScorePlugin
from controlplane.scheduler.plugins import BUILT_IN, REGISTRY

DEFAULT_SCHEDULER_NAME = "default-scheduler"
# (plugin, score weight) in Kubernetes' getDefaultPlugins order; NodeReady is ours.
DEFAULT_PLUGINS: list[tuple[str, int]] = [
    ("PrioritySort", 0), ("NodeUnschedulable", 0), ("NodeName", 0), ("TaintToleration", 3),
    ("NodeReady", 0), ("NodeAffinity", 2), ("NodePorts", 0), ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2), ("InterPodAffinity", 2), ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1), ("DefaultBinder", 0),
]
POINTS = ("multiPoint", "queueSort", "preFilter", "filter", "postFilter", "preScore", "score",
          "reserve", "permit", "preBind", "bind", "postBind")


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the field."""


@dataclass
class ProfileConfig:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    plugins: list[tuple[str, int]] = field(default_factory=lambda: list(DEFAULT_PLUGINS))
    filters: list[str] = field(default_factory=list)
    scores: list[tuple[str, int]] = field(default_factory=list)
    preemption: bool = True
    plugin_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None


@dataclass
class SchedulerConfig:
    profiles: list[ProfileConfig] = field(default_factory=lambda: [ProfileConfig()])
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff: float = 1.0
    pod_max_backoff: float = 10.0
    leader_elect: bool = True
    lease_name: str = "kube-scheduler"
    lease_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        for profile in self.profiles:
            if not profile.filters and not profile.scores:
                resolve(profile, {}, "defaults")

    def build_profiles(self) -> dict[str, Profile]:
        """One framework Profile per scheduler name, plugins instantiated with their args."""
        built: dict[str, Profile] = {}
        for config in self.profiles:
            instances: dict[str, Plugin] = {}

            def instance(name: str, config: ProfileConfig = config,
                         instances: dict[str, Plugin] = instances) -> Plugin:
                if name not in instances:
                    try:
                        instances[name] = REGISTRY[name](config.plugin_args.get(name))
                    except (ValueError, TypeError, KeyError) as exc:
                        raise ConfigError(f"plugin {name}: {exc}") from None
                return instances[name]

            filters = [p for p in (instance(n) for n in config.filters)
                       if isinstance(p, FilterPlugin)]
            scores = [(p, w) for p, w in ((instance(n), w) for n, w in config.scores)
                      if isinstance(p, ScorePlugin)]
            percentage = config.percentage_of_nodes_to_score
            built[config.scheduler_name] = Profile(
                config.scheduler_name, filters, scores, preemption=config.preemption,
                percentage_of_nodes_to_score=(self.percentage_of_nodes_to_score
                                              if percentage is None else percentage))
        return built


def _names(section: Any, key: str, where: str) -> list[dict[str, Any]]:
    entries = (section or {}).get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("name")
                                                for e in entries):
        raise ConfigError(f"{where}.{key}: a list of {{name: ..., weight: ...}} is expected")
    for entry in entries:
        if entry["name"] != "*" and entry["name"] not in REGISTRY and entry[
                "name"] not in BUILT_IN:
            raise ConfigError(f"{where}.{key}: unknown plugin {entry['name']!r}")
    return list(entries)


def _apply(current: list[tuple[str, int]], section: Any, where: str) -> list[tuple[str, int]]:
    """Disable then enable (weights of enabled entries override) one extension point's list."""
    disabled = {e["name"] for e in _names(section, "disabled", where)}
    result = [] if "*" in disabled else [(n, w) for n, w in current if n not in disabled]
    for entry in _names(section, "enabled", where):
        weight = int(entry.get("weight") or 0)
        existing = [i for i, (n, _) in enumerate(result) if n == entry["name"]]
        if existing:
            result[existing[0]] = (entry["name"], weight or result[existing[0]][1])
        else:
            result.append((entry["name"], weight))
    return result


def resolve(profile: ProfileConfig, plugins: dict[str, Any], where: str) -> None:
    """Compute the profile's filter and score lists from defaults and a `plugins` section."""
    for point in plugins:
        if point not in POINTS:
            raise ConfigError(f"{where}.plugins: unknown extension point {point!r}")
    multi = _apply(profile.plugins, plugins.get("multiPoint"), f"{where}.plugins.multiPoint")
    profile.plugins = multi
    filters = [(n, w) for n, w in multi if issubclass(REGISTRY.get(n, Plugin), FilterPlugin)]
    filters = _apply(filters, plugins.get("filter"), f"{where}.plugins.filter")
    scores = [(n, w) for n, w in multi if issubclass(REGISTRY.get(n, Plugin), ScorePlugin)]
    scores = _apply(scores, plugins.get("score"), f"{where}.plugins.score")
    post = _apply([(n, 0) for n, _ in multi if n == "DefaultPreemption"],
                  plugins.get("postFilter"), f"{where}.plugins.postFilter")
    profile.filters = [n for n, _ in filters]
    profile.scores = [(n, w or 1) for n, w in scores]
    profile.preemption = any(n == "DefaultPreemption" for n, _ in post)
    for name in profile.filters:
        if not issubclass(REGISTRY.get(name, Plugin), FilterPlugin):
            raise ConfigError(f"{where}.plugins.filter: {name} is not a filter plugin")
    for name, _ in profile.scores:
        if not issubclass(REGISTRY.get(name, Plugin), ScorePlugin):
            raise ConfigError(f"{where}.plugins.score: {name} is not a score plugin")


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * units[unit]
            except ValueError:
                break
    raise ConfigError(f"{where}: {value!r} is not a duration (e.g. 15s)")


def parse(doc: Any, source: str = "config") -> SchedulerConfig:
    """Build a SchedulerConfig from a parsed KubeSchedulerConfiguration document."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: not a KubeSchedulerConfiguration")
    if doc.get("kind") not in (None, "KubeSchedulerConfiguration"):
        raise ConfigError(f"{source}: kind {doc.get('kind')!r} is not KubeSchedulerConfiguration")
    config = SchedulerConfig(profiles=[])
    config.percentage_of_nodes_to_score = int(doc.get("percentageOfNodesToScore") or 0)
    config.pod_initial_backoff = float(doc.get("podInitialBackoffSeconds") or 1)
    config.pod_max_backoff = float(doc.get("podMaxBackoffSeconds") or 10)
    election = doc.get("leaderElection") or {}
    config.leader_elect = bool(election.get("leaderElect", True))
    config.lease_name = str(election.get("resourceName") or config.lease_name)
    config.lease_namespace = str(election.get("resourceNamespace") or config.lease_namespace)
    for key, attr in (("leaseDuration", "lease_duration"), ("renewDeadline", "renew_deadline"),
                      ("retryPeriod", "retry_period")):
        if key in election:
            setattr(config, attr, _seconds(election[key], f"{source}: leaderElection.{key}"))
    raw_profiles = doc.get("profiles") or [{}]
    for i, raw in enumerate(raw_profiles):
        where = f"{source}: profiles[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: a profile must be a mapping")
        profile = ProfileConfig(scheduler_name=str(raw.get("schedulerName")
                                                   or DEFAULT_SCHEDULER_NAME))
        if raw.get("percentageOfNodesToScore") is not None:
            profile.percentage_of_nodes_to_score = int(raw["percentageOfNodesToScore"])
        for entry in raw.get("pluginConfig") or []:
            name = str((entry or {}).get("name") or "")
            if name not in REGISTRY and name not in BUILT_IN:
                raise ConfigError(f"{where}.pluginConfig: unknown plugin {name!r}")
            profile.plugin_args[name] = dict(entry.get("args") or {})
        resolve(profile, dict(raw.get("plugins") or {}), where)
        config.profiles.append(profile)
    names = [p.scheduler_name for p in config.profiles]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: profiles: duplicate schedulerName")
    config.build_profiles()  # surfaces bad plugin arguments now, not at the first pod
    return config


def load(path: str | Path) -> SchedulerConfig:
    """Read and parse a configuration file."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(doc or {}, str(path))
