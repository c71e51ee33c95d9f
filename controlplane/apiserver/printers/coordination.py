"""The coordination.k8s.io leases printer: HOLDER and AGE.

Owns the lease row; HOLDER is spec.holderIdentity, empty when nobody holds the lease (as
kube-apiserver prints it), which is how `kubectl get leases -n kube-node-lease` shows
heartbeats and `-n kube-system` shows leader election.
"""

from __future__ import annotations

from .common import AGE, NAME, Cell, Column, Obj, PrintContext, Printer, age, dig, name_of, text


def _lease_cells(lease: Obj, ctx: PrintContext) -> list[Cell]:
    return [name_of(lease), text(dig(lease, "spec", "holderIdentity")), age(lease, ctx)]


PRINTERS = {
    ("coordination.k8s.io", "leases"): Printer(
        (NAME, Column("Holder", description="Identity of the lease's current holder."), AGE),
        _lease_cells,
    ),
}
