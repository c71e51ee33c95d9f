"""The HorizontalPodAutoscaler strategy, on the autoscaling/v2 form it is stored as (autoscaling/v1
arrives converted). Defaults are Kubernetes' autoscaling/v2 ones: minReplicas 1, a CPU
utilization target of 80% when no metric is given, and, once a behavior is given, the scaling
rules it leaves out (scale up by 4 pods or 100% per 15s, no window; scale down by 100% per 15s).
"""

from __future__ import annotations

import copy

from controlplane.apiserver.registry.conversion_autoscaling import DEFAULT_CPU_UTILIZATION
from controlplane.apiserver.registry.strategy import Object, Strategy

_SCALE_UP: Object = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
    {"type": "Pods", "value": 4, "periodSeconds": 15},
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
_SCALE_DOWN: Object = {"selectPolicy": "Max", "policies": [
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _default_rules(rules: object, defaults: Object) -> Object:
    """GenerateHPAScale{Up,Down}Rules: the given rules with their missing parts filled."""
    if not isinstance(rules, dict):
        return copy.deepcopy(defaults)
    filled = dict(rules)
    if filled.get("policies") is None:
        filled["policies"] = copy.deepcopy(defaults["policies"])
    if filled.get("selectPolicy") is None:
        filled["selectPolicy"] = defaults["selectPolicy"]
    if filled.get("stabilizationWindowSeconds") is None and (
            "stabilizationWindowSeconds" in defaults):
        filled["stabilizationWindowSeconds"] = defaults["stabilizationWindowSeconds"]
    return filled


class HorizontalPodAutoscalerStrategy(Strategy):
    def default(self, obj: Object) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec.get("minReplicas") is None:
            spec["minReplicas"] = 1
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            behavior["scaleUp"] = _default_rules(behavior.get("scaleUp"), _SCALE_UP)
            behavior["scaleDown"] = _default_rules(behavior.get("scaleDown"), _SCALE_DOWN)
