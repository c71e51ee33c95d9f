"""Strategies of workload kinds: deployments, replica sets, daemon sets (apps/v1), jobs and
cron jobs (batch/v1). Defaults are Kubernetes' (RollingUpdate 25%/25%, revisionHistoryLimit 10,
progressDeadlineSeconds 600, backoffLimit 6, ...); selectors are immutable."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

    # spec.templateGeneration of the internal type, shown in apps/v1 as this annotation: 1 at
    # creation, one more whenever the template changes; clients cannot set it.
    TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"

    def prepare_for_create(self, obj: Object) -> None:
        super().prepare_for_create(obj)
        self._set_template_generation(obj, 1)

    def prepare_for_update(self, new: Object, old: Object) -> None:
        super().prepare_for_update(new, old)
        raw = ((old.get("metadata") or {}).get("annotations") or {}).get(
            self.TEMPLATE_GENERATION)
        generation = int(raw) if isinstance(raw, str) and raw.isdigit() else 0
        if (new.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
            generation += 1
        self._set_template_generation(new, generation)

    def _set_template_generation(self, obj: Object, generation: int) -> None:
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or generation <= 0:
            return
        annotations = meta.get("annotations")
        meta["annotations"] = dict(annotations if isinstance(annotations, dict) else {},
                                   **{self.TEMPLATE_GENERATION: str(generation)})


class JobStrategy(Strategy):
    selectable_fields = ("status.successful",)

    def default(self, obj: Object) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        _default_template(spec)
        if spec.get("parallelism") is None and spec.get("completions") is None:
            spec["completions"] = 1  # both unset: one pod; parallelism alone: a work queue
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")

    def prepare_for_create(self, obj: Object) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("manualSelector") is not True:
            _generate_job_selector(obj, spec)

    def validate(self, obj: Object) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = validate_selector_matches(obj)
        for name in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds",
                     "ttlSecondsAfterFinished"):
            value = spec.get(name)
            if value is not None and (not isinstance(value, int) or value < 0
                                      or (name == "activeDeadlineSeconds" and value == 0)):
                causes.append(validation.invalid(
                    f"spec.{name}", value, "must be greater than " + (
                        "0" if name == "activeDeadlineSeconds" else "or equal to 0")))
        if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
            causes.append(validation.required("spec.completions", "when completion mode is "
                                              "Indexed"))
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in (None, "OnFailure", "Never"):
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{policy}": '
                                'supported values: "OnFailure", "Never"',
                                "spec.template.spec.restartPolicy"))
        return causes

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        return self.validate(new) + immutable(new_spec.get("template"),
                                              old_spec.get("template"), "spec.template") + (
            immutable(new_spec.get("selector"), old_spec.get("selector"), "spec.selector"))


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
        causes = required(obj, "spec.schedule") + _validate_schedule(obj.get("spec") or {})
        job_spec = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        causes += pod_spec.validate_pod_spec((job_spec.get("template") or {}).get("spec"),
                                             "spec.jobTemplate.spec.template.spec")
        return causes


_JOB_LABELS = (("job-name", "batch.kubernetes.io/job-name", "name"),
               ("controller-uid", "batch.kubernetes.io/controller-uid", "uid"))
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                     "@hourly")


def _generate_job_selector(obj: Object, spec: Object) -> None:
    """As Kubernetes does without manualSelector: label the template with the Job's name and
    uid (current and legacy keys) and select the uid."""
    meta = obj.get("metadata") or {}
    template = spec.setdefault("template", {})
    if not isinstance(template, dict):
        return
    template_meta = template.setdefault("metadata", {})
    labels = template_meta.get("labels") or {}
    template_meta["labels"] = labels
    for legacy, current, field in _JOB_LABELS:
        for key in (legacy, current):
            labels.setdefault(key, str(meta.get(field, "")))
    given = spec.get("selector")
    selector: Object = given if isinstance(given, dict) else {}
    match = dict(selector.get("matchLabels") or {})
    match.setdefault("batch.kubernetes.io/controller-uid", str(meta.get("uid", "")))
    spec["selector"] = dict(selector, matchLabels=match)


def _validate_schedule(spec: Object) -> list[Cause]:
    """The checks Kubernetes makes of a CronJob's schedule and timeZone (the controller
    parses the fields themselves and reports a bad one as an event)."""
    causes: list[Cause] = []
    schedule = spec.get("schedule")
    if isinstance(schedule, str) and schedule:
        if "TZ" in schedule:
            causes.append(validation.invalid("spec.schedule", schedule, "cannot use TZ or "
                                             "CRON_TZ in schedule, use timeZone field instead"))
        elif not schedule.startswith(_CRON_DESCRIPTORS + ("@every ",)) and len(
                schedule.split()) != 5:
            causes.append(validation.invalid(
                "spec.schedule", schedule,
                f"expected exactly 5 fields, found {len(schedule.split())}: [{schedule}]"))
    zone = spec.get("timeZone")
    if zone is not None:
        if not isinstance(zone, str) or not zone:
            causes.append(validation.invalid("spec.timeZone", zone,
                                             "timeZone must be nil or non-empty string"))
        elif zone.lower() == "local":
            causes.append(validation.invalid(
                "spec.timeZone", zone, "timeZone must be an explicit time zone as defined in "
                "https://www.iana.org/time-zones"))
        else:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                causes.append(validation.invalid("spec.timeZone", zone,
                                                 f"unknown time zone {zone}"))
    return causes
