"""Parsing Services: what is proxied, and what is skipped (with a warning naming it)."""

from __future__ import annotations

from typing import Any

import pytest

from netproxy.model import parse_service, parse_slice


def svc(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "s"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}], **spec}}


def test_headless_and_external_name_services_have_no_rules() -> None:
    assert parse_service(svc(clusterIP="None")) == []
    assert parse_service(svc(type="ExternalName", clusterIP="")) == []


def test_bad_fields_skip_only_what_is_bad(caplog: pytest.LogCaptureFixture) -> None:
    ports = [{"name": "a", "port": 0}, {"name": "b", "port": 80, "protocol": "ICMP"},
             {"name": "c", "port": 81, "nodePort": 70000}, {"name": "d", "port": 82},
             "junk"]
    parsed = parse_service(svc(ports=ports, externalIPs=["1.2.3.4", "nope", "1.2.3.4"]))
    assert [(p.name.port, p.port, p.external_ips) for p in parsed] == [("d", 82,
                                                                        ("1.2.3.4",))]
    assert "service ns/s port 'a'" in caplog.text and "protocol ICMP" in caplog.text
    assert "externalIP 'nope'" in caplog.text
    assert parse_service(svc(clusterIP="10.96.0.300")) == []
    assert parse_service(svc(clusterIP="fd00::10")) == []  # IPv6: not yet, and quietly


def test_kernel_protocols_limit_what_is_proxied() -> None:
    sctp = svc(ports=[{"port": 80, "protocol": "SCTP"}])
    assert parse_service(sctp, protocols=("TCP", "UDP")) == []
    assert parse_service(sctp)[0].protocol == "SCTP"


def test_session_affinity_timeouts() -> None:
    assert parse_service(svc(sessionAffinity="ClientIP"))[0].sticky_seconds == 10800
    custom = {"clientIP": {"timeoutSeconds": 60}}
    assert parse_service(svc(sessionAffinity="ClientIP", sessionAffinityConfig=custom)
                         )[0].sticky_seconds == 60
    assert parse_service(svc())[0].sticky_seconds == 0


def test_load_balancer_ingress_and_traffic_policies() -> None:
    obj = svc(type="LoadBalancer", externalTrafficPolicy="Local",
              ports=[{"port": 80, "nodePort": 30080}], loadBalancerSourceRanges=["10.1.0.0/16"])
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"},
                                                  {"ip": "5.6.7.9", "ipMode": "Proxy"},
                                                  {"hostname": "lb.example"}]}}
    (port,) = parse_service(obj)
    assert port.load_balancer_ips == ("5.6.7.8",) and port.external_local
    assert port.load_balancer_source_ranges == ("10.1.0.0/16",)
    # externalTrafficPolicy only matters for externally reachable ports
    assert not parse_service(svc(externalTrafficPolicy="Local"))[0].external_local


def test_slice_conditions_default_as_kubernetes_does() -> None:
    parsed = parse_slice({
        "metadata": {"namespace": "ns", "name": "x",
                     "labels": {"kubernetes.io/service-name": "s"}},
        "ports": [{"port": 80}],
        "endpoints": [{"addresses": ["10.0.0.1"]},
                      {"addresses": ["10.0.0.2"], "conditions": {"ready": False,
                                                                 "serving": True,
                                                                 "terminating": True}}]})
    assert parsed is not None
    first, second = parsed.endpoints
    assert (first.ready, first.serving, first.terminating) == (True, True, False)
    assert (second.ready, second.serving, second.terminating) == (False, True, True)
