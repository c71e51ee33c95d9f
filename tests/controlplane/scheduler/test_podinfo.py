"""PodInfo: requests summed as resourcehelper.PodRequests, ports, affinity terms."""

from __future__ import annotations

from controlplane.scheduler.podinfo import DEFAULT_MEMORY, PodInfo, Resources, pod_requests
from controlplane.scheduler.testing import make_pod


def container(cpu: str | None = None, memory: str | None = None, **extra: object) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"name": "c", "resources": {"requests": requests}, **extra}


def test_containers_sum_and_init_containers_are_a_floor() -> None:
    spec = {"containers": [container("100m", "100Mi"), container("200m", "100Mi")],
            "initContainers": [container("500m", "50Mi"), container("100m")]}
    got = pod_requests(spec)
    assert (got.milli_cpu, got.memory) == (500, 200 * 1024 ** 2)


def test_restartable_init_containers_add_up() -> None:
    sidecar = container("100m", "10Mi", restartPolicy="Always")
    spec = {"containers": [container("200m")], "initContainers": [sidecar, container("250m")]}
    got = pod_requests(spec)
    # running: 200m + sidecar 100m; the later init container runs beside the sidecar: 350m
    assert got.milli_cpu == 350
    assert got.memory == 10 * 1024 ** 2


def test_overhead_limits_and_extended_resources() -> None:
    spec = {"containers": [{"name": "c", "resources": {
        "limits": {"cpu": "1", "nvidia.com/gpu": "2"}, "requests": {"memory": "1Gi"}}}],
        "overhead": {"cpu": "50m"}}
    got = pod_requests(spec)
    assert got.milli_cpu == 1050  # the limit stands in for the missing request
    assert got.scalar == {"nvidia.com/gpu": 2}


def test_non_zero_defaults_per_container() -> None:
    spec = {"containers": [container(), container("300m")]}
    got = pod_requests(spec, non_zero=True)
    assert got.milli_cpu == 100 + 300
    assert got.memory == 2 * DEFAULT_MEMORY
    assert pod_requests(spec).is_empty() is False
    assert pod_requests({"containers": [container()]}).is_empty()


def test_bad_quantities_count_as_zero() -> None:
    assert Resources.from_list({"cpu": "lots", "memory": "1Ki"}) == Resources(0, 1024)


def test_host_ports_and_host_network_default() -> None:
    pod = make_pod("p", containers=[{"name": "c", "ports": [
        {"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}])
    assert PodInfo(pod).host_ports == [("0.0.0.0", "TCP", 8080)]
    pod = make_pod("p", hostNetwork=True, containers=[{"name": "c", "ports": [
        {"containerPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]}])
    assert PodInfo(pod).host_ports == [("10.0.0.1", "UDP", 53)]


def test_affinity_terms_default_to_own_namespace() -> None:
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
    pod = make_pod("p", "shop", affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term],
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": {**term, "namespaces": ["other"]}}]}})
    info = PodInfo(pod)
    assert info.required_affinity[0].namespaces == frozenset({"shop"})
    assert info.preferred_affinity[0].namespaces == frozenset({"other"})
    assert info.preferred_affinity[0].weight == 5
    db = PodInfo(make_pod("db", "shop", labels={"app": "db"}))
    assert info.required_affinity[0].matches(db, {})
    assert not info.preferred_affinity[0].matches(db, {})


def test_namespace_selector_matches_by_labels() -> None:
    term = {"labelSelector": {}, "topologyKey": "zone",
            "namespaceSelector": {"matchLabels": {"team": "a"}}}
    info = PodInfo(make_pod("p", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}}))
    other = PodInfo(make_pod("q", "elsewhere"))
    assert info.required_anti_affinity[0].matches(other, {"team": "a"})
    assert not info.required_anti_affinity[0].matches(other, {"team": "b"})


def test_invalid_affinity_is_recorded_not_raised() -> None:
    info = PodInfo(make_pod("p", affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]},
             "topologyKey": "zone"}]}}))
    assert "Bogus" in info.parse_error
