"""PodControl: a controller's pod creates and deletes, with events and expectations."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client.rest import PODS
from controlplane.controllers.base import Controller
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.podcontrol import PodControl, slow_start_batch
from controlplane.controllers.testing import Harness, harness, pod, replicaset

KEY = "default/web"


class Owner(Controller):
    name = "owner"
    component = "owner-controller"
    kind = "ReplicaSet"
    api_version = "apps/v1"


def setup() -> tuple[Harness, PodControl, Expectations, dict[str, Any]]:
    h = harness()
    expectations = Expectations()
    return h, PodControl(Owner(h.context()), expectations), expectations, replicaset(
        "web", {"app": "web"}, 3)


def made() -> dict[str, Any]:
    return {"metadata": {"generateName": "web-", "labels": {"app": "web"}}, "spec": {}}


async def test_creates_each_pod_make_builds_with_an_event_each() -> None:
    h, control, expectations, rs = setup()
    assert await control.create(rs, KEY, 3, made) == 3
    assert [b["metadata"]["generateName"] for b in h.client.bodies("create", "pods")] == [
        "web-"] * 3
    assert [r for r, _ in h.events()] == ["SuccessfulCreate"] * 3
    assert expectations.pending(KEY) == (3, 0)  # until the informer sees them


async def test_a_failed_batch_stops_the_creates_and_lowers_the_expectations() -> None:
    h, control, expectations, rs = setup()
    h.client.fail[("create", "pods")] = errors.Forbidden("exceeded quota: q")
    with pytest.raises(errors.Forbidden):
        await control.create(rs, KEY, 5, made)
    assert len(h.client.bodies("create", "pods")) == 1  # the first batch failed: no more
    assert h.events() == [("FailedCreate", "Error creating: exceeded quota: q")]
    assert expectations.satisfied(KEY)


async def test_a_pod_make_refuses_is_not_sent_and_has_no_event() -> None:
    h, control, expectations, rs = setup()

    def refuse() -> dict[str, Any]:
        raise errors.Invalid("unable to create pods, no labels")

    with pytest.raises(errors.Invalid):
        await control.create(rs, KEY, 2, refuse, initial=2)
    assert h.client.bodies("create", "pods") == [] and h.events() == []
    assert expectations.satisfied(KEY)


async def test_deletes_count_a_pod_already_gone_and_report_failures() -> None:
    h, control, expectations, rs = setup()
    here, gone = pod("here", {"app": "web"}), pod("gone", {"app": "web"})
    h.cache(PODS, here)
    assert await control.delete(rs, KEY, [here, gone]) == 2
    assert h.events() == [("SuccessfulDelete", "Deleted pod: here")]
    assert expectations.pending(KEY) == (0, 1)  # "here" until the informer sees it go
    h.client.fail[("delete", "pods")] = errors.Forbidden("no")
    with pytest.raises(errors.Forbidden):
        await control.delete(rs, "default/other", [here])
    assert h.events()[-1] == ("FailedDelete", "Error deleting: no")
    assert expectations.satisfied("default/other")


async def test_slow_start_batches_double_and_stop_at_the_first_failing_batch() -> None:
    calls = 0

    async def ok() -> None:
        nonlocal calls
        calls += 1

    assert await slow_start_batch(10, 1, ok) == (10, None)
    assert calls == 10  # batches 1, 2, 4, 3
    calls = 0

    async def fail_from_fourth() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise errors.Forbidden("quota")

    successes, error = await slow_start_batch(10, 1, fail_from_fourth)
    assert (successes, calls) == (3, 7)  # batches 1, 2 succeed; 4 attempted, all fail
    assert isinstance(error, errors.Forbidden)
