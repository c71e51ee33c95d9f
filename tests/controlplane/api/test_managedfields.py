"""Server-side apply and managedFields: ownership, pruning, conflicts, as kube-apiserver does."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from controlplane.api.errors import BadRequest, Conflict, Unknown
from controlplane.api.managedfields import LAST_APPLIED, apply, update
from controlplane.api.managedfields.fieldpath import from_fields, iterate, path_string, to_fields

Obj = dict[str, Any]
CORE = {"group": "", "version": "v1"}
APPS = {"group": "apps", "version": "v1"}
T0, T1, T2, T3 = (f"2024-05-01T10:00:0{n}Z" for n in range(4))


def configmap(data: dict[str, str] | None = None, **metadata: Any) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cfg", "namespace": "default", **metadata}}
    if data is not None:
        obj["data"] = data
    return obj


def apply_cm(live: Obj | None, applied: Obj, manager: str, *, force: bool = False,
             now: str = T1) -> Obj:
    return apply(live, applied, manager=manager, force=force, kind="ConfigMap", now=now, **CORE)


def update_cm(live: Obj | None, new: Obj, manager: str, *, now: str = T1, **kw: Any) -> Obj:
    return update(live, new, manager=manager, kind="ConfigMap", now=now, **CORE, **kw)


def edit(obj: Obj, **data: str | None) -> Obj:
    """A client's PUT body: the object as read, with data keys changed (None deletes)."""
    out = copy.deepcopy(obj)
    for k, v in data.items():
        if v is None:
            out["data"].pop(k)
        else:
            out["data"][k] = v
    return out


def entries(obj: Obj) -> list[Obj]:
    return list(obj["metadata"].get("managedFields", []))


def owned(obj: Obj, manager: str, operation: str = "Apply") -> Obj:
    matches: list[Obj] = [e["fieldsV1"] for e in entries(obj)
                          if e["manager"] == manager and e["operation"] == operation]
    assert len(matches) == 1, entries(obj)
    return matches[0]


def managers(obj: Obj) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in entries(obj)]


def conflict_of(fn: Any, *args: Any, **kwargs: Any) -> Obj:
    with pytest.raises(Conflict) as info:
        fn(*args, **kwargs)
    return info.value.status()


# --- apply: create, re-apply, prune ----------------------------------------------------------

def test_create_by_apply_owns_the_applied_fields() -> None:
    obj = apply_cm(None, configmap({"a": "1"}, labels={"app": "web"}), "kubectl", now=T0)

    assert obj["data"] == {"a": "1"}
    assert entries(obj) == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}},
    }]  # never apiVersion, kind, metadata.name or metadata.namespace


def test_reapply_without_a_field_removes_it() -> None:
    live = apply_cm(None, configmap({"a": "1", "b": "2"}, labels={"x": "1"}), "kubectl")
    obj = apply_cm(live, configmap({"a": "1"}), "kubectl", now=T2)

    assert obj["data"] == {"a": "1"}
    assert "labels" not in obj["metadata"]  # emptied maps go, as omitempty drops them
    assert owned(obj, "kubectl") == {"f:data": {"f:a": {}}}
    assert entries(obj)[0]["time"] == T2


def test_reapply_keeps_fields_it_never_owned() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "kubectl")
    live = update_cm(live, edit(live, b="2"), "kubectl-edit")
    obj = apply_cm(live, configmap({"c": "3"}), "kubectl", now=T2)

    assert obj["data"] == {"b": "2", "c": "3"}


def test_dropped_field_stays_while_another_manager_owns_it() -> None:
    live = apply_cm(None, configmap({"a": "1", "b": "2"}), "first")
    live = apply_cm(live, configmap({"b": "2"}), "second")
    obj = apply_cm(live, configmap({"a": "1"}), "first", now=T2)

    assert obj["data"] == {"a": "1", "b": "2"}
    assert owned(obj, "first") == {"f:data": {"f:a": {}}}
    assert owned(obj, "second") == {"f:data": {"f:b": {}}}

    obj = apply_cm(obj, configmap({"x": "y"}), "second", now=T3)
    assert obj["data"] == {"a": "1", "x": "y"}


def test_no_op_apply_keeps_the_entry_time() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "kubectl", now=T0)
    obj = apply_cm(live, configmap({"a": "1"}), "kubectl", now=T3)

    assert entries(obj)[0]["time"] == T0


# --- sharing and conflicts -------------------------------------------------------------------

def test_two_appliers_share_a_field_with_the_same_value() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "first")
    obj = apply_cm(live, configmap({"a": "1"}), "second", now=T2)

    assert owned(obj, "first") == owned(obj, "second") == {"f:data": {"f:a": {}}}
    # a shared field that changes conflicts for either sharer
    status = conflict_of(apply_cm, obj, configmap({"a": "2"}), "first")
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "second": .data.a'


def test_conflict_with_an_updater_reads_like_kube_apiserver() -> None:
    live = update_cm(None, configmap({"a": "1"}), "other-mgr")
    status = conflict_of(apply_cm, live, configmap({"a": "2"}), "kubectl")

    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == ('Apply failed with 1 conflict: conflict with "other-mgr" '
                                 "using v1: .data.a")
    assert status["details"] == {"causes": [{
        "reason": "FieldManagerConflict", "message": 'conflict with "other-mgr" using v1',
        "field": ".data.a"}]}


def test_several_conflicts_are_listed_by_manager() -> None:
    live = apply_cm(None, configmap({"a": "1"}, labels={"app": "x"}), "bar")
    live = update_cm(live, edit(live, b="1", c="1"), "foo")
    status = conflict_of(apply_cm, live, configmap({"a": "2", "b": "2", "c": "2"},
                                                   labels={"app": "y"}), "kubectl")

    assert status["message"] == (
        'Apply failed with 4 conflicts: conflicts with "bar":\n'
        "- .data.a\n- .metadata.labels.app\n"
        'conflicts with "foo" using v1:\n'
        "- .data.b\n- .data.c")
    assert [(c["message"], c["field"]) for c in status["details"]["causes"]] == [
        ('conflict with "bar"', ".data.a"), ('conflict with "bar"', ".metadata.labels.app"),
        ('conflict with "foo" using v1', ".data.b"), ('conflict with "foo" using v1', ".data.c")]


def test_force_takes_ownership() -> None:
    live = update_cm(None, configmap({"a": "1", "b": "1"}), "other-mgr")
    obj = apply_cm(live, configmap({"a": "2"}), "kubectl", force=True, now=T2)

    assert obj["data"] == {"a": "2", "b": "1"}
    assert owned(obj, "kubectl") == {"f:data": {"f:a": {}}}
    # the updater created the data map, so it keeps owning the map itself ("."), as in k8s
    assert owned(obj, "other-mgr", "Update") == {"f:data": {".": {}, "f:b": {}}}


def test_conflicting_apply_changes_nothing() -> None:
    live = update_cm(None, configmap({"a": "1"}), "other-mgr")
    before = copy.deepcopy(live)
    conflict_of(apply_cm, live, configmap({"a": "2"}), "kubectl")

    assert live == before


# --- client-side apply, then server-side apply --------------------------------------------------

def client_side_applied(data: dict[str, str]) -> Obj:
    """What `kubectl apply` (client-side) creates: a POST carrying the annotation."""
    config = configmap(data)
    body = configmap(data, annotations={LAST_APPLIED: json.dumps(config) + "\n"})
    return update_cm(None, body, "kubectl-client-side-apply", now=T0)


@pytest.mark.parametrize("manager", ["ci-bot", "kubectl-other"])
def test_client_side_apply_then_server_side_apply_of_changed_value_conflicts(
        manager: str) -> None:
    live = client_side_applied({"a": "1"})
    status = conflict_of(apply_cm, live, configmap({"a": "2"}), manager)

    assert status["message"] == ('Apply failed with 1 conflict: conflict with '
                                 '"kubectl-client-side-apply" using v1: .data.a')


def test_client_side_apply_without_the_annotation_conflicts_for_kubectl_too() -> None:
    live = update_cm(None, configmap({"a": "1"}), "kubectl-client-side-apply")
    status = conflict_of(apply_cm, live, configmap({"a": "2"}), "kubectl")

    assert status["details"]["causes"][0]["message"] == (
        'conflict with "kubectl-client-side-apply" using v1')


def test_kubectl_server_side_apply_upgrades_from_client_side_apply() -> None:
    live = client_side_applied({"a": "1", "b": "1"})
    obj = apply_cm(live, configmap({"a": "2", "b": "1"}), "kubectl", now=T2)

    assert obj["data"] == {"a": "2", "b": "1"}
    assert owned(obj, "kubectl") == {"f:data": {"f:a": {}, "f:b": {}}}
    assert owned(obj, "kubectl-client-side-apply", "Update") == {
        "f:data": {".": {}, "f:b": {}},
        "f:metadata": {"f:annotations": {".": {}, f"f:{LAST_APPLIED}": {}}}}
    # the annotation follows what kubectl applied, so client-side apply still works
    assert json.loads(obj["metadata"]["annotations"][LAST_APPLIED]) == configmap(
        {"a": "2", "b": "1"})


def test_client_side_drift_still_conflicts_for_kubectl() -> None:
    live = client_side_applied({"a": "1"})
    live = update_cm(live, edit(live, a="5"), "kubectl-edit", now=T1)
    status = conflict_of(apply_cm, live, configmap({"a": "2"}), "kubectl")

    assert status["message"] == ('Apply failed with 1 conflict: conflict with "kubectl-edit" '
                                 "using v1: .data.a")


# --- lists ------------------------------------------------------------------------------------

def deployment(*containers: Obj) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": list(containers)}}}}


def apply_deploy(live: Obj | None, applied: Obj, manager: str, *, now: str = T1) -> Obj:
    return apply(live, applied, manager=manager, force=False, kind="Deployment", now=now,
                 **APPS)


def containers_of(obj: Obj) -> list[Obj]:
    return list(obj["spec"]["template"]["spec"]["containers"])


def test_associative_list_items_are_owned_by_key() -> None:
    web = {"name": "web", "image": "nginx:1"}
    live = apply_deploy(None, deployment(web), "team-web")
    obj = apply_deploy(live, deployment({"name": "log", "image": "fluentd"}), "team-log")

    assert [c["name"] for c in containers_of(obj)] == ["web", "log"]
    assert owned(obj, "team-log") == {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"log"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}
    # changing the other team's container conflicts on that item's field only
    status = conflict_of(apply_deploy, obj, deployment({"name": "web", "image": "nginx:2"}),
                         "team-log")
    assert status["details"]["causes"][0]["field"] == (
        '.spec.template.spec.containers[name="web"].image')
    # dropping its own container removes only that item
    obj = apply_deploy(obj, deployment(), "team-log", now=T2)
    assert containers_of(obj) == [web]


def test_item_fields_merge_into_the_live_item() -> None:
    live = apply_deploy(None, deployment({"name": "web", "image": "nginx:1"}), "owner")
    obj = apply_deploy(live, deployment({"name": "web", "env": [{"name": "A", "value": "1"}]}),
                       "injector")

    assert containers_of(obj) == [{"name": "web", "image": "nginx:1",
                                   "env": [{"name": "A", "value": "1"}]}]
    assert owned(obj, "injector")["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"web"}': {".": {}, "f:env": {'k:{"name":"A"}': {
            ".": {}, "f:name": {}, "f:value": {}}}, "f:name": {}}}


def test_atomic_lists_are_owned_and_replaced_whole() -> None:
    live = apply_deploy(None, deployment({"name": "web", "args": ["a", "b"]}), "owner")
    args = owned(live, "owner")["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert args['k:{"name":"web"}']["f:args"] == {}  # one leaf, no items

    status = conflict_of(apply_deploy, live, deployment({"name": "web", "args": ["a"]}), "other")
    assert status["details"]["causes"][0]["field"] == (
        '.spec.template.spec.containers[name="web"].args')

    obj = apply_deploy(live, deployment({"name": "web", "args": ["c"]}), "owner", now=T2)
    assert containers_of(obj) == [{"name": "web", "args": ["c"]}]


def test_finalizers_are_a_set() -> None:
    live = apply_cm(None, configmap(finalizers=["a.io/x"]), "one")
    obj = apply_cm(live, configmap(finalizers=["b.io/y"]), "two", now=T2)

    assert obj["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    assert owned(obj, "two") == {"f:metadata": {"f:finalizers": {'v:"b.io/y"': {}}}}

    obj = apply_cm(obj, configmap(finalizers=[]), "one", now=T3)
    assert obj["metadata"]["finalizers"] == ["b.io/y"]
    assert managers(obj) == [("two", "Apply")]  # "one" owns nothing left


def test_applier_cannot_drop_a_controllers_finalizer() -> None:
    live = update_cm(None, configmap(finalizers=["ctrl.io/protect"]), "controller")
    obj = apply_cm(live, configmap(finalizers=["b.io/y"]), "kubectl", now=T2)
    assert obj["metadata"]["finalizers"] == ["ctrl.io/protect", "b.io/y"]

    obj = apply_cm(obj, configmap(), "kubectl", now=T3)
    assert obj["metadata"]["finalizers"] == ["ctrl.io/protect"]


def test_list_item_without_its_merge_key_is_rejected() -> None:
    with pytest.raises(Unknown) as info:  # a bare 500 with no reason, as kube-apiserver's
        apply_deploy(None, deployment({"image": "nginx"}), "kubectl")
    assert (info.value.code, info.value.reason) == (500, "")

    assert info.value.message == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        ".spec.template.spec.containers: element 0: associative list with keys has an element "
        'that omits key field "name" (and doesn\'t have default value)')


# --- update: ownership for non-apply writes -----------------------------------------------------

def test_create_by_update_owns_every_field_but_system_metadata() -> None:
    body = configmap({"a": "1"}, labels={"app": "web"}, uid="u-1", resourceVersion="7",
                     creationTimestamp=T0, generation=1)
    obj = update_cm(None, body, "kubectl-create", now=T0)

    assert entries(obj) == [{
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {".": {}, "f:a": {}},
                     "f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
    }]


def test_update_takes_changed_fields_from_other_managers() -> None:
    live = apply_cm(None, configmap({"a": "1", "b": "1"}), "kubectl")
    obj = update_cm(live, edit(live, a="2", b=None), "kubectl-edit", now=T2)

    assert owned(obj, "kubectl-edit", "Update") == {"f:data": {"f:a": {}}}
    assert managers(obj) == [("kubectl-edit", "Update")]  # kubectl's set emptied: entry gone


def test_update_that_changes_nothing_records_nothing() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "kubectl", now=T0)
    obj = update_cm(live, copy.deepcopy(live), "kube-controller-manager", now=T2)

    assert entries(obj) == entries(live)


def test_status_is_tracked_only_through_its_subresource() -> None:
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}}
    obj = update(None, pod, manager="kubelet", kind="Pod", now=T0, **CORE)
    assert owned(obj, "kubelet", "Update") == {"f:spec": {"f:nodeName": {}}}

    running = dict(copy.deepcopy(obj), status={"phase": "Running"})
    obj = update(obj, running, manager="kubelet", kind="Pod", now=T1, subresource="status",
                 **CORE)
    assert [(e["manager"], e.get("subresource"), e["fieldsV1"]) for e in entries(obj)] == [
        ("kubelet", None, {"f:spec": {"f:nodeName": {}}}),
        ("kubelet", "status", {"f:status": {"f:phase": {}}})]


def test_entries_are_kept_per_manager_operation_and_subresource() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "tool", now=T0)
    live = update_cm(live, edit(live, b="1"), "tool", now=T1)
    obj = update_cm(live, edit(live, c="1"), "tool", now=T2)

    assert [(e["manager"], e["operation"], e["time"], e["fieldsV1"]) for e in entries(obj)] == [
        ("tool", "Apply", T0, {"f:data": {"f:a": {}}}),
        ("tool", "Update", T2, {"f:data": {"f:b": {}, "f:c": {}}})]


def test_update_entries_are_capped_at_ten() -> None:
    obj = configmap({})
    for n in range(12):
        obj = update_cm(obj, edit(obj, **{f"k{n}": "v"}), f"writer-{n:02}",
                        now=f"2024-05-01T10:00:{n:02}Z")

    names = [e["manager"] for e in entries(obj)]
    assert len(names) == 10 and names[0] == "ancient-changes"
    assert entries(obj)[0]["fieldsV1"] == {"f:data": {"f:k0": {}, "f:k1": {}, "f:k2": {}}}
    assert entries(obj)[0]["time"] == "2024-05-01T10:00:02Z"


def test_client_may_rewrite_or_clear_managed_fields() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "kubectl")
    renamed = copy.deepcopy(live)
    renamed["metadata"]["managedFields"][0]["manager"] = "renamed"
    assert managers(update_cm(live, renamed, "kubectl-edit")) == [("renamed", "Apply")]

    cleared = dict(copy.deepcopy(live))
    cleared["metadata"]["managedFields"] = [{}]
    assert "managedFields" not in update_cm(live, cleared, "kubectl-edit")["metadata"]

    emptied = dict(copy.deepcopy(live))
    emptied["metadata"]["managedFields"] = []  # not a reset: clients unaware of the field
    assert managers(update_cm(live, emptied, "kubectl-edit")) == [("kubectl", "Apply")]


# --- the wire format and the edges ------------------------------------------------------------

def test_managed_fields_in_an_apply_body_are_refused() -> None:
    with pytest.raises(BadRequest) as info:
        apply_cm(None, configmap({"a": "1"}, managedFields=[]), "kubectl")

    assert info.value.message == "metadata.managedFields must be nil"


def test_stored_fields_v1_decode_whatever_the_spelling() -> None:
    live = configmap({"a": "1"}, finalizers=["x"])
    live["metadata"]["managedFields"] = [{
        "manager": "old", "operation": "Update", "apiVersion": "v1", "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:finalizers": {'v: "x"': {}}}}}]
    status = conflict_of(apply_cm, live, configmap({"a": "2"}, finalizers=[]), "kubectl")

    assert [c["field"] for c in status["details"]["causes"]] == [".data.a"]
    obj = apply_cm(live, configmap({"b": "1"}), "kubectl")
    assert owned(obj, "old", "Update") == {"f:data": {"f:a": {}},
                                           "f:metadata": {"f:finalizers": {'v:"x"': {}}}}


def test_apply_and_update_leave_their_inputs_alone() -> None:
    live = update_cm(None, configmap({"a": "1"}, labels={"l": "1"}), "writer")
    applied = configmap({"b": "1"}, labels={"m": "1"})
    before = copy.deepcopy((live, applied))
    obj = apply_cm(live, applied, "kubectl")
    obj["metadata"]["labels"]["n"] = "2"
    update_cm(live, obj, "other")

    assert (live, applied) == before


def test_applied_null_owns_and_removes_the_field() -> None:
    live = apply_cm(None, configmap({"a": "1", "b": "1"}), "kubectl")
    obj = apply_cm(live, configmap({"a": None, "b": "1"}), "kubectl")  # type: ignore[dict-item]

    assert obj["data"] == {"b": "1"}
    assert owned(obj, "kubectl") == {"f:data": {"f:a": {}, "f:b": {}}}


def test_fields_v1_round_trip_and_path_text() -> None:
    fields = {"f:metadata": {"f:finalizers": {'v:"a"': {}}, "f:labels": {"f:app": {}}},
              "f:spec": {"f:ports": {'k:{"port":80}': {".": {}, "f:port": {}}},
                         "f:replicas": {}}}
    paths = from_fields(fields)

    assert to_fields(paths) == fields
    assert [path_string(p) for p in iterate(paths)] == [
        '.metadata.finalizers[="a"]', ".metadata.labels.app", ".spec.replicas",
        ".spec.ports[port=80]", ".spec.ports[port=80].port"]
