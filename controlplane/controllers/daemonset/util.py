"""Pure DaemonSet rules (Kubernetes' daemon/util and the predicates of daemon_controller.go).

- Where a DaemonSet's pod belongs: `should_run(node, ds)` -> (should run, should continue
  running), from the template's nodeName, nodeSelector and required node affinity, and the
  node's NoSchedule/NoExecute taints against the pod's tolerations plus the standard DaemonSet
  ones. A node whose taints only forbid a *new* pod (NoSchedule) keeps the pod it has.
- What the controller creates: the template with those tolerations and the labels
  controller-revision-hash and pod-template-generation, pinned to its node by a required node
  affinity `matchFields metadata.name In [node]` that the scheduler honours when it binds.
- Which pod counts as updated, the order pods are kept in, maxSurge/maxUnavailable (rounded up).
Nothing here does I/O.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

from controlplane.api.errors import APIError
from controlplane.api.selectors import Requirement, requirement
from controlplane.api.tolerations import tolerates
from controlplane.controllers.pods import created_at

Object = dict[str, Any]
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
NAME_FIELD = "metadata.name"
NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "NoExecute"
_LABEL_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!",
                    "Gt": "gt", "Lt": "lt"}


class InvalidSpec(ValueError):
    """A spec the controller cannot act on (e.g. maxUnavailable "abc"); reported as an event."""


# -- tolerations ------------------------------------------------------------------------------


def daemon_tolerations(host_network: bool) -> list[Object]:
    """The tolerations every DaemonSet pod gets (AddOrUpdateDaemonPodTolerations), in order."""
    out: list[Object] = [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": NO_EXECUTE},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": NO_EXECUTE},
    ]
    for condition in ("disk-pressure", "memory-pressure", "pid-pressure", "unschedulable"):
        out.append({"key": f"node.kubernetes.io/{condition}", "operator": "Exists",
                    "effect": NO_SCHEDULE})
    if host_network:
        out.append({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                    "effect": NO_SCHEDULE})
    return out


def _same_toleration(a: Object, b: Object) -> bool:
    """Toleration.MatchToleration: same key, operator, value and effect."""
    return all((a.get(f) or "") == (b.get(f) or "") for f in ("key", "operator", "value",
                                                              "effect"))


def add_daemon_tolerations(spec: Object) -> None:
    """Add (or replace, when only tolerationSeconds differs) the DaemonSet tolerations."""
    tolerations = [dict(t) for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    for wanted in daemon_tolerations(bool(spec.get("hostNetwork"))):
        for i, existing in enumerate(tolerations):
            if _same_toleration(existing, wanted):
                tolerations[i] = wanted
                break
        else:
            tolerations.append(wanted)
    spec["tolerations"] = tolerations


# -- node affinity ----------------------------------------------------------------------------


def _term_matches(term: Object, name: str, labels: dict[str, str]) -> bool:
    """One NodeSelectorTerm: all its expressions and fields hold; empty or malformed: no."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    try:
        reqs: list[Requirement] = []
        for expr in expressions:
            operator = _LABEL_OPERATORS.get(str(expr.get("operator") or ""))
            if operator is None:
                return False
            reqs.append(requirement(str(expr.get("key") or ""), operator,
                                    [str(v) for v in expr.get("values") or []]))
    except APIError:
        return False
    if not all(r.matches(labels) for r in reqs):
        return False
    for expr in fields:
        values = expr.get("values") or []
        if expr.get("key") != NAME_FIELD or len(values) != 1:
            return False
        if expr.get("operator") == "In" and name != values[0]:
            return False
        if expr.get("operator") == "NotIn" and name == values[0]:
            return False
        if expr.get("operator") not in ("In", "NotIn"):
            return False
    return True


def fits_node_affinity(spec: Object, node: Object) -> bool:
    """The pod spec's nodeSelector and required node affinity accept `node`."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(_term_matches(t, name, labels) for t in required.get("nodeSelectorTerms") or []
               if isinstance(t, dict))


def _untolerated(taints: Iterable[Object], tolerations: list[Object],
                 effects: tuple[str, ...]) -> Object | None:
    for taint in taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def should_run(node: Object, ds: Object) -> tuple[bool, bool]:
    """(a daemon pod should run on `node`, an existing one may continue running there)."""
    spec = copy.deepcopy(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    wanted_node = spec.get("nodeName")
    if wanted_node and wanted_node != node["metadata"]["name"]:
        return False, False
    if not fits_node_affinity(spec, node):
        return False, False
    add_daemon_tolerations(spec)
    taints = (node.get("spec") or {}).get("taints") or []
    if _untolerated(taints, spec["tolerations"], (NO_SCHEDULE, NO_EXECUTE)) is None:
        return True, True
    return False, _untolerated(taints, spec["tolerations"], (NO_EXECUTE,)) is None


# -- what the controller creates --------------------------------------------------------------


def template_generation(ds: Object) -> int | None:
    """The template generation the apiserver records on the DaemonSet (None when absent)."""
    raw = (ds["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def pod_template(ds: Object, hash_: str) -> Object:
    """The template pods are made from: tolerations, generation and revision labels added."""
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    spec = template.setdefault("spec", {})
    add_daemon_tolerations(spec)
    meta = template.setdefault("metadata", {})
    labels = dict(meta.get("labels") or {})
    generation = template_generation(ds)
    if generation is not None:
        labels[GENERATION_LABEL] = str(generation)
    if hash_:
        labels[HASH_LABEL] = hash_
    meta["labels"] = labels
    return template


def pin_to_node(spec: Object, node_name: str) -> None:
    """Replace the required node affinity with `metadata.name In [node_name]` (in place)."""
    term = {"matchFields": [{"key": NAME_FIELD, "operator": "In", "values": [node_name]}]}
    affinity = spec.get("affinity") or {}
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [term]}
    spec["affinity"] = dict(affinity, nodeAffinity=node_affinity)


def target_node(pod: Object) -> str | None:
    """The node a daemon pod is for: its nodeName, else the node its affinity pins."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchFields") or []:
            if expr.get("key") == NAME_FIELD and expr.get("operator") == "In":
                values = expr.get("values") or []
                return str(values[0]) if len(values) == 1 else None
    return None


def is_updated(pod: Object, hash_: str, generation: int | None) -> bool:
    """The pod carries the current revision's hash (or template generation)."""
    labels = pod["metadata"].get("labels") or {}
    if generation is not None and labels.get(GENERATION_LABEL) == str(generation):
        return True
    return bool(hash_) and labels.get(HASH_LABEL) == hash_


def by_age(pods: Iterable[Object]) -> list[Object]:
    """Scheduled pods first, then oldest first, then by name (podByCreationTimestampAndPhase)."""
    return sorted(pods, key=lambda p: (0 if (p.get("spec") or {}).get("nodeName") else 1,
                                       created_at(p), p["metadata"]["name"]))


def is_terminal(pod: Object) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# -- rolling update bounds --------------------------------------------------------------------


def _scaled(value: Any, total: int) -> int:
    """An IntOrString against `total`, percentages rounded up."""
    if isinstance(value, bool):
        raise InvalidSpec(f"invalid value for IntOrString: {value!r}")
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            return math.ceil(int(value[:-1]) * total / 100)
        except ValueError:
            pass
    raise InvalidSpec(f"invalid value for IntOrString: invalid value {value!r}")


def is_rolling(ds: Object) -> bool:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    return (strategy.get("type") or "RollingUpdate") == "RollingUpdate"


def surge_and_unavailable(ds: Object, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) against the desired count; neither set means 1 unavailable."""
    if not is_rolling(ds):
        return 0, 0
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge"), desired)
    unavailable = _scaled(rolling.get("maxUnavailable", 1), desired)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def allows_surge(ds: Object) -> bool:
    """maxSurge is set and not zero (a percentage counts against one node)."""
    try:
        return surge_and_unavailable(ds, 1)[0] > 0
    except InvalidSpec:
        return False

