"""The scheduling queue: priority order, backoff, unschedulable parking and event moves."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.queue import (
    ACTIVE,
    BACKOFF,
    MAX_UNSCHEDULABLE_SECONDS,
    UNSCHEDULABLE,
    QueueClosed,
    SchedulingQueue,
)
from controlplane.scheduler.testing import make_pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hint(plugins: frozenset[str], event: str) -> bool:
    table = {"NodeResourcesFit": {"NodeAdd", "AssignedPodDelete"}, "TaintToleration": {"NodeAdd"}}
    return not plugins or any(event in table.get(p, set()) for p in plugins)


def pod(name: str, priority: int = 0) -> PodInfo:
    return PodInfo(make_pod(name, priority=priority))


def queue(clock: Clock) -> SchedulingQueue:
    return SchedulingQueue(interested=hint, clock=clock)


def keys(q: SchedulingQueue) -> list[str]:
    found = []
    while (item := q.pop_ready()) is not None:
        found.append(item.key)
    return found


def test_priority_then_arrival_order() -> None:
    clock = Clock()
    q = queue(clock)
    for name, priority in (("a", 0), ("b", 10), ("c", 0), ("d", 10)):
        q.add(pod(name, priority))
        clock.now += 1
    assert keys(q) == ["default/b", "default/d", "default/a", "default/c"]


def test_backoff_doubles_to_the_maximum() -> None:
    q = queue(Clock())
    assert [q.backoff_duration(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pod_waits_for_a_relevant_event() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("p"))
    item = q.pop_ready()
    assert item is not None and q.where("default/p") == "in-flight"
    assert q.requeue_unschedulable(item, {"NodeResourcesFit"}) == UNSCHEDULABLE
    clock.now += 60
    assert q.pop_ready() is None  # no event, no retry: no hot loop
    assert q.move_all("NamespaceChange") == 0  # irrelevant to NodeResourcesFit
    assert q.where("default/p") == UNSCHEDULABLE
    assert q.move_all("AssignedPodDelete") == 1
    assert q.where("default/p") == ACTIVE  # backoff (1 s) long over
    assert keys(q) == ["default/p"]


def test_event_during_backoff_goes_to_backoff_first() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("p"))
    item = q.pop_ready()
    assert item is not None
    q.requeue_unschedulable(item, {"TaintToleration"})
    clock.now += 0.5
    q.move_all("NodeAdd")
    assert q.where("default/p") == BACKOFF
    assert q.pop_ready() is None
    assert q.next_deadline() == pytest.approx(1001.0)
    clock.now = 1001.0
    assert keys(q) == ["default/p"]


def test_event_while_in_flight_is_not_lost() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("p"))
    item = q.pop_ready()
    assert item is not None
    q.move_all("NodeAdd")  # a node appears while the pod is being scheduled
    assert q.requeue_unschedulable(item, {"NodeResourcesFit"}) == BACKOFF
    q.add(pod("r"))
    item = q.pop_ready()
    assert item is not None and item.key == "default/r"
    q.move_all("NamespaceChange")
    assert q.requeue_unschedulable(item, {"NodeResourcesFit"}) == UNSCHEDULABLE


def test_attempts_lengthen_the_backoff() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("p"))
    for attempt, wait in ((1, 1.0), (2, 2.0), (3, 4.0)):
        item = q.pop_ready()
        assert item is not None and item.attempts == attempt
        assert q.requeue_backoff(item) == BACKOFF
        clock.now += wait - 0.01
        assert q.pop_ready() is None
        clock.now += 0.01


def test_long_parked_pods_are_retried_eventually() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("p"))
    item = q.pop_ready()
    assert item is not None
    q.requeue_unschedulable(item, {"NodeResourcesFit"})
    assert q.next_deadline() == pytest.approx(1000 + MAX_UNSCHEDULABLE_SECONDS)
    clock.now += MAX_UNSCHEDULABLE_SECONDS
    assert keys(q) == ["default/p"]


def test_spec_updates_move_status_updates_do_not() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("p"))
    item = q.pop_ready()
    assert item is not None
    q.requeue_unschedulable(item, {"NodeResourcesFit"})
    clock.now += 5
    q.update(pod("p"), spec_changed=False)
    assert q.where("default/p") == UNSCHEDULABLE
    q.update(pod("p"), spec_changed=True)
    assert q.where("default/p") == ACTIVE


def test_deleted_pods_leave_everywhere() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("a"))
    q.add(pod("b"))
    item = q.pop_ready()
    assert item is not None
    q.delete("default/a")
    q.delete("default/b")
    assert q.requeue_unschedulable(item, set()) == ""
    assert q.pop_ready() is None and q.where("default/b") is None


def test_no_rejecting_plugins_means_any_event_helps() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod("p"))
    item = q.pop_ready()
    assert item is not None
    q.requeue_unschedulable(item, set())  # e.g. there were no nodes at all
    clock.now += 2
    assert q.move_all("NodeAdd") == 1


async def test_pop_waits_for_work_and_close_wakes_it() -> None:
    q = SchedulingQueue()
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.add(pod("p"))
    assert (await asyncio.wait_for(waiter, 1)).key == "default/p"
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0.01)
    q.close()
    with pytest.raises(QueueClosed):
        await asyncio.wait_for(waiter, 1)


async def test_pop_wakes_when_backoff_expires() -> None:
    q = SchedulingQueue(initial_backoff=0.05)
    q.add(pod("p"))
    item = await q.pop()
    q.requeue_backoff(item)
    again = await asyncio.wait_for(q.pop(), 1)
    assert again.key == "default/p" and again.attempts == 2
