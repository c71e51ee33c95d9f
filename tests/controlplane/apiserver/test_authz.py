from __future__ import annotations

import pytest

from controlplane.api import errors
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import AlwaysAllow, AlwaysDeny, Attributes, check

USER = UserInfo("jane", ("devs", "system:authenticated"))


def test_always_allow_admits_everything() -> None:
    check(AlwaysAllow(), Attributes(USER, "delete", "apps", "deployments", namespace="x"))


def test_denial_is_kubernetes_forbidden() -> None:
    with pytest.raises(errors.Forbidden) as caught:
        check(AlwaysDeny(), Attributes(USER, "get", "", "pods", namespace="default", name="p"))
    assert caught.value.message == (
        'pods "p" is forbidden: User "jane" cannot get resource "pods" in API group "" in the '
        'namespace "default": everything is denied')
    assert caught.value.status()["code"] == 403
    with pytest.raises(errors.Forbidden, match='cannot list resource "deployments" in API '
                       'group "apps" at the cluster scope'):
        check(AlwaysDeny(), Attributes(USER, "list", "apps", "deployments"))
