"""Matching rules several plugins share: untolerated taints (the toleration rule itself is
controlplane.api.tolerations), node selector terms.

A node selector term is an AND of label expressions (In, NotIn, Exists, DoesNotExist, Gt, Lt)
and field expressions (metadata.name In/NotIn); an empty or malformed term matches no node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from controlplane.api.errors import APIError
from controlplane.api.selectors import Requirement, requirement
from controlplane.api.tolerations import tolerated

Object = dict[str, Any]
_LABEL_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!",
                    "Gt": "gt", "Lt": "lt"}


def first_untolerated(taints: Iterable[Object], tolerations: list[Object],
                      wanted: Callable[[Object], bool]) -> Object | None:
    """The first taint passing `wanted` no toleration tolerates (FindMatchingUntoleratedTaint)."""
    for taint in taints:
        if wanted(taint) and not tolerated(tolerations, taint):
            return taint
    return None


class NodeSelectorTerm:
    """One parsed v1.NodeSelectorTerm; `valid` is False when it could not be parsed."""

    def __init__(self, term: Object) -> None:
        self.labels: list[Requirement] = []
        self.fields: list[tuple[str, str, str]] = []  # (key, In|NotIn, value)
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        self.valid = bool(expressions or fields)
        try:
            for expr in expressions:
                operator = _LABEL_OPERATORS.get(str(expr.get("operator") or ""))
                if operator is None:
                    raise ValueError(expr.get("operator"))
                self.labels.append(requirement(str(expr.get("key") or ""), operator,
                                               [str(v) for v in expr.get("values") or []]))
            for expr in fields:
                values = expr.get("values") or []
                if expr.get("operator") not in ("In", "NotIn") or len(values) != 1:
                    raise ValueError(expr.get("operator"))
                self.fields.append((str(expr.get("key") or ""), str(expr["operator"]),
                                    str(values[0])))
        except (APIError, ValueError):
            self.valid = False

    def names(self) -> set[str] | None:
        """The node names this term pins (metadata.name In), intersected; None if it pins none."""
        found: set[str] | None = None
        for key, operator, value in self.fields:
            if key == "metadata.name" and operator == "In":
                found = {value} if found is None else found & {value}
        return found

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        if not self.valid:
            return False
        if not all(r.matches(labels) for r in self.labels):
            return False
        node_fields = {"metadata.name": name}
        for key, operator, value in self.fields:
            equal = node_fields.get(key, "") == value
            if equal != (operator == "In"):
                return False
        return True


class RequiredNodeAffinity:
    """A pod's nodeSelector AND its required node affinity (GetRequiredNodeAffinity)."""

    def __init__(self, spec: Object) -> None:
        self.selector: dict[str, str] = dict(spec.get("nodeSelector") or {})
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution"))
        self.terms: list[NodeSelectorTerm] | None = None
        if required is not None:
            self.terms = [NodeSelectorTerm(t) for t in required.get("nodeSelectorTerms") or []]

    @property
    def empty(self) -> bool:
        return not self.selector and self.terms is None

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.selector.items()):
            return False
        if self.terms is None:
            return True
        return any(term.matches(name, labels) for term in self.terms)
