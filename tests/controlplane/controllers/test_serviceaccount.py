"""ServiceAccount controller: every active namespace gets `default`, never a terminating one."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client.rest import NAMESPACES
from controlplane.controllers.serviceaccount import (
    SERVICEACCOUNTS,
    ServiceAccountController,
    missing,
)
from controlplane.controllers.testing import Harness, build, harness, stamp

Object = dict[str, Any]


def namespace(name: str, *, phase: str = "Active", deleting: bool = False) -> Object:
    meta: Object = {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"}
    if deleting:
        meta["deletionTimestamp"] = stamp()
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
            "status": {"phase": phase}}


def account(ns: str, name: str = "default") -> Object:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}"}}


@pytest.mark.parametrize(("ns", "present", "expected"), [
    (namespace("a"), set(), ["default"]),
    (namespace("a"), {"default"}, []),
    (namespace("a"), {"builder"}, ["default"]),
    (namespace("a", phase="Terminating"), set(), []),
    (namespace("a", deleting=True), set(), []),
    (None, set(), []),
])
def test_missing(ns: Object | None, present: set[str], expected: list[str]) -> None:
    assert missing(ns, present) == expected


def setup(*objects: Object) -> tuple[Harness, Any]:
    h = harness()
    for obj in objects:
        h.cache(NAMESPACES if obj["kind"] == "Namespace" else SERVICEACCOUNTS, obj)
    return h, build(h, ServiceAccountController)


async def test_creates_default_in_a_new_namespace() -> None:
    h, c = setup(namespace("team"))
    await c.sync("team")
    assert h.client.actions() == [("create", "serviceaccounts", "default")]
    assert h.client.bodies("create", "serviceaccounts") == [{
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": "team"}}]


async def test_nothing_to_do_when_it_exists_or_the_namespace_terminates() -> None:
    h, c = setup(namespace("team"), account("team"), namespace("old", phase="Terminating"))
    await c.sync("team")
    await c.sync("old")
    await c.sync("gone")
    assert h.client.actions() == []


async def test_a_deleted_default_account_requeues_its_namespace() -> None:
    h, c = setup(namespace("team"))
    c._account_deleted(account("team", "builder"))
    assert len(c.queue) == 0
    c._account_deleted(account("team"))
    assert len(c.queue) == 1


async def test_already_exists_and_terminating_refusals_are_success() -> None:
    h, c = setup(namespace("team"))
    h.client.fail[("create", "serviceaccounts")] = errors.AlreadyExists("exists")
    await c.sync("team")
    h.client.fail[("create", "serviceaccounts")] = errors.Forbidden(
        'serviceaccounts "default" is forbidden: unable to create new content in namespace '
        "team because it is being terminated")
    await c.sync("team")
    h.client.fail[("create", "serviceaccounts")] = errors.Forbidden("quota")
    with pytest.raises(errors.Forbidden):
        await c.sync("team")
