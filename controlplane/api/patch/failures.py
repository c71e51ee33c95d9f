"""How kube-apiserver answers a patch it cannot apply: codes, reasons and message texts.

The apiserver's PATCH handler maps k8s.io/apimachinery's mergepatch sentinel errors to 400
BadRequest or 422 Invalid (with a generic message, as it does for every failed JSON patch
operation) and passes any other strategic-merge-patch error on as a bare Go error: HTTP 500 with
an empty reason. The texts here are those errors' texts, so clients see what they would see.
"""

from __future__ import annotations

from typing import Any

from controlplane.api.errors import InternalError
from controlplane.api.patch.gotext import go_type, go_value

# NewGenericServerResponse(422) text: a failed JSON patch operation, a list of lists in an SMP.
OPERATION_FAILED = "the server rejected our request due to an error in our request"

# mergepatch sentinel errors answered with 400 BadRequest.
BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
# ... and one answered with the generic 422 Invalid (this text is only the chained cause).
NO_LIST_OF_LISTS = "lists of lists are not supported"


class StrategicMergeError(InternalError):
    """A patch failure kube-apiserver passes on as a bare Go error: 500 with an empty reason.

    kubectl prints these as `Error from server: <message>` (no reason in parentheses), e.g.
    `map: map[image:nginx] does not contain declared merge key: name`.
    """

    reason = ""


def no_merge_key(item: Any, merge_key: str) -> str:
    """The text of mergepatch.ErrNoMergeKey for a list item lacking its merge key."""
    return f"map: {go_value(item)} does not contain declared merge key: {merge_key}"


def bad_arg_type(expected: Any, actual: Any) -> str:
    """The text of mergepatch.ErrBadArgType: a value of the wrong JSON type."""
    return f"expected a {go_type(expected)}, but received a {go_type(actual)}"
