"""Authorization: may this user do this verb on this resource? One pluggable decision point.

The request's attributes are Kubernetes' (user, verb, API group, resource, subresource,
namespace, name; or a non-resource path). `AlwaysAllow` admits every authenticated user, the
mode until RBAC lands; `AlwaysDeny` exists for tests. A denial is the 403 Kubernetes answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controlplane.api import errors
from controlplane.apiserver.authn import UserInfo


@dataclass(frozen=True)
class Attributes:
    user: UserInfo
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # for non-resource requests (/healthz, /version, ...)


class Authorizer(Protocol):
    def allowed(self, attributes: Attributes) -> tuple[bool, str]:
        """(allowed, reason)."""


class AlwaysAllow:
    def allowed(self, attributes: Attributes) -> tuple[bool, str]:
        return True, ""


class AlwaysDeny:
    def allowed(self, attributes: Attributes) -> tuple[bool, str]:
        return False, "everything is denied"


def forbidden(attributes: Attributes, reason: str = "") -> errors.Forbidden:
    """Kubernetes' wording: `pods "x" is forbidden: User "u" cannot get resource "pods" ...`."""
    a = attributes
    if not a.resource:
        return errors.Forbidden(f'forbidden: User "{a.user.name}" cannot {a.verb} path '
                                f'"{a.path}"' + (f": {reason}" if reason else ""))
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    group = f'"{a.group}"' if a.group else '""'
    scope = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
    subject = f'{a.resource}{"." + a.group if a.group else ""} "{a.name}"' if a.name else (
        f'{a.resource}{"." + a.group if a.group else ""}')
    return errors.Forbidden(
        f'{subject} is forbidden: User "{a.user.name}" cannot {a.verb} resource "{resource}" '
        f"in API group {group}{scope}" + (f": {reason}" if reason else ""),
        name=a.name, group=a.group, kind=a.resource)


def check(authorizer: Authorizer, attributes: Attributes) -> None:
    allowed, reason = authorizer.allowed(attributes)
    if not allowed:
        raise forbidden(attributes, reason)
