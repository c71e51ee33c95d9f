"""Container GC planning over plain records: which dead containers and sandboxes go, in order."""

from __future__ import annotations

from agent.gc.containers import (
    ContainerRecord,
    SandboxRecord,
    plan_containers,
    plan_sandboxes,
    pod_uid_of_log_dir,
    stale_log_dirs,
)
from agent.gc.policy import GCPolicy

S = 1_000_000_000  # nanoseconds per second
NOW = 1000 * S


def dead(uid: str, name: str, attempt: int, *, at: int | None = None,
         sandbox: str = "") -> ContainerRecord:
    created = at if at is not None else (100 + attempt) * S
    return ContainerRecord(id=f"{uid}-{name}-{attempt}", uid=uid, name=name,
                           sandbox_id=sandbox or f"sb-{uid}", created_at=created,
                           attempt=attempt, running=False)


def running(uid: str, name: str, attempt: int, **kw: object) -> ContainerRecord:
    c = dead(uid, name, attempt, **kw)  # type: ignore[arg-type]
    return ContainerRecord(**{**c.__dict__, "running": True})


def live(*uids: str):  # type: ignore[no-untyped-def]
    return lambda uid: uid in uids


def test_keeps_one_dead_container_per_container_oldest_removed_first() -> None:
    containers = [dead("p", "main", i) for i in range(4)] + [running("p", "main", 4)]
    plan = plan_containers(containers, [], pod_exists=live("p"), policy=GCPolicy(), now=NOW)
    assert plan.containers == ["p-main-0", "p-main-1", "p-main-2"]  # p-main-3 for --previous


def test_the_newest_dead_container_is_the_one_kept_while_backing_off() -> None:
    containers = [dead("p", "main", i) for i in range(3)]
    plan = plan_containers(containers, [], pod_exists=live("p"), policy=GCPolicy(), now=NOW)
    assert plan.containers == ["p-main-0", "p-main-1"]


def test_units_are_per_pod_and_container_name() -> None:
    containers = [dead("p", "a", 0), dead("p", "a", 1), dead("p", "b", 0), dead("q", "a", 0),
                  dead("q", "a", 1), running("q", "a", 2)]
    plan = plan_containers(containers, [], pod_exists=live("p", "q"),
                           policy=GCPolicy(max_per_pod_container=1), now=NOW)
    assert sorted(plan.containers) == ["p-a-0", "q-a-0"]


def test_limit_of_two_and_no_limit() -> None:
    containers = [dead("p", "main", i) for i in range(5)] + [running("p", "main", 5)]
    two = plan_containers(containers, [], pod_exists=live("p"),
                          policy=GCPolicy(max_per_pod_container=2), now=NOW)
    assert two.containers == ["p-main-0", "p-main-1", "p-main-2"]
    unlimited = plan_containers(containers, [], pod_exists=live("p"),
                                policy=GCPolicy(max_per_pod_container=-1), now=NOW)
    assert not unlimited


def test_zero_per_container_still_keeps_the_current_instance_of_a_live_pod() -> None:
    containers = [dead("p", "main", 0), dead("p", "main", 1)]
    plan = plan_containers(containers, [], pod_exists=live("p"),
                           policy=GCPolicy(max_per_pod_container=0), now=NOW)
    assert plan.containers == ["p-main-0"]  # restart count and terminated state live in #1


def test_every_dead_container_of_a_deleted_pod_goes_running_ones_stay() -> None:
    containers = [dead("gone", "main", 0), dead("gone", "main", 1), dead("gone", "side", 0),
                  running("gone", "web", 0)]
    plan = plan_containers(containers, [], pod_exists=live(), policy=GCPolicy(), now=NOW)
    assert sorted(plan.containers) == ["gone-main-0", "gone-main-1", "gone-side-0"]
    assert plan.containers.index("gone-main-0") < plan.containers.index("gone-main-1")


def test_minimum_age_protects_young_dead_containers() -> None:
    containers = [dead("p", "main", 0, at=NOW - 50 * S), dead("p", "main", 1, at=NOW - 20 * S),
                  running("p", "main", 2, at=NOW - 5 * S), dead("gone", "x", 0, at=NOW - S)]
    plan = plan_containers(containers, [], pod_exists=live("p"),
                           policy=GCPolicy(max_per_pod_container=0, min_container_age=30),
                           now=NOW)
    assert plan.containers == ["p-main-0"]


def test_global_limit_leaves_an_equal_share_then_removes_the_oldest() -> None:
    containers = []
    for i, uid in enumerate(("a", "b", "c")):
        containers += [dead(uid, "m", n, at=(10 * i + n) * S) for n in range(3)]
        containers.append(running(uid, "m", 3, at=(10 * i + 5) * S))
    four = plan_containers(containers, [], pod_exists=live("a", "b", "c"),
                           policy=GCPolicy(max_per_pod_container=-1, max_containers=4), now=NOW)
    assert sorted(four.containers) == ["a-m-0", "a-m-1", "b-m-0", "b-m-1", "c-m-0", "c-m-1"]
    two = plan_containers(containers, [], pod_exists=live("a", "b", "c"),
                          policy=GCPolicy(max_per_pod_container=-1, max_containers=2), now=NOW)
    assert len(two.containers) == 7 and two.containers[-1] == "a-m-2"  # oldest survivor goes


def test_sandboxes_of_deleted_pods_go_when_not_ready_and_empty() -> None:
    sandboxes = [SandboxRecord("sb-old", "gone", ready=False, created_at=1 * S),
                 SandboxRecord("sb-busy", "gone", ready=False, created_at=2 * S),
                 SandboxRecord("sb-ready", "gone2", ready=True, created_at=3 * S)]
    containers = [running("gone", "main", 0, sandbox="sb-busy"),
                  dead("gone", "side", 0, sandbox="sb-old")]
    plan = plan_containers(containers, sandboxes, pod_exists=live(), policy=GCPolicy(), now=NOW)
    assert plan.containers == ["gone-side-0"]
    assert plan.sandboxes == ["sb-old"]  # busy: a running container; ready: the worker's to stop


def test_a_live_pod_keeps_its_newest_sandbox_even_if_not_ready() -> None:
    sandboxes = [SandboxRecord(f"sb{i}", "p", ready=False, created_at=i * S) for i in range(4)]
    containers = [dead("p", "main", 0, sandbox="sb1")]
    removed = plan_sandboxes(containers, sandboxes, set(), pod_exists=live("p"))
    assert removed == ["sb0", "sb2"]  # oldest first; sb1 holds a container; sb3 is the newest
    assert plan_sandboxes(containers, sandboxes, {"p-main-0"}, pod_exists=live("p")) == [
        "sb0", "sb1", "sb2"]


def test_pod_log_directories_of_gone_pods() -> None:
    assert pod_uid_of_log_dir("ns_web-1_0d3c-uid") == "0d3c-uid"
    assert pod_uid_of_log_dir("stray") == ""
    names = ["ns_a_uid-a", "ns_b_uid-b", "ns_c_uid-c", "junk"]
    assert stale_log_dirs(names, pod_exists=live("uid-a"), runtime_uids={"uid-c"}) == [
        "ns_b_uid-b"]
