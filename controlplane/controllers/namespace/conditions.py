"""The status conditions of a Terminating namespace, worded as Kubernetes words them.

Each pass of the deleter collects what went wrong (discovery failures, deletion errors, what
remains and which finalizers hold it) and `ConditionUpdater.update` turns that into all five
deletion conditions: True with the reason and message of the trouble, or False with the "ok"
reason and message. A condition's lastTransitionTime moves only when its status does, so a pass
that finds the same state writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Object = dict[str, Any]

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GROUP_VERSION_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
CONDITION_TYPES = (DISCOVERY_FAILURE, GROUP_VERSION_PARSING_FAILURE, CONTENT_FAILURE,
                   CONTENT_REMAINING, FINALIZERS_REMAINING)

OK_MESSAGES = {
    DISCOVERY_FAILURE: "All resources successfully discovered",
    GROUP_VERSION_PARSING_FAILURE: "All legacy kube types successfully parsed",
    CONTENT_FAILURE: "All content successfully deleted, may be waiting on finalization",
    CONTENT_REMAINING: "All content successfully removed",
    FINALIZERS_REMAINING: "All content-preserving finalizers finished",
}
OK_REASONS = {
    DISCOVERY_FAILURE: "ResourcesDiscovered",
    GROUP_VERSION_PARSING_FAILURE: "ParsedGroupVersions",
    CONTENT_FAILURE: "ContentDeleted",
    CONTENT_REMAINING: "ContentRemoved",
    FINALIZERS_REMAINING: "ContentHasNoFinalizers",
}


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ConditionUpdater:
    """Collects one pass's findings, then merges them into a namespace's conditions."""

    now: datetime
    failing: dict[str, Object] = field(default_factory=dict)  # type -> True condition
    delete_errors: list[str] = field(default_factory=list)

    def _fail(self, type_: str, reason: str, message: str) -> None:
        self.failing[type_] = {"type": type_, "status": "True", "reason": reason,
                               "message": message, "lastTransitionTime": _rfc3339(self.now)}

    def discovery_failed(self, message: str, groups: int = 0) -> None:
        if groups:
            message = f"Discovery failed for some groups, {groups} failing: {message}"
        self._fail(DISCOVERY_FAILURE, "DiscoveryFailed", message)

    def delete_failed(self, error: str) -> None:
        self.delete_errors.append(error)

    def content_totals(self, remaining: dict[str, int], finalizers: dict[str, int]) -> None:
        """`remaining`: group-resource -> objects left; `finalizers`: finalizer -> objects."""
        left = sorted(f"{gr} has {n} resource instances" for gr, n in remaining.items() if n)
        if left:
            self._fail(CONTENT_REMAINING, "SomeResourcesRemain",
                       f"Some resources are remaining: {', '.join(left)}")
        held = sorted(f"{f} in {n} resource instances" for f, n in finalizers.items() if n)
        if held:
            self._fail(FINALIZERS_REMAINING, "SomeFinalizersRemain",
                       "Some content in the namespace has finalizers remaining: "
                       + ", ".join(held))

    def update(self, conditions: list[Object]) -> tuple[list[Object], bool]:
        """The conditions after this pass, and whether they differ from `conditions`."""
        if self.delete_errors:
            errors = self.delete_errors
            joined = errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"
            self._fail(CONTENT_FAILURE, "ContentDeletionFailed",
                       f"Failed to delete all resource types, {len(errors)} remaining: {joined}")
        result = [dict(c) for c in conditions]
        changed = False
        for type_ in CONDITION_TYPES:
            new = self.failing.get(type_) or {
                "type": type_, "status": "False", "reason": OK_REASONS[type_],
                "message": OK_MESSAGES[type_], "lastTransitionTime": _rfc3339(self.now)}
            index = next((i for i, c in enumerate(result) if c.get("type") == type_), None)
            if index is None:
                result.append(new)
                changed = True
                continue
            old = result[index]
            if all(old.get(k) == new[k] for k in ("status", "reason", "message")):
                continue
            if old.get("status") == new["status"] and old.get("lastTransitionTime"):
                new["lastTransitionTime"] = old["lastTransitionTime"]
            result[index] = new
            changed = True
        return result, changed
