"""Image GC planning and the policy: thresholds, LRU order, what is never removed, validation."""

from __future__ import annotations

import argparse

import pytest

from agent.gc import flags
from agent.gc.images import ImageInfo, ImageUsage, bytes_to_free, plan_images, usage_percent
from agent.gc.policy import GCPolicy, validate
from agent.main import main


def img(name: str, size: int = 100, pinned: bool = False) -> ImageInfo:
    return ImageInfo(id=f"sha256:{name}", names=frozenset({f"localhost/{name}:1"}), size=size,
                     pinned=pinned)


def test_bytes_to_free_from_the_high_down_to_the_low_threshold() -> None:
    assert usage_percent(1000, 100) == 90
    assert bytes_to_free(1000, 100, high=85, low=80) == 100  # 1000 * 20% - 100
    assert bytes_to_free(1000, 150, high=85, low=80) == 50  # exactly at 85 %: runs
    assert bytes_to_free(1000, 151, high=85, low=80) == 49  # 84.9 % counts as 85 (kubelet)
    assert bytes_to_free(1000, 160, high=85, low=80) == 0
    assert bytes_to_free(1000, 300, high=85, low=80) == 0


def test_usage_records_first_seen_last_used_and_forgets_removed_images() -> None:
    usage = ImageUsage()
    a, b = img("a"), img("b")
    usage.detect([a, b], {"localhost/a:1"}, now=10.0)
    assert (usage.records[a.id].first_detected, usage.records[b.id].last_used) == (10.0, 10.0)
    usage.detect([a, b], {a.id}, now=20.0)
    assert usage.records[a.id].last_used == 20.0 and usage.records[b.id].last_used == 10.0
    assert usage.records[a.id].first_detected == 10.0
    usage.used({b.id}, now=30.0)
    assert usage.records[b.id].last_used == 30.0
    usage.detect([a], set(), now=40.0)
    assert b.id not in usage.records


def test_least_recently_used_first_until_enough_is_freed() -> None:
    usage = ImageUsage()
    old, mid, new = img("old", 100), img("mid", 100), img("new", 100)
    usage.detect([old, mid, new], set(), now=0.0)
    usage.used({new.id}, now=50.0)
    usage.used({mid.id}, now=40.0)
    chosen = plan_images([new, mid, old], usage, in_use=set(), pinned=set(), amount=150,
                         now=500.0, min_age=120.0)
    assert [i.id for i in chosen] == [old.id, mid.id]
    assert plan_images([new, mid, old], usage, in_use=set(), pinned=set(), amount=0,
                       now=500.0, min_age=0) == []


def test_in_use_pinned_and_young_images_are_never_removed() -> None:
    usage = ImageUsage()
    busy, pinned, pause, young, free = (img("busy"), img("pinned", pinned=True), img("pause"),
                                        img("young"), img("free"))
    usage.detect([busy, pinned, pause, free], set(), now=0.0)
    usage.detect([busy, pinned, pause, free, young], set(), now=100.0)
    chosen = plan_images([busy, pinned, pause, young, free], usage,
                         in_use={"localhost/busy:1"}, pinned={"localhost/pause:1"},
                         amount=10**9, now=150.0, min_age=120.0)
    assert [i.id for i in chosen] == [free.id]


@pytest.mark.parametrize(("high", "low", "fragment"), [
    (101, 80, "imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between"),
    (85, -1, "imageGCLowThresholdPercent (--image-gc-low-threshold) -1 must be between"),
    (80, 80, "(--image-gc-low-threshold) 80 must be less than imageGCHighThresholdPercent"),
])
def test_invalid_thresholds_are_refused(high: int, low: int, fragment: str) -> None:
    problems = validate(GCPolicy(image_high_threshold=high, image_low_threshold=low))
    assert any(fragment in p for p in problems), problems


def test_defaults_are_valid_and_100_disables_image_gc() -> None:
    assert validate(GCPolicy()) == []
    assert GCPolicy().image_gc_enabled and not GCPolicy(image_high_threshold=100).image_gc_enabled


def test_durations_as_go_writes_them() -> None:
    assert flags.duration("2m0s") == 120.0
    assert flags.duration("1m30s") == 90.0
    assert flags.duration("500ms") == 0.5
    assert flags.duration("0") == 0.0 and flags.duration("1.5") == 1.5
    with pytest.raises(argparse.ArgumentTypeError):
        flags.duration("2 minutes")


def test_flags_become_the_policy() -> None:
    p = argparse.ArgumentParser()
    flags.add_flags(p)
    policy = flags.policy_of(p.parse_args([
        "--maximum-dead-containers-per-container", "2", "--maximum-dead-containers", "10",
        "--minimum-container-ttl-duration", "1m", "--image-gc-high-threshold", "1",
        "--image-gc-low-threshold", "0", "--minimum-image-ttl-duration", "0s",
        "--container-gc-period", "1s", "--image-gc-period", "2s"]))
    assert policy == GCPolicy(max_per_pod_container=2, max_containers=10, min_container_age=60,
                              image_high_threshold=1, image_low_threshold=0, min_image_age=0,
                              container_gc_period=1, image_gc_period=2)
    assert flags.policy_of(p.parse_args([])) == GCPolicy()


def test_the_agent_refuses_to_start_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--kubeconfig", "/nonexistent", "--image-gc-high-threshold", "70",
                 "--image-gc-low-threshold", "75"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("pinnace agent: invalid configuration: ")
    assert "must be less than imageGCHighThresholdPercent" in err
