"""The pure checks of the cluster gate: a node Ready by a fresh heartbeat, endpoints naming us."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pinnace.up.readiness import endpoints_name, node_ready


def node(status: str, heartbeat: str = "2026-01-02T03:04:05Z") -> dict[str, Any]:
    return {"status": {"conditions": [
        {"type": "MemoryPressure", "status": "False"},
        {"type": "Ready", "status": status, "lastHeartbeatTime": heartbeat}]}}


def test_node_ready_needs_ready_true() -> None:
    assert node_ready(node("True"))
    assert not node_ready(node("False"))
    assert not node_ready(node("Unknown"))
    assert not node_ready({"metadata": {"name": "x"}})


def test_a_heartbeat_from_before_this_run_does_not_count() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    assert node_ready(node("True", "2026-01-02T03:04:05Z"), since)  # same second
    assert node_ready(node("True", "2026-01-02T03:04:06Z"), since)
    assert not node_ready(node("True", "2026-01-02T03:04:04Z"), since)
    assert not node_ready(node("True", "garbage"), since)


def test_endpoints_must_name_the_advertised_address_and_port() -> None:
    endpoints = {"subsets": [{"addresses": [{"ip": "10.254.0.1"}],
                              "ports": [{"name": "https", "port": 6443}]}]}
    assert endpoints_name(endpoints, "10.254.0.1", 6443)
    assert not endpoints_name(endpoints, "10.254.0.1", 7443)
    assert not endpoints_name(endpoints, "127.0.0.1", 6443)
    assert not endpoints_name({}, "10.254.0.1", 6443)
