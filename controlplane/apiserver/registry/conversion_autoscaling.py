"""autoscaling/v1 HorizontalPodAutoscalers, stored as autoscaling/v2.

v1 knows one metric, targetCPUUtilizationPercentage (currentCPUUtilizationPercentage in status):
the Resource cpu metric with a Utilization target. Everything else v2 holds crosses v1 in
annotations, as Kubernetes' pkg/apis/autoscaling/v1 conversion carries it, so a v1 client that
reads, edits and writes an object back loses nothing:

    autoscaling.alpha.kubernetes.io/metrics          the other spec metrics, as v1 MetricSpecs
    autoscaling.alpha.kubernetes.io/current-metrics  status.currentMetrics, as v1 MetricStatuses
    autoscaling.alpha.kubernetes.io/conditions       status.conditions
    autoscaling.alpha.kubernetes.io/behavior         spec.behavior, in the Go field names of
                                                     Kubernetes' internal type (ScaleUp, ...)

Going in, an annotation that does not decode is ignored, as Kubernetes ignores it, and all four
are dropped; a v1 object with no metric at all gets the 80% CPU target v1 always implied.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from controlplane.apiserver import typecheck
from controlplane.apiserver.registry.conversion import Conversion, Object, go_json

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
ROUND_TRIP = (METRICS, BEHAVIOR, CURRENT_METRICS, CONDITIONS)
DEFAULT_CPU_UTILIZATION = 80
_REPLICAS = ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")


def _mapping(value: Any) -> Object:
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[Object]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _picked(source: Object, keys: tuple[str, ...]) -> Object:
    return {k: copy.deepcopy(source[k]) for k in keys if k in source}


def _put(out: Object, key: str, value: Any) -> None:
    if value is not None:
        out[key] = copy.deepcopy(value)


def _quantity(value: Any) -> Any:
    """A Go resource.Quantity that is not a pointer: absent reads as "0"."""
    return "0" if value is None else value


def _ref(ref: Any) -> Object:
    """CrossVersionObjectReference: the same fields in v1 and v2."""
    ref = _mapping(ref)
    out: Object = {"kind": ref.get("kind", ""), "name": ref.get("name", "")}
    if ref.get("apiVersion"):
        out["apiVersion"] = ref["apiVersion"]
    return out


def _identifier(name: Any, selector: Any) -> Object:
    out: Object = {"name": name if name is not None else ""}
    _put(out, "selector", selector)
    return out


def _is_cpu(metric: Object) -> bool:
    resource = _mapping(metric.get("resource"))
    return metric.get("type") == "Resource" and resource.get("name") == "cpu"


def _cpu_utilization(metric: Object, field: str) -> Any:
    """The averageUtilization of a cpu metric's `field` (target or current), else None."""
    if not _is_cpu(metric):
        return None
    return _mapping(metric["resource"].get(field)).get("averageUtilization")


def _cpu_metric(utilization: Any) -> Object:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": utilization}}}


# -- metrics, v2 -> v1 ------------------------------------------------------------------------


def _metric_spec_to_v1(metric: Object) -> Object:
    out: Object = {"type": metric.get("type", "")}
    if isinstance(source := metric.get("object"), dict):
        target, ident = _mapping(source.get("target")), _mapping(source.get("metric"))
        out["object"] = {"target": _ref(source.get("describedObject")),
                         "metricName": ident.get("name", ""),
                         "targetValue": _quantity(target.get("value"))}
        _put(out["object"], "selector", ident.get("selector"))
        _put(out["object"], "averageValue", target.get("averageValue"))
    if isinstance(source := metric.get("pods"), dict):
        target, ident = _mapping(source.get("target")), _mapping(source.get("metric"))
        out["pods"] = {"metricName": ident.get("name", ""),
                       "targetAverageValue": _quantity(target.get("averageValue"))}
        _put(out["pods"], "selector", ident.get("selector"))
    for key in ("resource", "containerResource"):
        if isinstance(source := metric.get(key), dict):
            target = _mapping(source.get("target"))
            out[key] = {"name": source.get("name", "")}
            _put(out[key], "targetAverageUtilization", target.get("averageUtilization"))
            _put(out[key], "targetAverageValue", target.get("averageValue"))
            if key == "containerResource":
                out[key]["container"] = source.get("container", "")
    if isinstance(source := metric.get("external"), dict):
        target, ident = _mapping(source.get("target")), _mapping(source.get("metric"))
        out["external"] = {"metricName": ident.get("name", "")}
        _put(out["external"], "metricSelector", ident.get("selector"))
        _put(out["external"], "targetValue", target.get("value"))
        _put(out["external"], "targetAverageValue", target.get("averageValue"))
    return out


def _metric_status_to_v1(metric: Object) -> Object:
    out: Object = {"type": metric.get("type", "")}
    if isinstance(source := metric.get("object"), dict):
        current, ident = _mapping(source.get("current")), _mapping(source.get("metric"))
        out["object"] = {"target": _ref(source.get("describedObject")),
                         "metricName": ident.get("name", ""),
                         "currentValue": _quantity(current.get("value"))}
        _put(out["object"], "selector", ident.get("selector"))
        _put(out["object"], "averageValue", current.get("averageValue"))
    if isinstance(source := metric.get("pods"), dict):
        current, ident = _mapping(source.get("current")), _mapping(source.get("metric"))
        out["pods"] = {"metricName": ident.get("name", ""),
                       "currentAverageValue": _quantity(current.get("averageValue"))}
        _put(out["pods"], "selector", ident.get("selector"))
    for key in ("resource", "containerResource"):
        if isinstance(source := metric.get(key), dict):
            current = _mapping(source.get("current"))
            out[key] = {"name": source.get("name", "")}
            _put(out[key], "currentAverageUtilization", current.get("averageUtilization"))
            out[key]["currentAverageValue"] = _quantity(current.get("averageValue"))
            if key == "containerResource":
                out[key]["container"] = source.get("container", "")
    if isinstance(source := metric.get("external"), dict):
        current, ident = _mapping(source.get("current")), _mapping(source.get("metric"))
        out["external"] = {"metricName": ident.get("name", "")}
        _put(out["external"], "metricSelector", ident.get("selector"))
        out["external"]["currentValue"] = _quantity(current.get("value"))
        _put(out["external"], "currentAverageValue", current.get("averageValue"))
    return out


# -- metrics, v1 -> v2 ------------------------------------------------------------------------


def _resource_target(source: Object) -> Object:
    utilization = source.get("targetAverageUtilization")
    target: Object = {"type": "AverageValue" if utilization is None else "Utilization"}
    _put(target, "averageValue", source.get("targetAverageValue"))
    _put(target, "averageUtilization", utilization)
    return target


def _metric_spec_to_v2(metric: Object) -> Object:
    out: Object = {"type": metric.get("type", "")}
    if isinstance(source := metric.get("object"), dict):
        target: Object = {"type": "Value" if source.get("averageValue") is None else
                          "AverageValue", "value": _quantity(source.get("targetValue"))}
        _put(target, "averageValue", source.get("averageValue"))
        out["object"] = {"describedObject": _ref(source.get("target")), "target": target,
                         "metric": _identifier(source.get("metricName"), source.get("selector"))}
    if isinstance(source := metric.get("pods"), dict):
        out["pods"] = {"metric": _identifier(source.get("metricName"), source.get("selector")),
                       "target": {"type": "AverageValue",
                                  "averageValue": _quantity(source.get("targetAverageValue"))}}
    for key in ("resource", "containerResource"):
        if isinstance(source := metric.get(key), dict):
            out[key] = {"name": source.get("name", ""), "target": _resource_target(source)}
            if key == "containerResource":
                out[key]["container"] = source.get("container", "")
    if isinstance(source := metric.get("external"), dict):
        value = source.get("targetValue")
        target = {"type": "AverageValue" if value is None else "Value"}
        _put(target, "value", value)
        _put(target, "averageValue", source.get("targetAverageValue"))
        out["external"] = {
            "metric": _identifier(source.get("metricName"), source.get("metricSelector")),
            "target": target}
    return out


def _metric_status_to_v2(metric: Object) -> Object:
    out: Object = {"type": metric.get("type", "")}
    if isinstance(source := metric.get("object"), dict):
        current: Object = {"value": _quantity(source.get("currentValue"))}
        _put(current, "averageValue", source.get("averageValue"))
        out["object"] = {"metric": _identifier(source.get("metricName"), source.get("selector")),
                         "current": current, "describedObject": _ref(source.get("target"))}
    if isinstance(source := metric.get("pods"), dict):
        out["pods"] = {"metric": _identifier(source.get("metricName"), source.get("selector")),
                       "current": {"averageValue": _quantity(source.get("currentAverageValue"))}}
    for key in ("resource", "containerResource"):
        if isinstance(source := metric.get(key), dict):
            current = {"averageValue": _quantity(source.get("currentAverageValue"))}
            _put(current, "averageUtilization", source.get("currentAverageUtilization"))
            out[key] = {"name": source.get("name", ""), "current": current}
            if key == "containerResource":
                out[key]["container"] = source.get("container", "")
    if isinstance(source := metric.get("external"), dict):
        current = {"value": _quantity(source.get("currentValue"))}
        _put(current, "averageValue", source.get("currentAverageValue"))
        out["external"] = {
            "metric": _identifier(source.get("metricName"), source.get("metricSelector")),
            "current": current}
    return out


def _annotated(text: Any, convert: Callable[[Object], Object],
               schema: str) -> list[Object] | None:
    """The v2 list an annotation holds (each item converted, then checked as Go would decode
    it as `schema`), or None when the annotation is absent or does not decode."""
    if not isinstance(text, str):
        return None
    try:
        items = json.loads(text)
    except ValueError:
        return None
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    converted = [convert(item) for item in items]
    if any(typecheck.decode_as(schema, item) for item in converted):
        return None
    return converted


# -- behavior: Kubernetes' internal HorizontalPodAutoscalerBehavior, Go field names ---------------

# (v2 name, Go field name, the JSON type Go decodes the field from)
_RULES = (("stabilizationWindowSeconds", "StabilizationWindowSeconds", int),
          ("selectPolicy", "SelectPolicy", str), ("policies", "Policies", list))
_POLICY = (("type", "Type", str), ("value", "Value", int), ("periodSeconds", "PeriodSeconds", int))
_BEHAVIOR = (("scaleUp", "ScaleUp", dict), ("scaleDown", "ScaleDown", dict))
_ZERO: dict[type, Any] = {str: "", int: 0}
Fields = tuple[tuple[str, str, type], ...]


class _Malformed(Exception):
    """The annotation does not decode into the internal type."""


def _rules_to_internal(rules: Any) -> Object | None:
    if not isinstance(rules, dict):
        return None
    out = {go: rules.get(name) for name, go, _ in _RULES}
    if out["Policies"] is not None:
        out["Policies"] = [{go: policy.get(name, _ZERO[kind]) for name, go, kind in _POLICY}
                           for policy in _objects(out["Policies"])]
    return out


def _go_fields(raw: Any, fields: Fields) -> Object:
    """A JSON object's non-null members by v2 name, each checked as Go decodes it; keys match
    the Go field names without regard to case, as encoding/json matches them."""
    if not isinstance(raw, dict):
        raise _Malformed
    names = {go.lower(): (name, kind) for name, go, kind in fields}
    out: Object = {}
    for key, value in raw.items():
        if key.lower() in names and value is not None:
            name, kind = names[key.lower()]
            if not isinstance(value, kind) or isinstance(value, bool) or (
                    isinstance(value, int) and not -2**31 <= value < 2**31):
                raise _Malformed
            out[name] = value
    return out


def _rules_from_internal(raw: Any) -> Object | None:
    if raw is None:
        return None
    rules = _go_fields(raw, _RULES)
    if "policies" in rules:
        rules["policies"] = [{name: policy.get(name, _ZERO[kind]) for name, _, kind in _POLICY}
                             for policy in (_go_fields(p, _POLICY) for p in rules["policies"])]
    return rules


def _behavior_from_internal(text: Any) -> Object | None:
    """spec.behavior from the annotation; None when absent, empty or malformed."""
    if not isinstance(text, str):
        return None
    try:
        raw = json.loads(text)
        if raw is None:
            return None
        fields = _go_fields(raw, _BEHAVIOR)
        behavior = {key: _rules_from_internal(fields.get(key)) for key in ("scaleUp", "scaleDown")}
    except (ValueError, _Malformed):
        return None
    return {k: v for k, v in behavior.items() if v is not None} or None


# -- the objects ------------------------------------------------------------------------------


def _metadata_without_round_trip(source: Any) -> Object:
    metadata: Object = copy.deepcopy(_mapping(source))
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict) and any(k in annotations for k in ROUND_TRIP):
        kept = {k: v for k, v in annotations.items() if k not in ROUND_TRIP}
        if kept:
            metadata["annotations"] = kept
        else:
            del metadata["annotations"]
    return metadata


def to_v1(hpa: Object) -> Object:
    """An autoscaling/v2 HorizontalPodAutoscaler as autoscaling/v1 serves it."""
    spec, status = _mapping(hpa.get("spec")), _mapping(hpa.get("status"))
    metrics, current = _objects(spec.get("metrics")), _objects(status.get("currentMetrics"))
    out: Object = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1",
                   "metadata": _metadata_without_round_trip(hpa.get("metadata"))}
    v1_spec = _picked(spec, ("scaleTargetRef", "minReplicas", "maxReplicas"))
    cpu = next((m for m in metrics if _is_cpu(m)), None)  # the first cpu metric decides
    if cpu is not None and _cpu_utilization(cpu, "target") is not None:
        v1_spec["targetCPUUtilizationPercentage"] = _cpu_utilization(cpu, "target")
    out["spec"] = v1_spec
    if "status" in hpa:
        v1_status = _picked(status, _REPLICAS)
        for metric in current:  # the last cpu utilization observed wins
            if _cpu_utilization(metric, "current") is not None:
                v1_status["currentCPUUtilizationPercentage"] = _cpu_utilization(metric, "current")
        out["status"] = v1_status
    annotations: dict[str, str] = {}
    others = [_metric_spec_to_v1(m) for m in metrics if _cpu_utilization(m, "target") is None]
    if others:
        annotations[METRICS] = go_json(others)
    if current:
        annotations[CURRENT_METRICS] = go_json([_metric_status_to_v1(m) for m in current])
    if conditions := _objects(status.get("conditions")):
        annotations[CONDITIONS] = go_json(conditions)
    if isinstance(spec.get("behavior"), dict):
        behavior = spec["behavior"]
        annotations[BEHAVIOR] = go_json({"ScaleUp": _rules_to_internal(behavior.get("scaleUp")),
                                         "ScaleDown": _rules_to_internal(
                                             behavior.get("scaleDown"))})
    if annotations:
        out["metadata"]["annotations"] = {**_mapping(out["metadata"].get("annotations")),
                                          **annotations}
    return out


def to_v2(hpa: Object) -> Object:
    """An autoscaling/v1 HorizontalPodAutoscaler as the autoscaling/v2 object it is stored as."""
    spec, status = _mapping(hpa.get("spec")), _mapping(hpa.get("status"))
    annotations = _mapping(_mapping(hpa.get("metadata")).get("annotations"))
    out: Object = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
                   "metadata": _metadata_without_round_trip(hpa.get("metadata"))}
    v2_spec = _picked(spec, ("scaleTargetRef", "minReplicas", "maxReplicas"))
    metrics = []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics = [_cpu_metric(spec["targetCPUUtilizationPercentage"])]
    others = _annotated(annotations.get(METRICS), _metric_spec_to_v2, "autoscalingv2.MetricSpec")
    if others is not None:
        metrics = others + metrics  # the cpu target goes last, as Kubernetes orders them
    v2_spec["metrics"] = metrics or [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    if (behavior := _behavior_from_internal(annotations.get(BEHAVIOR))) is not None:
        v2_spec["behavior"] = behavior
    out["spec"] = v2_spec
    v2_status = _picked(status, _REPLICAS)
    if status.get("currentCPUUtilizationPercentage") is not None:
        v2_status["currentMetrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization":
                                       status["currentCPUUtilizationPercentage"]}}}]
    current = _annotated(annotations.get(CURRENT_METRICS), _metric_status_to_v2,
                         "autoscalingv2.MetricStatus")
    if current is not None:  # more than the cpu percentage: it replaces that
        v2_status["currentMetrics"] = current
    conditions = _annotated(annotations.get(CONDITIONS), copy.deepcopy,
                            "autoscalingv2.HorizontalPodAutoscalerCondition")
    if conditions is not None:
        v2_status["conditions"] = conditions
    if "status" in hpa or v2_status:
        out["status"] = v2_status
    return out


HPA_V1 = Conversion("autoscaling", "v2", "HorizontalPodAutoscaler", to_storage=to_v2,
                    from_storage=to_v1)
