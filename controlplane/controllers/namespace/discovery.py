"""Discovery through the API, as client-go's ServerPreferredResources: what the server serves.

`preferred_resources` reads `/api/v1`, `/apis` and each group's preferred version, and returns
every top-level resource (subresources such as `pods/status` are left out) with its kind, scope
and verbs. A group whose document cannot be read is reported in `GroupDiscoveryFailed` beside
the resources that could be read, so a caller works with what it has (Kubernetes' namespace
deleter does); a failure of `/api/v1` or `/apis` itself is raised.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.api import errors
from controlplane.client.rest import Resource
from controlplane.controllers.base import SyncError

Object = dict[str, Any]


class DiscoveryClient(Protocol):
    """The raw request of `RESTClient`, which discovery needs."""

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: dict[str, str] | None = None,
                      content_type: str = "application/json",
                      timeout: float | None = None) -> Object: ...


@dataclass(frozen=True)
class APIResource:
    """One resource as discovery shows it."""

    resource: Resource
    kind: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def group_resource(self) -> str:
        """`pods.` or `deployments.apps`, as Kubernetes names a GroupResource in messages."""
        return f"{self.resource.resource}.{self.resource.group}"

    def supports(self, *verbs: str) -> bool:
        return all(v in self.verbs for v in verbs)


class GroupDiscoveryFailed(SyncError):
    """Some group versions could not be discovered (client-go's ErrGroupDiscoveryFailed)."""

    def __init__(self, groups: dict[str, str]) -> None:
        self.groups = dict(groups)
        listed = ", ".join(f"{gv}: {err}" for gv, err in sorted(groups.items()))
        super().__init__(f"unable to retrieve the complete list of server APIs: {listed}")


def parse_resource_list(group_version: str, doc: Object) -> list[APIResource]:
    """The top-level resources of one APIResourceList document."""
    group, _, version = group_version.rpartition("/")
    found = []
    for entry in doc.get("resources") or []:
        name = str(entry.get("name", ""))
        if not name or "/" in name:
            continue
        found.append(APIResource(Resource(group, version, name), str(entry.get("kind", "")),
                                 bool(entry.get("namespaced")),
                                 frozenset(entry.get("verbs") or [])))
    return found


def group_version_path(group_version: str) -> str:
    return f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"


async def resources_of(client: DiscoveryClient, group_version: str) -> list[APIResource]:
    """The resources of one group version (`v1`, `apps/v1`)."""
    doc = await client.request("GET", group_version_path(group_version))
    return parse_resource_list(group_version, doc)


async def preferred_resources(client: DiscoveryClient
                              ) -> tuple[list[APIResource], GroupDiscoveryFailed | None]:
    """Every resource of core/v1 and of each group's preferred version, and the failures."""
    core, groups = await asyncio.gather(client.request("GET", "/api/v1"),
                                        client.request("GET", "/apis"))
    found = parse_resource_list("v1", core)
    versions = [str((g.get("preferredVersion") or {}).get("groupVersion", ""))
                for g in groups.get("groups") or []]
    versions = [gv for gv in versions if gv]
    results = await asyncio.gather(*(resources_of(client, gv) for gv in versions),
                                   return_exceptions=True)
    failed: dict[str, str] = {}
    for gv, result in zip(versions, results, strict=True):
        if isinstance(result, errors.APIError):
            failed[gv] = str(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            found.extend(result)
    return found, GroupDiscoveryFailed(failed) if failed else None
