"""The horizontalpodautoscalers printer: REFERENCE, TARGETS, MINPODS, MAXPODS, REPLICAS.

Owns formatHPAMetrics: each metric renders as "current/target" ("cpu: 40%/80%",
"1k/500 (avg)"), an unobserved current value reads "<unknown>", and more than two metrics end
in "+ N more...". autoscaling/v1 objects carry only targetCPUUtilizationPercentage; they are
read as the single CPU utilization metric kube-apiserver converts them to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    age,
    dig,
    items,
    mapping,
    name_of,
    number,
    text,
)

_MAX_SHOWN = 2
_KEYS = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}


def _quantity(value: object) -> str:
    return "<nil>" if value is None else str(value)


def _v1_metrics(spec: Obj, status: Obj) -> tuple[list[Obj], list[Obj]]:
    target = spec.get("targetCPUUtilizationPercentage")
    current = status.get("currentCPUUtilizationPercentage")
    if target is None:
        return [], []
    metric: dict[str, Any] = {"name": "cpu", "target": {"averageUtilization": target}}
    observed: list[Obj] = []
    if current is not None:
        observed = [{"type": "Resource", "resource": {"current": {"averageUtilization": current}}}]
    return [{"type": "Resource", "resource": metric}], observed


def _percent(value: object) -> str | None:
    return None if value is None else f"{number(value)}%"


def _value_metric(target: Obj, observed: Obj | None, current: Obj) -> str:
    """Object and External metrics: an average value, or a plain value."""
    if target.get("averageValue") is not None:
        average = current.get("averageValue")
        now = "<unknown>" if average is None else _quantity(average)
        return f"{now}/{_quantity(target.get('averageValue'))} (avg)"
    now = _quantity(current.get("value")) if observed is not None else "<unknown>"
    return f"{now}/{_quantity(target.get('value'))}"


def _resource_metric(target: Obj, observed: Obj | None, current: Obj) -> str:
    """Resource and ContainerResource metrics: an average value, or a utilization percentage."""
    if target.get("averageValue") is not None:
        now = _quantity(current.get("averageValue")) if observed is not None else "<unknown>"
        return f"{now}/{_quantity(target.get('averageValue'))}"
    now = _percent(current.get("averageUtilization")) or "<unknown>"
    return f"{now}/{_percent(target.get('averageUtilization')) or '<auto>'}"


def _format_metric(spec: Obj, status: Obj | None) -> str:
    kind = text(spec.get("type"))
    key = _KEYS.get(kind)
    if key is None:
        return "<unknown type>"
    source = mapping(spec.get(key))
    target = mapping(source.get("target"))
    raw = status.get(key) if status is not None else None
    observed = raw if isinstance(raw, Mapping) else None
    current = mapping(dig(observed, "current"))
    if kind == "Pods":
        now = _quantity(current.get("averageValue")) if observed is not None else "<unknown>"
        return f"{now}/{_quantity(target.get('averageValue'))}"
    if kind in ("Object", "External"):
        return _value_metric(target, observed, current)
    return f"{text(source.get('name'))}: {_resource_metric(target, observed, current)}"


def format_metrics(specs: list[Obj], statuses: list[Obj]) -> str:
    """Render an HPA's metrics as kubectl's TARGETS column."""
    if not specs:
        return "<none>"
    rendered = [
        _format_metric(spec, statuses[i] if i < len(statuses) else None)
        for i, spec in enumerate(specs)
    ]
    shown = ", ".join(rendered[:_MAX_SHOWN])
    if len(rendered) > _MAX_SHOWN:
        return f"{shown} + {len(rendered) - _MAX_SHOWN} more..."
    return shown


def _hpa_cells(hpa: Obj, ctx: PrintContext) -> list[Cell]:
    spec, status = mapping(hpa.get("spec")), mapping(hpa.get("status"))
    v1_shape = ctx.api_version == "v1" or "targetCPUUtilizationPercentage" in spec
    if v1_shape and "metrics" not in spec:
        metrics, observed = _v1_metrics(spec, status)
    else:
        metrics, observed = items(spec.get("metrics")), items(status.get("currentMetrics"))
    ref = mapping(spec.get("scaleTargetRef"))
    min_replicas = spec.get("minReplicas")
    return [
        name_of(hpa),
        f"{text(ref.get('kind'))}/{text(ref.get('name'))}",
        format_metrics(metrics, observed),
        "<unset>" if min_replicas is None else str(number(min_replicas)),
        number(spec.get("maxReplicas")),
        number(status.get("currentReplicas")),
        age(hpa, ctx),
    ]


PRINTERS = {
    ("autoscaling", "horizontalpodautoscalers"): Printer(
        (
            NAME,
            Column("Reference", description="The scale target, as Kind/name."),
            Column("Targets", description="Current and target value of each metric."),
            Column("MinPods", description="Lower limit for the number of replicas."),
            Column("MaxPods", description="Upper limit for the number of replicas."),
            Column("Replicas", description="Current number of replicas."),
            AGE,
        ),
        _hpa_cells,
    ),
}
