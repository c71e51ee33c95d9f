"""Printers for the apps group: deployments, replicasets, daemonsets and statefulsets.

Owns the READY "ready/desired" strings of deployments and statefulsets, the desired/current/
ready counters of replicasets and daemonsets, and their wide CONTAINERS / IMAGES / SELECTOR
cells. spec.replicas reads as 1 when absent, the API default kube-apiserver would have applied.
"""

from __future__ import annotations

from .common import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    age,
    dig,
    format_label_selector,
    format_labels,
    name_of,
    number,
    selector_column,
    selector_string,
    template_cells,
)


def _replicas(obj: Obj) -> int:
    return number(dig(obj, "spec", "replicas"), 1)


def _status(obj: Obj, field: str) -> int:
    return number(dig(obj, "status", field))


def _deployment_cells(deployment: Obj, ctx: PrintContext) -> list[Cell]:
    names, images = template_cells(deployment)
    selector = selector_string(dig(deployment, "spec", "selector"))
    return [
        name_of(deployment),
        f"{_status(deployment, 'readyReplicas')}/{_replicas(deployment)}",
        _status(deployment, "updatedReplicas"),
        _status(deployment, "availableReplicas"),
        age(deployment, ctx),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


def _replicaset_cells(replicaset: Obj, ctx: PrintContext) -> list[Cell]:
    names, images = template_cells(replicaset)
    return [
        name_of(replicaset),
        _replicas(replicaset),
        _status(replicaset, "replicas"),
        _status(replicaset, "readyReplicas"),
        age(replicaset, ctx),
        names,
        images,
        format_label_selector(dig(replicaset, "spec", "selector")),
    ]


def _daemonset_cells(daemonset: Obj, ctx: PrintContext) -> list[Cell]:
    names, images = template_cells(daemonset)
    return [
        name_of(daemonset),
        _status(daemonset, "desiredNumberScheduled"),
        _status(daemonset, "currentNumberScheduled"),
        _status(daemonset, "numberReady"),
        _status(daemonset, "updatedNumberScheduled"),
        _status(daemonset, "numberAvailable"),
        format_labels(dig(daemonset, "spec", "template", "spec", "nodeSelector")),
        age(daemonset, ctx),
        names,
        images,
        format_label_selector(dig(daemonset, "spec", "selector")),
    ]


def _statefulset_cells(statefulset: Obj, ctx: PrintContext) -> list[Cell]:
    names, images = template_cells(statefulset)
    return [
        name_of(statefulset),
        f"{_status(statefulset, 'readyReplicas')}/{_replicas(statefulset)}",
        age(statefulset, ctx),
        names,
        images,
    ]


_READY = Column("Ready", description="Number of the pod with ready state")

PRINTERS = {
    ("apps", "deployments"): Printer(
        (
            NAME,
            _READY,
            Column("Up-to-date", description="Pods running the latest template."),
            Column("Available", description="Pods available for at least minReadySeconds."),
            AGE,
            CONTAINERS,
            IMAGES,
            selector_column(),
        ),
        _deployment_cells,
    ),
    ("apps", "replicasets"): Printer(
        (
            NAME,
            Column("Desired", "integer", description="Number of desired pods."),
            Column("Current", "integer", description="Most recently observed number of pods."),
            Column("Ready", "integer", description="Number of ready pods."),
            AGE,
            CONTAINERS,
            IMAGES,
            selector_column(),
        ),
        _replicaset_cells,
    ),
    ("apps", "daemonsets"): Printer(
        (
            NAME,
            Column("Desired", "integer", description="Nodes that should run the daemon pod."),
            Column("Current", "integer", description="Nodes running at least one daemon pod."),
            Column("Ready", "integer", description="Nodes whose daemon pod is ready."),
            Column("Up-to-date", "integer", description="Nodes running the updated daemon pod."),
            Column("Available", "integer", description="Nodes whose daemon pod is available."),
            Column("Node Selector", description="Node selector of the pod template."),
            AGE,
            CONTAINERS,
            IMAGES,
            selector_column(),
        ),
        _daemonset_cells,
    ),
    ("apps", "statefulsets"): Printer(
        (NAME, _READY, AGE, CONTAINERS, IMAGES),
        _statefulset_cells,
    ),
}
