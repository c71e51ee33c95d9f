"""DaemonSet strategy: the template generation annotation the DaemonSet controller reads."""

from __future__ import annotations

import copy
from typing import Any

from controlplane.apiserver.registry.strategy_apps import DaemonSetStrategy

KEY = "deprecated.daemonset.template.generation"


def ds(image: str = "a", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "x", "annotations": dict(annotations or {})},
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_template_generation_starts_at_one_and_follows_template_changes() -> None:
    s = DaemonSetStrategy()
    created = ds(annotations={KEY: "7"})  # clients cannot set it
    s.default(created)
    s.prepare_for_create(created)
    assert created["metadata"]["annotations"][KEY] == "1"
    same = copy.deepcopy(created)
    same["metadata"]["annotations"][KEY] = "9"
    same["spec"]["revisionHistoryLimit"] = 3
    s.prepare_for_update(same, created)
    assert same["metadata"]["annotations"][KEY] == "1"
    changed = ds("b")
    s.default(changed)
    s.prepare_for_update(changed, created)
    assert changed["metadata"]["annotations"][KEY] == "2"
