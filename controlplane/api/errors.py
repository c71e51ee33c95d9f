"""API errors as Kubernetes `Status` objects: one exception class per reason, each with its code.

Handlers raise these; the HTTP layer turns any `APIError` into the JSON Status kubectl renders
(`Error from server (NotFound): pods "x" not found`). Messages follow Kubernetes' wording, and
`Invalid` carries every field error at once as `details.causes`, with `details.kind` the Kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field error: `reason` (FieldValueRequired, ...), message, and the field's path."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


# Kubernetes' field error types (k8s.io/apimachinery/pkg/util/validation/field) and their text.
FIELD_REQUIRED = "FieldValueRequired"  # "Required value"
FIELD_INVALID = "FieldValueInvalid"  # "Invalid value: <value>: <detail>"
FIELD_NOT_SUPPORTED = "FieldValueNotSupported"  # 'Unsupported value: "x": supported values: ...'
FIELD_DUPLICATE = "FieldValueDuplicate"  # "Duplicate value: <value>"
FIELD_FORBIDDEN = "FieldValueForbidden"  # "Forbidden: <detail>"
FIELD_TOO_LONG = "FieldValueTooLong"
FIELD_UNKNOWN = "FieldValueUnknown"  # unknown field under fieldValidation=Strict


class APIError(Exception):
    """An error the API answers with a `Status`; subclasses fix the code and reason."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, name: str = "", group: str = "", kind: str = "",
                 causes: list[Cause] | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        """Return the `Status` object for this error."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        status: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if details:
            status["details"] = details
        return status


def qualified(resource: str, group: str) -> str:
    """`pods` or `deployments.apps`: how Kubernetes names a resource in messages."""
    return f"{resource}.{group}" if group else resource


class BadRequest(APIError):
    code, reason = 400, "BadRequest"


class Unauthorized(APIError):
    code, reason = 401, "Unauthorized"


class Forbidden(APIError):
    code, reason = 403, "Forbidden"


class NotFound(APIError):
    code, reason = 404, "NotFound"

    @classmethod
    def of(cls, resource: str, group: str, name: str) -> NotFound:
        return cls(f'{qualified(resource, group)} "{name}" not found', name=name, group=group,
                   kind=resource)


class MethodNotAllowed(APIError):
    code, reason = 405, "MethodNotAllowed"


class NotAcceptable(APIError):
    code, reason = 406, "NotAcceptable"


class AlreadyExists(APIError):
    code, reason = 409, "AlreadyExists"

    @classmethod
    def of(cls, resource: str, group: str, name: str) -> AlreadyExists:
        return cls(f'{qualified(resource, group)} "{name}" already exists', name=name,
                   group=group, kind=resource)


class Conflict(APIError):
    code, reason = 409, "Conflict"

    @classmethod
    def modified(cls, resource: str, group: str, name: str) -> Conflict:
        return cls(
            f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": the object '
            "has been modified; please apply your changes to the latest version and try again",
            name=name, group=group, kind=resource)


class Gone(APIError):
    code, reason = 410, "Gone"


class Expired(APIError):
    code, reason = 410, "Expired"


class RequestEntityTooLarge(APIError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(APIError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(APIError):
    code, reason = 422, "Invalid"

    @classmethod
    def of(cls, kind: str, group: str, name: str, causes: list[Cause]) -> Invalid:
        fields = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
        return cls(f'{kind}{"." + group if group else ""} "{name}" is invalid: {fields}',
                   name=name, group=group, kind=kind, causes=causes)


class TooManyRequests(APIError):
    code, reason = 429, "TooManyRequests"


class InternalError(APIError):
    code, reason = 500, "InternalError"


class Unknown(APIError):
    """A plain server-side failure Kubernetes passes on without a reason (500, reason "")."""

    code, reason = 500, ""


class ServiceUnavailable(APIError):
    code, reason = 503, "ServiceUnavailable"


class Timeout(APIError):
    code, reason = 504, "Timeout"
