"""Printers for rbac.authorization.k8s.io bindings: ROLE and AGE, wide USERS/GROUPS/SA.

Owns rolebindings and clusterrolebindings: ROLE is "Kind/name" of the roleRef, and the wide
columns split the subjects by kind, service accounts as "namespace/name". Roles and
clusterroles have no printer in kube-apiserver, so they fall to the default table.
"""

from __future__ import annotations

from .common import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    age,
    items,
    mapping,
    name_of,
    text,
)


def subjects_strings(binding: Obj) -> tuple[list[str], list[str], list[str]]:
    """Split a binding's subjects into users, groups and service accounts ("ns/name")."""
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in items(binding.get("subjects")):
        kind, name = subject.get("kind"), text(subject.get("name"))
        if kind == "ServiceAccount":
            accounts.append(f"{text(subject.get('namespace'))}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return users, groups, accounts


def _binding_cells(binding: Obj, ctx: PrintContext) -> list[Cell]:
    ref = mapping(binding.get("roleRef"))
    users, groups, accounts = subjects_strings(binding)
    return [
        name_of(binding),
        f"{text(ref.get('kind'))}/{text(ref.get('name'))}",
        age(binding, ctx),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


def _binding_printer(noun: str) -> Printer:
    return Printer(
        (
            NAME,
            Column("Role", description="The role this binding grants, as Kind/name."),
            AGE,
            Column("Users", priority=1, description=f"Users in the {noun}"),
            Column("Groups", priority=1, description=f"Groups in the {noun}"),
            Column("ServiceAccounts", priority=1, description=f"ServiceAccounts in the {noun}"),
        ),
        _binding_cells,
    )


_GROUP = "rbac.authorization.k8s.io"

PRINTERS = {
    (_GROUP, "rolebindings"): _binding_printer("roleBinding"),
    (_GROUP, "clusterrolebindings"): _binding_printer("clusterRoleBinding"),
}
