"""Field ownership (metadata.managedFields) and server-side apply, as kube-apiserver keeps them.

`apply` is the apply-patch verb and `update` the bookkeeping for every other write; both are
pure functions over plain JSON objects that return the object to store. The semantics are
sigs.k8s.io/structured-merge-diff's, steered by the strategic-merge-patch metadata that
`controlplane.api.patch.schema_for` holds (merge keys make associative lists and sets).
Modules: fieldpath (paths, sets, FieldsV1), typed (walks over objects), managers (entries),
fieldmanager (the two verbs and the conflict error).
"""

from controlplane.api.managedfields.fieldmanager import (
    CONFLICT_CAUSE,
    LAST_APPLIED,
    apply,
    conflict_error,
    update,
)

__all__ = [
    # the two verbs
    "apply",
    "update",
    # conflicts and kubectl's annotation
    "conflict_error",
    "CONFLICT_CAUSE",
    "LAST_APPLIED",
]
