"""Strategies of workload kinds: deployments, replica sets, daemon sets (apps/v1), jobs and
cron jobs (batch/v1). Defaults are Kubernetes' (RollingUpdate 25%/25%, revisionHistoryLimit 10,
progressDeadlineSeconds 600, backoffLimit 6, ...); selectors are immutable."""

from __future__ import annotations

from typing import Any

from controlplane.api import validation
from controlplane.api.errors import FIELD_INVALID, BadRequest, Cause
from controlplane.api.selectors import LabelSelector
from controlplane.api.validation import go_quote
from controlplane.apiserver.registry import pod_spec
from controlplane.apiserver.registry.strategy import Object, Strategy, immutable, required


def _default_template(spec: Object) -> None:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_spec.default_pod_spec(template["spec"])
        template.setdefault("metadata", {})


def validate_selector_matches(obj: Object, *, template_path: str = "spec.template") -> list[Cause]:
    """The selector is required, its labels valid, and it must match the template's labels.

    As in Kubernetes, a missing selector matches nothing, so the template's labels are reported
    too; an empty one ({}) matches everything.
    """
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    labels: dict[str, Any] = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    causes = required(obj, "spec.selector")
    match_labels = (selector.get("matchLabels") or {}) if isinstance(selector, dict) else {}
    label_causes = validation.validate_labels(match_labels, "spec.selector.matchLabels")
    label_causes += validation.validate_labels(labels, f"{template_path}.metadata.labels")
    causes += label_causes
    if not label_causes:
        try:
            chosen = LabelSelector.from_object(selector if isinstance(selector, dict) else None)
        except BadRequest:
            causes.append(validation.invalid("spec.selector", selector,
                                             "invalid label selector"))
        else:
            if not chosen.is_empty() and not chosen.matches(labels):
                causes.append(Cause(FIELD_INVALID, f"Invalid value: {_labels(labels)}: "
                                    "`selector` does not match template `labels`",
                                    f"{template_path}.metadata.labels"))
    causes += pod_spec.validate_pod_spec(template.get("spec"), f"{template_path}.spec")
    return causes


def _labels(labels: dict[str, Any]) -> str:
    """Go's %#v of a map[string]string, as field errors print it."""
    if not labels:
        return "map[string]string(nil)"
    inner = ", ".join(f"{go_quote(k)}:{go_quote(str(v))}" for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


class WorkloadStrategy(Strategy):
    """Shared by the kinds with `spec.selector` + `spec.template`."""

    def default(self, obj: Object) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            _default_template(spec)

    def validate(self, obj: Object) -> list[Cause]:
        causes = validate_selector_matches(obj)
        replicas = (obj.get("spec") or {}).get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            causes.append(Cause(FIELD_INVALID, f"Invalid value: {replicas}: must be greater "
                                "than or equal to 0", "spec.replicas"))
        return causes

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        return self.validate(new) + immutable((new.get("spec") or {}).get("selector"),
                                              (old.get("spec") or {}).get("selector"),
                                              "spec.selector")


class DeploymentStrategy(WorkloadStrategy):
    def default(self, obj: Object) -> None:
        super().default(obj)
        spec = obj["spec"]
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)


class ReplicaSetStrategy(WorkloadStrategy):
    def default(self, obj: Object) -> None:
        super().default(obj)
        obj["spec"].setdefault("replicas", 1)

    def initial_status(self, obj: Object) -> Object:
        return {"replicas": 0}


class DaemonSetStrategy(WorkloadStrategy):
    def default(self, obj: Object) -> None:
        super().default(obj)
        spec = obj["spec"]
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)

    def initial_status(self, obj: Object) -> Object:
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                "desiredNumberScheduled": 0, "numberReady": 0}


class JobStrategy(Strategy):
    selectable_fields = ("status.successful",)

    def default(self, obj: Object) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        _default_template(spec)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)

    def validate(self, obj: Object) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = pod_spec.validate_pod_spec((spec.get("template") or {}).get("spec"),
                                            "spec.template.spec")
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in (None, "OnFailure", "Never"):
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{policy}": '
                                'supported values: "OnFailure", "Never"',
                                "spec.template.spec.restartPolicy"))
        return causes

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        return self.validate(new) + immutable((new.get("spec") or {}).get("template"),
                                              (old.get("spec") or {}).get("template"),
                                              "spec.template")


class CronJobStrategy(Strategy):
    def default(self, obj: Object) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(job_spec, dict):
            _default_template(job_spec)
            job_spec.setdefault("backoffLimit", 6)

    def validate(self, obj: Object) -> list[Cause]:
        causes = required(obj, "spec.schedule")
        job_spec = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        causes += pod_spec.validate_pod_spec((job_spec.get("template") or {}).get("spec"),
                                             "spec.jobTemplate.spec.template.spec")
        return causes
