"""Pure Deployment arithmetic (Kubernetes' deployment/util): hashes, revisions, fenceposts.

- The pod-template-hash is FNV-1a (32 bits) of the template's canonical JSON, plus the
  collisionCount as 8 little-endian bytes when set, printed in decimal and mapped through
  Kubernetes' SafeEncodeString alphabet (so up to 10 characters of [bcdfghjklmnpqrstvwxz2-9]).
- Revisions live in annotations: `deployment.kubernetes.io/revision` on each ReplicaSet (the
  highest is the newest; a rollback re-stamps an old RS and remembers its former numbers in
  `revision-history`), `desired-replicas` and `max-replicas` record the Deployment's size when
  the RS was last scaled, for proportional scaling.
- maxSurge rounds up, maxUnavailable rounds down; both zero means one may be unavailable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

Object = dict[str, Any]
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SKIP_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                              MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand


class InvalidSpec(ValueError):
    """A spec the controller cannot act on (e.g. maxSurge "abc"); reported as an event."""


# -- the pod template hash --------------------------------------------------------------------


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def compute_hash(template: Object, collision_count: int | None) -> str:
    """The pod-template-hash of `template` (with the collisionCount folded in when set)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


def _pruned(value: Any) -> Any:
    """`value` without nulls and empty maps/lists (Go's semantic equality ignores them)."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def without_hash(template: Object) -> Object:
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels.pop(HASH_LABEL, None)
    pruned: Object = _pruned(dict(template, metadata=dict(template.get("metadata") or {},
                                                          labels=labels)))
    return pruned


def equal_ignore_hash(a: Object, b: Object) -> bool:
    """Whether two pod templates are equal once the pod-template-hash label is ignored."""
    return bool(without_hash(a) == without_hash(b))


# -- replica counts -----------------------------------------------------------------------------


def replicas(obj: Object | None) -> int:
    """spec.replicas (1 when unset, as the API defaults it)."""
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _status(rs: Object, name: str) -> int:
    return int((rs.get("status") or {}).get(name) or 0)


def spec_count(rses: Iterable[Object | None]) -> int:
    return sum(replicas(rs) for rs in rses if rs is not None)


def actual_count(rses: Iterable[Object | None]) -> int:
    return sum(_status(rs, "replicas") for rs in rses if rs is not None)


def ready_count(rses: Iterable[Object | None]) -> int:
    return sum(_status(rs, "readyReplicas") for rs in rses if rs is not None)


def available_count(rses: Iterable[Object | None]) -> int:
    return sum(_status(rs, "availableReplicas") for rs in rses if rs is not None)


def active(rses: Iterable[Object | None]) -> list[Object]:
    return [rs for rs in rses if rs is not None and replicas(rs) > 0]


# -- fenceposts ---------------------------------------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString (3 or "25%") against `total`; raise InvalidSpec for anything else."""
    if isinstance(value, bool):
        raise InvalidSpec(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            raise InvalidSpec(f"invalid value for IntOrString: invalid value {value!r}") from None
        scaled = percent * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    if value is None:
        return 0
    raise InvalidSpec(f"invalid value for IntOrString: invalid type: string is not a "
                      f"percentage: {value!r}")


def is_rolling(d: Object) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def fenceposts(d: Object) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas."""
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # otherwise the rollout could never progress
    return surge, unavailable


def max_surge(d: Object) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Object) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


def new_rs_new_replicas(d: Object, all_rses: Sequence[Object | None], new_rs: Object) -> int:
    """How many replicas the new RS may have now (RollingUpdate: within the surge)."""
    if not is_rolling(d):
        return replicas(d)
    surge = scaled_value(((d["spec"].get("strategy") or {}).get("rollingUpdate") or {}).get(
        "maxSurge", "25%"), replicas(d), True)
    current = spec_count(all_rses)
    max_total = replicas(d) + surge
    if current >= max_total:
        return replicas(new_rs)
    return replicas(new_rs) + min(max_total - current, replicas(d) - replicas(new_rs))


def is_saturated(d: Object, rs: Object | None) -> bool:
    """The RS has all of the Deployment's replicas, available, at the recorded size."""
    if rs is None:
        return False
    desired = annotation_int(rs, DESIRED_REPLICAS)
    return (replicas(rs) == replicas(d) and desired == replicas(d)
            and _status(rs, "availableReplicas") == replicas(d))


# -- annotations and revisions ------------------------------------------------------------------


def annotation_int(obj: Object, name: str) -> int | None:
    raw = (obj["metadata"].get("annotations") or {}).get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def revision(rs: Object) -> int:
    return annotation_int(rs, REVISION) or 0


def max_revision(rses: Iterable[Object]) -> int:
    return max((revision(rs) for rs in rses), default=0)


def set_replicas_annotations(rs: Object, desired: int, max_replicas: int) -> bool:
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for name, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if annotations.get(name) != value:
            annotations[name] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Object, desired: int, max_replicas: int) -> bool:
    annotations = rs["metadata"].get("annotations") or {}
    return (annotations.get(DESIRED_REPLICAS) != str(desired)
            or annotations.get(MAX_REPLICAS) != str(max_replicas))


def copy_annotations(d: Object, rs: Object) -> bool:
    """Copy the Deployment's own annotations onto the RS (not kubectl's or the revisions)."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for name, value in (d["metadata"].get("annotations") or {}).items():
        if name in SKIP_ANNOTATIONS or annotations.get(name) == value:
            continue
        annotations[name] = value
        changed = True
    return changed


def set_new_rs_annotations(d: Object, rs: Object, new_revision: int, exists: bool) -> bool:
    """Stamp the new RS: copied annotations, the new revision (keeping the former ones of a
    rolled-back RS in revision-history), and, on creation, the replicas annotations."""
    changed = copy_annotations(d, rs)
    annotations = rs["metadata"].setdefault("annotations", {})
    old_raw = annotations.get(REVISION)
    try:
        old = int(old_raw) if old_raw else 0
    except ValueError:
        return False
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old_raw:
            history = [h for h in (annotations.get(REVISION_HISTORY) or "").split(",") if h]
            history.append(old_raw)
            while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
            annotations[REVISION_HISTORY] = ",".join(history)
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


# -- finding the new and old ReplicaSets --------------------------------------------------------


def by_creation(rses: Iterable[Object], newest_first: bool = False) -> list[Object]:
    """Sorted by creationTimestamp, then name (ReplicaSetsByCreationTimestamp)."""
    return sorted(rses, key=lambda rs: (rs["metadata"].get("creationTimestamp") or "",
                                        rs["metadata"]["name"]), reverse=newest_first)


def find_new_rs(d: Object, rses: Iterable[Object]) -> Object | None:
    """The oldest RS whose template equals the Deployment's (ignoring the hash label)."""
    template = d["spec"].get("template") or {}
    for rs in by_creation(rses):
        if equal_ignore_hash(rs["spec"].get("template") or {}, template):
            return rs
    return None


def find_active_or_latest(new_rs: Object | None, old_rses: Sequence[Object]) -> Object | None:
    """The only active RS; else, with none active, the newest; else None."""
    if new_rs is None and not old_rses:
        return None
    olds = by_creation(old_rses, newest_first=True)
    running = active([*olds, new_rs])
    if not running:
        return new_rs if new_rs is not None else olds[0]
    return running[0] if len(running) == 1 else None
