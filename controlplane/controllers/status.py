"""Status helpers shared by controllers: conditions by type, and the /status merge patch.

Status is written as a JSON merge patch of the whole status through the status subresource, so
a write never conflicts with a spec change and never needs the cached resourceVersion. Zero
counts and empty lists are sent as null (removed), as Go's `omitempty` leaves them out, except
the fields a kind always shows (`always`).
"""

from __future__ import annotations

from typing import Any

Object = dict[str, Any]


def condition_of(conditions: list[Object], type_: str) -> Object | None:
    for cond in conditions:
        if cond.get("type") == type_:
            return cond
    return None


def conditions_set(conditions: list[Object], new: Object) -> list[Object]:
    """`conditions` with the one of `new`'s type replaced (or appended)."""
    out = [c for c in conditions if c.get("type") != new.get("type")]
    out.append(new)
    return out


def status_patch(status: Object, always: tuple[str, ...] = ()) -> Object:
    """The merge patch that makes an object's status exactly `status`."""
    return {"status": {k: (v if v not in (None, 0, [], {}) or k in always else None)
                       for k, v in status.items()}}
