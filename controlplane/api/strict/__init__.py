"""Unknown and duplicate fields in request bodies, as `fieldValidation` (Ignore/Warn/Strict) asks.

kubectl sends `fieldValidation=Strict` on apply, create -f and replace, and expects the apiserver
to reject fields the kind lacks. fieldvalidation walks a body against the schema tables (the
protobuf ones plus schema_core/schema_groups here, which cover the rest of the served kinds).
"""

from controlplane.api.strict.fieldvalidation import (
    check,
    message_for,
    prune,
    strict_errors,
    unknown_fields,
    validate_directive,
)

__all__ = ["check", "message_for", "prune", "strict_errors", "unknown_fields",
           "validate_directive"]
