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


def test_request_attributes_follow_kubernetes() -> None:
    from aiohttp.test_utils import make_mocked_request

    from controlplane.apiserver.server import attributes_of

    def attrs(method: str, path: str) -> tuple[str, str, str, str, str, str]:
        a = attributes_of(make_mocked_request(method, path), USER)
        return a.verb, a.group, a.resource, a.subresource, a.namespace, a.name

    assert attrs("GET", "/api/v1/namespaces/ns/pods") == ("list", "", "pods", "", "ns", "")
    assert attrs("GET", "/api/v1/namespaces/ns/pods?watch=true")[0] == "watch"
    assert attrs("GET", "/apis/apps/v1/namespaces/ns/deployments/d/scale") == (
        "get", "apps", "deployments", "scale", "ns", "d")
    assert attrs("DELETE", "/api/v1/namespaces/ns/configmaps")[0] == "deletecollection"
    assert attrs("PATCH", "/api/v1/nodes/n1/status") == ("patch", "", "nodes", "status", "", "n1")
    assert attrs("GET", "/healthz")[2] == ""
