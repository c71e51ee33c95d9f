"""Object metadata helpers shared by every component: names, times, keys, owner references."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

Object = dict[str, Any]
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' utilrand alphabet


def now_rfc3339() -> str:
    """The current time as Kubernetes writes metav1.Time: seconds precision, UTC, `Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """Parse an RFC3339 time (`Z` or `+00:00`, with or without fractional seconds)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def generate_name(base: str) -> str:
    """`base` plus 5 random characters, as the apiserver completes metadata.generateName."""
    suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
    return (base[: 63 - 5] if len(base) > 58 else base) + suffix


def meta(obj: Object) -> dict[str, Any]:
    """The object's metadata dict, created if absent."""
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def namespaced_name(obj: Object) -> str:
    m = obj.get("metadata") or {}
    return f"{m['namespace']}/{m['name']}" if m.get("namespace") else str(m.get("name", ""))


def controller_of(obj: Object) -> dict[str, Any] | None:
    """The ownerReference with controller=true, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None
