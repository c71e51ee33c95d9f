"""Deployment arithmetic: the template hash, fenceposts, proportions, revisions."""

from __future__ import annotations

import re

import pytest

from controlplane.controllers.deployment import util
from controlplane.controllers.testing import deployment, template

LABELS = {"app": "web"}


def test_hash_is_stable_safe_encoded_and_at_most_ten_characters() -> None:
    t = template(LABELS)
    h = util.compute_hash(t, None)
    assert h == util.compute_hash(template(LABELS), None)
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}", h)
    assert util.compute_hash(template(LABELS, "other"), None) != h
    assert util.compute_hash(t, 0) != h  # a collisionCount, even 0, changes it
    assert util.compute_hash(t, 1) != util.compute_hash(t, 0)


def test_fnv32a_and_safe_encoding_match_go() -> None:
    assert util.fnv32a(b"") == 0x811C9DC5
    assert util.fnv32a(b"a") == 0xE40C292C  # Go's hash/fnv New32a
    assert util.safe_encode("0123456789") == "456789bcdf"


def test_templates_are_equal_ignoring_the_hash_label_and_empty_fields() -> None:
    a = template(LABELS)
    b = template({**LABELS, util.HASH_LABEL: "abc"})
    b["metadata"]["annotations"] = {}
    assert util.equal_ignore_hash(a, b)
    assert not util.equal_ignore_hash(a, template(LABELS, "v2"))


@pytest.mark.parametrize("surge,unavailable,replicas,expected", [
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
    ("25%", "25%", 1, (1, 0)),
    (0, 0, 3, (0, 1)),  # both zero: one may be unavailable
    (2, "50%", 5, (2, 2)),
    ("0%", "0%", 5, (0, 1)),
])
def test_fenceposts(surge: object, unavailable: object, replicas: int,
                    expected: tuple[int, int]) -> None:
    d = deployment("web", LABELS, replicas, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge,
                                                   "maxUnavailable": unavailable}})
    assert util.fenceposts(d) == expected


def test_max_unavailable_is_capped_and_zero_for_recreate() -> None:
    d = deployment("web", LABELS, 2, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 0, "maxUnavailable": 5}})
    assert util.max_unavailable(d) == 2
    assert util.max_unavailable(deployment("web", LABELS, 2, strategy={"type": "Recreate"})) == 0
    assert util.max_surge(deployment("web", LABELS, 2, strategy={"type": "Recreate"})) == 0


def test_an_invalid_int_or_string_is_invalid_spec() -> None:
    with pytest.raises(util.InvalidSpec):
        util.scaled_value("3", 10, True)
    with pytest.raises(util.InvalidSpec):
        util.scaled_value("x%", 10, True)


def test_revision_history_keeps_former_revisions_of_a_rolled_back_set() -> None:
    d = deployment("web", LABELS, 1)
    d["metadata"]["annotations"] = {"team": "a", util.LAST_APPLIED: "{}"}
    rs = {"metadata": {"annotations": {util.REVISION: "1"}}}
    assert util.set_new_rs_annotations(d, rs, 3, exists=True)
    assert rs["metadata"]["annotations"] == {util.REVISION: "3", util.REVISION_HISTORY: "1",
                                             "team": "a"}
    assert util.set_new_rs_annotations(d, rs, 5, exists=True)
    assert rs["metadata"]["annotations"][util.REVISION_HISTORY] == "1,3"
    assert not util.set_new_rs_annotations(d, rs, 5, exists=True)


def test_find_active_or_latest() -> None:
    def rs(name: str, replicas: int, created: str) -> dict:
        return {"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"replicas": replicas}}
    a, b = rs("a", 0, "2025-01-01T00:00:00Z"), rs("b", 0, "2025-01-02T00:00:00Z")
    assert util.find_active_or_latest(None, [a, b]) is b
    c = rs("c", 2, "2025-01-03T00:00:00Z")
    assert util.find_active_or_latest(a, [b, c]) is c
    assert util.find_active_or_latest(rs("n", 1, "x"), [c]) is None
