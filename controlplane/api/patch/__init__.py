"""The three PATCH body formats, as pure functions from (object, patch) to a new object.

`apply_merge_patch` (RFC 7386), `apply_json_patch` (RFC 6902) and `apply_strategic_merge_patch`
(Kubernetes' strategic merge patch, steered by `schema_for(group, version, kind)`). None of them
mutates its inputs or does I/O; failures raise the `APIError` kube-apiserver would answer with.
"""

from controlplane.api.patch.failures import StrategicMergeError
from controlplane.api.patch.jsonpatch import MAX_OPERATIONS, apply_json_patch
from controlplane.api.patch.merge import apply_merge_patch
from controlplane.api.patch.schema import FieldMeta, Struct, schema_for
from controlplane.api.patch.strategic import apply_strategic_merge_patch

__all__ = [
    # patch functions
    "apply_merge_patch",
    "apply_json_patch",
    "apply_strategic_merge_patch",
    # strategic merge patch metadata
    "schema_for",
    "Struct",
    "FieldMeta",
    # errors and limits
    "StrategicMergeError",
    "MAX_OPERATIONS",
]
