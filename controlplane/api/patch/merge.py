"""JSON merge patch (RFC 7386): the `application/merge-patch+json` PATCH body.

A patch object is merged key by key into the target: `null` deletes a key, objects merge
recursively and every other value (arrays included) replaces what was there. Used for custom
kinds, `kubectl label/annotate/scale` and whenever a client asks for merge-patch+json.
Inputs are never mutated; the result shares no containers with them.
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api.errors import BadRequest

# The text kube-apiserver answers (400) when the patch body is the JSON literal `null`.
INVALID_MERGE_PATCH = "Invalid JSON Patch"


def apply_merge_patch(original: Any, patch: Any) -> Any:
    """Return `original` with the RFC 7386 merge `patch` applied.

    A non-object patch replaces the whole document, as the RFC says; the caller then finds out
    that the result is not an object. A top-level `null` patch is refused with 400 BadRequest
    "Invalid JSON Patch", as kube-apiserver refuses it, rather than deleting the object.
    """
    if patch is None:
        raise BadRequest(INVALID_MERGE_PATCH)
    return _merge_into(copy.deepcopy(original), patch)


def _merge_into(target: Any, patch: Any) -> Any:
    """Merge `patch` into `target`, which the caller owns (a copy) and may be changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_into(result.get(key), value)
    return result
