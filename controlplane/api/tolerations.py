"""Tolerations against taints, as Kubernetes' v1.Toleration.ToleratesTaint decides it.

A toleration with an empty key and operator Exists tolerates everything; an empty effect matches
every effect; an empty operator means Equal. Shared by the scheduler (filters and scores), the
node lifecycle controller (NoExecute evictions) and the DaemonSet controller (placement).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Object = dict[str, Any]


def tolerates(toleration: Object, taint: Object) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: Iterable[Object], taint: Object) -> bool:
    """Whether any of `tolerations` tolerates `taint`."""
    return any(tolerates(t, taint) for t in tolerations)
