"""Health checks and metrics: the pure decisions, the proxier's sync times, and the servers.

The decisions (is the proxy healthy, which port serves which Service, what it answers) are
plain functions; the servers are exercised on 127.0.0.1 with free ports, over a Proxier whose
kernel is a FakeIptables (no root).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest

from netproxy import healthcheck as hc
from netproxy.conntrack import FakeConntrack
from netproxy.fake_iptables import FakeIptables
from netproxy.main import parser
from netproxy.metrics import ProxyMetrics
from netproxy.model import Endpoint, ServicePortName
from netproxy.proxier import Proxier, ProxierConfig
from netproxy.routes import FakeNetlink
from pinnace.local.process import free_port


def lb(name: str, port: object = 30100, policy: str = "Local", kind: str = "LoadBalancer"
       ) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"type": kind, "clusterIP": "10.96.0.10", "externalTrafficPolicy": policy,
                     "healthCheckNodePort": port,
                     "ports": [{"port": 80, "nodePort": 30080}]}}


def slice_of(service: str, *endpoints: tuple[str, str, bool]) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": f"{service}-1",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}
                          for ip, node, ready in endpoints]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def proxier(clock: Clock | None = None) -> tuple[Proxier, FakeIptables]:
    ipt = FakeIptables()
    p = Proxier(ProxierConfig(node_name="node1", min_sync_period=0.0), ipt, FakeConntrack(),
                FakeNetlink(["192.168.1.5"]), clock=clock or Clock())
    return p, ipt


# -- decisions -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("0.0.0.0:10256", ("0.0.0.0", 10256)), ("127.0.0.1:0", ("127.0.0.1", 0)),
    (":10249", ("0.0.0.0", 10249)), ("[::]:10256", ("::", 10256)), ("", None), ("  ", None)])
def test_bind_addresses(text: str, expected: tuple[str, int] | None) -> None:
    assert hc.parse_bind_address(text) == expected


@pytest.mark.parametrize("text", ["10256", "host:", "1.2.3.4:99999", "1.2.3.4:x"])
def test_bad_bind_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid bind address"):
        hc.parse_bind_address(text)


def test_flags_and_their_kube_proxy_defaults() -> None:
    args = parser().parse_args(["--iptables-sync-period", "10s"])
    config = hc.config_of(args)
    assert (config.healthz, config.metrics) == (("0.0.0.0", 10256), ("127.0.0.1", 10249))
    assert config.health_timeout == 20.0
    args = parser().parse_args(["--healthz-bind-address", "", "--metrics-bind-address",
                                "0.0.0.0:9100"])
    assert (hc.config_of(args).healthz, hc.config_of(args).metrics) == (None, ("0.0.0.0", 9100))
    with pytest.raises(SystemExit):
        parser().parse_args(["--healthz-bind-address", "nonsense"])


def test_healthy_unless_a_sync_is_overdue() -> None:
    assert hc.proxy_healthy(100.0, None, 60.0)  # nothing owed
    assert hc.proxy_healthy(100.0, 41.0, 60.0)  # owed for 59 s
    assert not hc.proxy_healthy(100.0, 40.0, 60.0)  # owed for 60 s: overdue


def test_a_node_being_deleted_is_not_eligible() -> None:
    assert hc.node_eligible({"metadata": {"name": "n"}})
    assert hc.node_eligible(None)
    assert not hc.node_eligible({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})


def test_which_services_get_a_health_check_port() -> None:
    assert hc.health_check_node_port(lb("a")) == 30100
    assert hc.health_check_node_port(lb("a", policy="Cluster")) == 0
    assert hc.health_check_node_port(lb("a", kind="NodePort")) == 0
    for bad in (0, None, 70000, -1, "30100", True):
        assert hc.health_check_node_port(lb("a", port=bad)) == 0
    assert hc.health_check_node_port({}) == 0


def test_local_ready_endpoints_per_service() -> None:
    http, dns = ServicePortName("ns", "a", "http"), ServicePortName("ns", "a", "dns", "UDP")
    other = ServicePortName("ns", "b", "")
    endpoints = {
        http: (Endpoint("10.0.0.1", 80, "node1"), Endpoint("10.0.0.2", 80, "node1"),
               Endpoint("10.0.0.3", 80, "node1", ready=False), Endpoint("10.0.0.4", 80, "n2")),
        dns: (Endpoint("10.0.0.1", 53, "node1"),),
        other: (Endpoint("10.0.1.1", 80, "node2"),),
    }
    assert hc.local_ready_endpoints(endpoints, "node1") == {"ns/a": 2}
    assert hc.local_ready_endpoints(endpoints, "node2") == {"ns/b": 1}


def test_what_a_health_check_port_answers() -> None:
    body = {"service": {"namespace": "ns", "name": "a"}, "localEndpoints": 2,
            "serviceProxyHealthy": True}
    assert hc.service_health("ns/a", 2, True) == (200, body)
    assert hc.service_health("ns/a", 0, True)[0] == 503
    assert hc.service_health("ns/a", 2, False) == (503, {**body, "serviceProxyHealthy": False})


def test_one_port_one_service() -> None:
    assert hc.ports_to_serve({"ns/b": 30100, "ns/a": 30100, "ns/c": 30101}) == {
        30100: "ns/a", 30101: "ns/c"}


def test_times_print_as_go_does() -> None:
    assert hc.go_time(None) == "0001-01-01 00:00:00 +0000 UTC"
    assert hc.go_time(0.5) == "1970-01-01 00:00:00.500000 +0000 UTC"


# -- the proxier's sync times ----------------------------------------------------------------------

def times(p: Proxier) -> tuple[float | None, float | None]:
    return p.oldest_pending, p.last_synced


async def test_the_proxier_says_since_when_a_sync_is_owed() -> None:
    clock = Clock()
    p, ipt = proxier(clock)
    seen: list[tuple[bool, bool]] = []
    p.sync_observers.append(lambda seconds, full, ok: seen.append((full, ok)))
    assert times(p) == (None, None)
    p.set_synced()
    assert times(p) == (1000.0, None)
    clock.now = 1001.0
    p.on_service(None, lb("a"))  # a later change: the oldest stays
    assert times(p) == (1000.0, None)
    await p.sync()
    assert times(p) == (None, 1001.0) and seen == [(True, True)]
    clock.now = 1002.0
    p.on_endpointslice(None, slice_of("a", ("10.0.0.1", "node1", True)))
    ipt.fail_next = "iptables-restore: line 3 failed"
    clock.now = 1003.0
    await p.sync()
    assert times(p) == (1002.0, 1001.0)  # still owed since the change
    assert seen[-1] == (False, False)
    await p.sync()
    assert times(p) == (None, 1003.0)


async def test_a_failed_periodic_sync_is_owed_from_its_failure() -> None:
    clock = Clock()
    p, ipt = proxier(clock)
    p.set_synced()
    await p.sync()
    clock.now = 1100.0
    ipt.fail_next = "iptables-restore: line 1 failed"
    await p.sync()
    assert p.oldest_pending == 1100.0


def test_a_broken_observer_never_breaks_the_sync() -> None:
    p, _ = proxier()

    def broken(seconds: float, full: bool, ok: bool) -> None:
        raise RuntimeError("boom")

    p.sync_observers.append(broken)
    p._observe(0.0, True, True)


# -- servers ---------------------------------------------------------------------------------------

async def get(port: int, path: str = "/") -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}{path}") as response:
        text = await response.text()
        body = json.loads(text) if response.content_type == "application/json" else text
        return response.status, body, dict(response.headers)


async def test_healthz_and_livez() -> None:
    clock = Clock()
    p, _ = proxier(clock)
    metrics = ProxyMetrics(p)
    health = hc.ProxyHealth(p, "node1", 60.0, metrics.count_health)
    port = free_port()
    task = asyncio.create_task(hc.serve(health.app(), ("127.0.0.1", port), "healthz"))
    try:
        for _ in range(100):
            try:
                status, body, headers = await get(port, "/healthz")
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
        assert status == 200
        assert body["lastUpdated"] == "0001-01-01 00:00:00 +0000 UTC"
        assert body["nodeEligible"] is True and body["currentTime"].endswith("+0000 UTC")
        assert headers["X-Content-Type-Options"] == "nosniff"
        p.set_synced()  # owed from now
        clock.now += 60
        assert (await get(port, "/healthz"))[0] == 503
        assert (await get(port, "/livez"))[0] == 503
        await p.sync()
        status, body, _ = await get(port, "/healthz")
        assert status == 200 and body["lastUpdated"] != "0001-01-01 00:00:00 +0000 UTC"
        health.on_node({"metadata": {"name": "node1", "deletionTimestamp": "2024-01-01T00:00Z"}})
        health.on_node({"metadata": {"name": "other"}})  # not ours: ignored
        status, body, _ = await get(port, "/healthz")
        assert (status, body["nodeEligible"]) == (503, False)
        assert (await get(port, "/livez"))[0] == 200  # alive, only leaving
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    text = metrics.text().decode()
    assert 'kubeproxy_proxy_healthz_total{code="200"} 2.0' in text
    assert 'kubeproxy_proxy_healthz_total{code="503"} 2.0' in text
    assert 'kubeproxy_proxy_livez_total{code="200"} 1.0' in text


async def test_health_check_node_ports_follow_services_and_local_endpoints() -> None:
    p, _ = proxier()
    healthy = [True]
    servers = hc.ServiceHealthServers("node1", lambda: healthy[0], host="127.0.0.1")
    a, b = free_port(), free_port()
    servers.on_service(None, lb("a", port=a))
    servers.on_service(None, lb("b", port=b))
    servers.on_service(None, lb("c", policy="Cluster"))  # no health check port
    p.set_synced()
    p.on_service(None, lb("a", port=a))
    p.on_endpointslice(None, slice_of("a", ("10.0.0.1", "node1", True),
                                      ("10.0.0.2", "node2", True)))
    p.on_endpointslice(None, slice_of("b", ("10.0.0.3", "node2", True)))
    await p.sync()
    servers.sync_endpoints(p.endpoints)
    assert await servers.reconcile()
    assert servers.serving == {a: "ns/a", b: "ns/b"}
    try:
        status, body, headers = await get(a)
        assert (status, body) == (200, {"service": {"namespace": "ns", "name": "a"},
                                        "localEndpoints": 1, "serviceProxyHealthy": True})
        assert headers["X-Load-Balancing-Endpoint-Weight"] == "1"
        status, body, _ = await get(b, "/anything")
        assert (status, body["localEndpoints"]) == (503, 0)
        healthy[0] = False
        assert (await get(a))[0] == 503
        healthy[0] = True
        # The endpoint moves here; the Service a goes away: its port closes.
        p.on_endpointslice(None, slice_of("b", ("10.0.0.3", "node1", True)))
        await p.sync()
        servers.sync_endpoints(p.endpoints)
        servers.on_service(lb("a", port=a), None)
        assert await servers.reconcile()
        assert servers.serving == {b: "ns/b"}
        assert (await get(b))[0] == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(a)
    finally:
        await servers.close()
    assert servers.serving == {}


async def test_a_port_taken_by_someone_else_is_retried_not_fatal() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        servers = hc.ServiceHealthServers("node1", lambda: True, host="127.0.0.1")
        servers.on_service(None, lb("a", port=port))
        assert not await servers.reconcile()
        assert servers.serving == {}
    finally:
        taken.close()
    assert await servers.reconcile()
    assert servers.serving == {port: "ns/a"}
    await servers.close()


async def test_the_loop_reconciles_after_each_sync_and_closes_when_cancelled() -> None:
    servers = hc.ServiceHealthServers("node1", lambda: True, host="127.0.0.1")
    port = free_port()
    servers.on_service(None, lb("a", port=port))
    task = asyncio.create_task(servers.loop())
    servers.sync_endpoints({})
    for _ in range(100):
        if servers.serving:
            break
        await asyncio.sleep(0.01)
    assert servers.serving == {port: "ns/a"}
    assert (await get(port))[0] == 503
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert servers.serving == {}


async def test_metrics_time_every_sync() -> None:
    p, ipt = proxier()
    metrics = ProxyMetrics(p)
    p.sync_observers.append(metrics.observe_sync)
    p.set_synced()
    p.on_service(None, lb("a"))
    await p.sync()
    p.on_endpointslice(None, slice_of("a", ("10.0.0.1", "node1", True)))
    ipt.fail_next = "iptables-restore: line 1 failed"
    await p.sync()
    text = metrics.text().decode()
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count 2.0" in text
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.001"}' in text
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1.0" in text
    assert "kubeproxy_sync_partial_proxy_rules_duration_seconds_count 1.0" in text
    assert "kubeproxy_sync_proxy_rules_iptables_restore_failures_total 1.0" in text
    assert "pinnace_netproxy_service_ports 1.0" in text
    last = [line for line in text.splitlines()
            if line.startswith("kubeproxy_sync_proxy_rules_last_timestamp_seconds ")]
    assert float(last[0].split()[1]) > 1.7e9
