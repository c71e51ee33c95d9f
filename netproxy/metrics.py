"""What netproxy's `/metrics` shows (`--metrics-bind-address`, default 127.0.0.1:10249).

kube-proxy's names where it has one: the sync duration histograms (all, full, partial; its
buckets, 1 ms doubling to ~16 s), the time of the last successful sync, failed restores and the
/healthz and /livez answers by code. Ours: the Service ports and endpoints the proxier holds.
Prometheus text format, from a registry of our own (never the process-global one).
"""

from __future__ import annotations

import time
from collections.abc import Sized
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))  # kube-proxy's ExponentialBuckets


class Proxied(Protocol):
    """What the gauges read from the proxier."""

    @property
    def services(self) -> Sized: ...
    @property
    def endpoints(self) -> Sized: ...


class ProxyMetrics:
    """The registry and its instruments; `observe_sync` is a proxier sync observer."""

    def __init__(self, proxier: Proxied | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds", buckets=SYNC_BUCKETS,
                              registry=r)
        self.full = Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds for full resyncs",
                              buckets=SYNC_BUCKETS, registry=r)
        self.partial = Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                 "SyncProxyRules latency in seconds for partial resyncs",
                                 buckets=SYNC_BUCKETS, registry=r)
        self.last = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                          "The last time proxy rules were successfully synced", registry=r)
        self.failures = Counter("kubeproxy_sync_proxy_rules_iptables_restore_failures",
                                "Cumulative proxy iptables restore failures", registry=r)
        self.health = Counter("kubeproxy_proxy_healthz", "Cumulative proxy healthz HTTP status",
                              ["code"], registry=r)
        self.live = Counter("kubeproxy_proxy_livez", "Cumulative proxy livez HTTP status",
                            ["code"], registry=r)
        if proxier is not None:
            Gauge("pinnace_netproxy_service_ports", "Service ports the proxier holds",
                  registry=r).set_function(lambda: float(len(proxier.services)))
            Gauge("pinnace_netproxy_endpoint_ports", "Service ports with endpoints",
                  registry=r).set_function(lambda: float(len(proxier.endpoints)))

    def __repr__(self) -> str:
        return f"<ProxyMetrics {len(list(self.registry.collect()))} metrics>"

    def observe_sync(self, seconds: float, full: bool, ok: bool) -> None:
        """A proxier sync observer: every attempt is timed, failures counted."""
        self.sync.observe(seconds)
        (self.full if full else self.partial).observe(seconds)
        if ok:
            self.last.set(time.time())
        else:
            self.failures.inc()

    def count_health(self, path: str, code: int) -> None:
        (self.live if path == "/livez" else self.health).labels(str(code)).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)

    async def serve_metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.text())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.serve_metrics)
        return app
