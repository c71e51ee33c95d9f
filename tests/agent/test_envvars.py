from __future__ import annotations

import base64
from typing import Any

import pytest

from agent.envvars import ConfigError, expand, mapping_for, resolve_env, service_env

Object = dict[str, Any]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIGMAPS: dict[tuple[str, str], Object] = {
    ("ns", "cfg"): {"data": {"A": "a", "B": "b", "1bad": "x", "dotted.key": "d"}},
    ("ns", "other"): {"data": {"A": "other-a"}},
    ("ns", "raw"): {"data": {"K": "$(A)"}},
}
SECRETS: dict[tuple[str, str], Object] = {
    ("ns", "sec"): {"data": {"PASSWORD": b64("s3cret"), "TOKEN": b64("t")}},
}


def pod(**spec: Any) -> Object:
    return {
        "metadata": {"name": "web-0", "namespace": "ns", "uid": "uid-1",
                     "labels": {"app": "web", "tier": "front"},
                     "annotations": {"note": 'say "hi"\n'}},
        "spec": {"nodeName": "n1", "serviceAccountName": "builder", **spec},
    }


def service(name: str, namespace: str = "ns", ip: str = "10.96.0.10",
            ports: list[Object] | None = None) -> Object:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": ports or [{"port": 80}]}}


def resolve(container: Object, the_pod: Object | None = None, *,
            services: list[Object] | None = None, warn: Any = None,
            allocatable: Object | None = None) -> list[tuple[str, str]]:
    return resolve_env(
        the_pod or pod(), container,
        configmap=lambda ns, name: CONFIGMAPS.get((ns, name)),
        secret=lambda ns, name: SECRETS.get((ns, name)),
        services=services or [], node_name="n1", host_ip="192.168.1.5", pod_ip="10.244.1.7",
        pod_ips=["10.244.1.7", "fd00::7"], node_allocatable=allocatable or {}, warn=warn)


def env_of(container: Object, **kwargs: Any) -> dict[str, str]:
    return dict(resolve(container, **kwargs))


# -- services ------------------------------------------------------------------------------------


def test_service_links_are_the_docker_link_variables() -> None:
    svc = service("my-db", ports=[{"name": "sql", "port": 5432},
                                  {"name": "metrics", "port": 9187, "protocol": "UDP"}])
    assert service_env([svc], "ns", enable_service_links=True) == {
        "MY_DB_SERVICE_HOST": "10.96.0.10",
        "MY_DB_SERVICE_PORT": "5432",
        "MY_DB_SERVICE_PORT_SQL": "5432",
        "MY_DB_SERVICE_PORT_METRICS": "9187",
        "MY_DB_PORT": "tcp://10.96.0.10:5432",
        "MY_DB_PORT_5432_TCP": "tcp://10.96.0.10:5432",
        "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432",
        "MY_DB_PORT_5432_TCP_ADDR": "10.96.0.10",
        "MY_DB_PORT_9187_UDP": "udp://10.96.0.10:9187",
        "MY_DB_PORT_9187_UDP_PROTO": "udp",
        "MY_DB_PORT_9187_UDP_PORT": "9187",
        "MY_DB_PORT_9187_UDP_ADDR": "10.96.0.10",
    }


def test_service_selection_headless_other_namespaces_and_the_master_service() -> None:
    services = [service("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443}]),
                service("headless", ip="None"), service("unset", ip=""),
                service("elsewhere", "other"), service("3rd-party.io")]
    linked = service_env(services, "ns", enable_service_links=True)
    assert linked["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert linked["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert linked["_3RD_PARTY_IO_SERVICE_HOST"] == "10.96.0.10"
    assert not any(k.startswith(("HEADLESS", "UNSET", "ELSEWHERE")) for k in linked)
    unlinked = service_env(services, "ns", enable_service_links=False)
    assert {k.split("_")[0] for k in unlinked} == {"KUBERNETES"}


def test_a_namespace_service_named_kubernetes_wins_over_the_master_one() -> None:
    services = [service("kubernetes", "default", "10.96.0.1"), service("kubernetes", ip="10.9.9.9")]
    assert service_env(services, "ns", enable_service_links=True)[
        "KUBERNETES_SERVICE_HOST"] == "10.9.9.9"


def test_ipv6_cluster_ips_are_bracketed_in_urls() -> None:
    env = service_env([service("v6", ip="fd00::10")], "ns", enable_service_links=True)
    assert env["V6_PORT"] == "tcp://[fd00::10]:80"
    assert env["V6_PORT_80_TCP_ADDR"] == "fd00::10"


def test_enable_service_links_false_drops_the_pods_namespace_services() -> None:
    env = env_of({"name": "c"}, the_pod=pod(enableServiceLinks=False),
                 services=[service("db")])
    assert env == {}


# -- order and expansion -------------------------------------------------------------------------


def test_order_is_services_then_env_from_then_env_and_later_definitions_win() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}},
                    {"prefix": "S_", "secretRef": {"name": "sec"}},
                    {"configMapRef": {"name": "other"}}],
        "env": [{"name": "Z", "value": "z"}, {"name": "DB_SERVICE_HOST", "value": "override"},
                {"name": "B", "value": "env-b"}],
    }
    result = resolve(container, services=[service("db")])
    names = [name for name, _ in result]
    assert names[:2] == ["DB_SERVICE_HOST", "DB_SERVICE_PORT"]
    assert names.index("DB_PORT_80_TCP_ADDR") < names.index("A") < names.index("S_PASSWORD")
    assert names[-1] == "Z"
    env = dict(result)
    assert env["DB_SERVICE_HOST"] == "override"
    assert (env["A"], env["B"]) == ("other-a", "env-b")
    assert (env["S_PASSWORD"], env["S_TOKEN"]) == ("s3cret", "t")
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)-$(B)", "a-b"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$a"),
    ("$(MISSING)", "$(MISSING)"),
    ("$(A", "$(A"),
    ("cost: 5$", "cost: 5$"),
    ("$A $", "$A $"),
    ("$()", "$()"),
    ("x$(A)y$(A)z", "xayaz"),
], ids=["refs", "escaped", "escape-then-ref", "unknown", "unterminated", "trailing", "bare",
        "empty-name", "repeated"])
def test_expansion_follows_kubernetes(text: str, expected: str) -> None:
    assert expand(text, mapping_for({"A": "a", "B": "b"})) == expected


def test_values_expand_against_earlier_vars_only_and_value_from_is_literal() -> None:
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [
        {"name": "FIRST", "value": "$(A)/$(LATER)/$(DB_SERVICE_HOST)"},
        {"name": "LATER", "value": "later"},
        {"name": "SECOND", "value": "$(FIRST)+$(LATER)"},
        {"name": "RAW", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}},
        {"name": "EMPTY", "value": ""},
    ]}
    env = env_of(container, services=[service("db")])
    assert env["FIRST"] == "a/$(LATER)/10.96.0.10"
    assert env["SECOND"] == "a/$(LATER)/10.96.0.10+later"
    assert env["RAW"] == "b"
    assert env["EMPTY"] == ""
    literal = env_of({"name": "c", "env": [
        {"name": "V", "valueFrom": {"configMapKeyRef": {"name": "raw", "key": "K"}}}]})
    assert literal["V"] == "$(A)"


# -- envFrom -------------------------------------------------------------------------------------


def test_env_from_skips_invalid_names_and_reports_them() -> None:
    warnings: list[tuple[str, str]] = []
    env = env_of({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]},
                 warn=lambda reason, message: warnings.append((reason, message)))
    assert "1bad" not in env and env["dotted.key"] == "d"
    assert warnings == [("InvalidEnvironmentVariableNames",
                         "Keys [1bad] from the EnvFrom configMap ns/cfg were skipped since they "
                         "are considered invalid environment variable names.")]
    prefixed = env_of({"name": "c", "envFrom": [{"prefix": "P_", "configMapRef": {"name": "cfg"}}]})
    assert prefixed["P_1bad"] == "x"


def test_env_from_missing_sources() -> None:
    optional = {"name": "c", "envFrom": [{"configMapRef": {"name": "nope", "optional": True}},
                                         {"secretRef": {"name": "nope", "optional": True}}]}
    assert env_of(optional) == {}
    with pytest.raises(ConfigError, match='^configmap "nope" not found$'):
        resolve({"name": "c", "envFrom": [{"configMapRef": {"name": "nope"}}]})
    with pytest.raises(ConfigError, match='^secret "nope" not found$'):
        resolve({"name": "c", "envFrom": [{"secretRef": {"name": "nope"}}]})


# -- key refs ------------------------------------------------------------------------------------


def key_ref(kind: str, name: str, key: str, optional: bool | None = None) -> Object:
    ref: Object = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"name": "V", "valueFrom": {kind: ref}}


def test_key_refs_resolve_and_secrets_are_decoded() -> None:
    env = env_of({"name": "c", "env": [key_ref("configMapKeyRef", "cfg", "A"),
                                       key_ref("secretKeyRef", "sec", "PASSWORD") | {"name": "P"}]})
    assert env == {"V": "a", "P": "s3cret"}


@pytest.mark.parametrize(("var", "message"), [
    (key_ref("configMapKeyRef", "cfg", "k"), "couldn't find key k in ConfigMap ns/cfg"),
    (key_ref("secretKeyRef", "sec", "k"), "couldn't find key k in Secret ns/sec"),
    (key_ref("configMapKeyRef", "x", "k"), 'configmap "x" not found'),
    (key_ref("secretKeyRef", "s", "k"), 'secret "s" not found'),
], ids=["configmap-key", "secret-key", "configmap", "secret"])
def test_key_ref_errors_carry_kubernetes_messages(var: Object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"name": "c", "env": [var]})
    assert str(info.value) == message


def test_optional_key_refs_leave_the_variable_unset() -> None:
    env = env_of({"name": "c", "env": [
        {"name": "KEEP", "value": "1"},
        key_ref("configMapKeyRef", "cfg", "missing", True),
        key_ref("secretKeyRef", "nope", "k", True) | {"name": "W"},
    ]})
    assert env == {"KEEP": "1"}


def test_each_source_is_looked_up_once() -> None:
    calls: list[str] = []

    def configmap(ns: str, name: str) -> Object | None:
        calls.append(name)
        return CONFIGMAPS.get((ns, name))

    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}],
                 "env": [key_ref("configMapKeyRef", "cfg", "A"),
                         key_ref("configMapKeyRef", "cfg", "B") | {"name": "W"}]}
    resolve_env(pod(), container, configmap=configmap, secret=lambda ns, n: None, services=[],
                node_name="n1", host_ip="", pod_ip="", pod_ips=[])
    assert calls == ["cfg"]


# -- downward API --------------------------------------------------------------------------------


def field(name: str, path: str) -> Object:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def test_field_refs() -> None:
    env = env_of({"name": "c", "env": [
        field("NAME", "metadata.name"), field("NS", "metadata.namespace"),
        field("UID", "metadata.uid"), field("APP", "metadata.labels['app']"),
        field("NONE", "metadata.labels['missing']"), field("NOTE", "metadata.annotations['note']"),
        field("LABELS", "metadata.labels"), field("ANNOTATIONS", "metadata.annotations"),
        field("NODE", "spec.nodeName"), field("SA", "spec.serviceAccountName"),
        field("HOST_IP", "status.hostIP"), field("HOST_IPS", "status.hostIPs"),
        field("POD_IP", "status.podIP"), field("POD_IPS", "status.podIPs"),
    ]})
    assert env == {
        "NAME": "web-0", "NS": "ns", "UID": "uid-1", "APP": "web", "NONE": "",
        "NOTE": 'say "hi"\n', "LABELS": 'app="web"\ntier="front"',
        "ANNOTATIONS": 'note="say \\"hi\\"\\n"', "NODE": "n1", "SA": "builder",
        "HOST_IP": "192.168.1.5", "HOST_IPS": "192.168.1.5", "POD_IP": "10.244.1.7",
        "POD_IPS": "10.244.1.7,fd00::7",
    }


@pytest.mark.parametrize(("path", "message"), [
    ("spec.bogus", "field label not supported: spec.bogus"),
    ("spec.nodeName['x']", "field label does not support subscript: spec.nodeName['x']"),
    ("status.phase", "unsupported fieldPath: status.phase"),
])
def test_bad_field_refs(path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"name": "c", "env": [field("X", path)]})
    assert str(info.value) == message


def resource(name: str, path: str, divisor: str | None = None,
             container: str | None = None) -> Object:
    ref: Object = {"resource": path}
    if divisor is not None:
        ref["divisor"] = divisor
    if container is not None:
        ref["containerName"] = container
    return {"name": name, "valueFrom": {"resourceFieldRef": ref}}


def test_resource_field_refs_round_up_to_the_divisor() -> None:
    container = {"name": "c", "resources": {
        "limits": {"cpu": "250m", "memory": "100Mi"},
        "requests": {"cpu": "1100m", "memory": "1000"}}, "env": [
        resource("CPU", "limits.cpu"), resource("CPU_M", "limits.cpu", "1m"),
        resource("REQ_CPU", "requests.cpu"), resource("MEM", "limits.memory"),
        resource("MEM_MI", "limits.memory", "1Mi"), resource("MEM_K", "requests.memory", "1Ki"),
        resource("MEM_G", "limits.memory", "1G"),
    ]}
    assert env_of(container) == {"CPU": "1", "CPU_M": "250", "REQ_CPU": "2",
                                 "MEM": str(100 * 2**20), "MEM_MI": "100", "MEM_K": "1",
                                 "MEM_G": "1"}


def test_unset_limits_are_node_allocatable_and_requests_default_to_limits() -> None:
    container = {"name": "c", "resources": {"limits": {"memory": "64Mi"}}, "env": [
        resource("CPU", "limits.cpu", "1m"), resource("EPH", "limits.ephemeral-storage", "1Gi"),
        resource("REQ_MEM", "requests.memory", "1Mi"), resource("REQ_CPU", "requests.cpu"),
    ]}
    env = env_of(container, allocatable={"cpu": "3500m", "memory": "8Gi",
                                         "ephemeral-storage": "20Gi"})
    assert env == {"CPU": "3500", "EPH": "20", "REQ_MEM": "64", "REQ_CPU": "0"}


def test_resource_refs_may_name_another_container() -> None:
    the_pod = pod(containers=[{"name": "c"}, {"name": "side", "resources": {
        "limits": {"memory": "32Mi"}}}])
    env = env_of({"name": "c", "env": [resource("M", "limits.memory", "1Mi", "side")]},
                 the_pod=the_pod)
    assert env == {"M": "32"}
    with pytest.raises(ConfigError, match="^container ghost not found$"):
        resolve({"name": "c", "env": [resource("M", "limits.memory", None, "ghost")]},
                the_pod=the_pod)
    with pytest.raises(ConfigError, match="^unsupported container resource : limits.gpu$"):
        resolve({"name": "c", "env": [resource("G", "limits.gpu")]})
