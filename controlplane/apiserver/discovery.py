"""Discovery documents, in both forms kubectl and the Python client read, plus /version and a
minimal OpenAPI v3 (one PATCH operation per kind advertising `fieldValidation`, which is what
kubectl's apply/create -f/replace look for before trusting server-side validation).

Everything is derived from `registry.resources`, so a resource added there appears everywhere.
"""

from __future__ import annotations

from typing import Any

from controlplane.apiserver.registry.resources import (
    GROUP_VERSIONS,
    RESOURCES,
    ResourceInfo,
    in_group_version,
)

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBERNETES_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.4-pinnace",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z", "goVersion": "python3", "compiler": "pinnace",
    "platform": "linux/amd64",
}


def wants_aggregated(accept: str | None) -> bool:
    return bool(accept) and "as=APIGroupDiscoveryList" in str(accept)


def _aggregated_resource(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": info.resource,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular_name,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    if info.subresources:
        entry["subresources"] = [{
            "subresource": sub.name,
            "responseKind": {"group": sub.group or info.group,
                             "version": sub.version or info.version,
                             "kind": sub.kind or info.kind},
            "verbs": list(sub.verbs)} for sub in info.subresources]
    return entry


def aggregated(core: bool) -> dict[str, Any]:
    """`/api` (core only) or `/apis` (named groups) as an APIGroupDiscoveryList."""
    items = []
    for group, versions in GROUP_VERSIONS:
        if (group == "") != core:
            continue
        items.append({
            "metadata": {"name": group},
            "versions": [{"version": v, "freshness": "Current",
                          "resources": [_aggregated_resource(i)
                                        for i in in_group_version(group, v)]}
                         for v in versions],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_entry(group: str, versions: tuple[str, ...]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_entry(g, v) for g, v in GROUP_VERSIONS if g]}


def api_group(group: str) -> dict[str, Any] | None:
    for name, versions in GROUP_VERSIONS:
        if name == group and group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}
    return None


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    infos = in_group_version(group, version)
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        entry: dict[str, Any] = {
            "name": info.resource, "singularName": info.singular_name,
            "namespaced": info.namespaced, "kind": info.kind, "verbs": list(info.verbs)}
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        resources.append(entry)
        for sub in info.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{info.resource}/{sub.name}", "singularName": "",
                "namespaced": info.namespaced, "kind": sub.kind or info.kind,
                "verbs": list(sub.verbs)}
            if sub.group:
                sub_entry["group"], sub_entry["version"] = sub.group, sub.version
            resources.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def _openapi_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_root() -> dict[str, Any]:
    paths = {}
    for group, versions in GROUP_VERSIONS:
        for version in versions:
            path = _openapi_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}"}
    return {"paths": paths}


def openapi_group_version(group: str, version: str) -> dict[str, Any] | None:
    infos = in_group_version(group, version)
    if not infos:
        return None
    paths: dict[str, Any] = {}
    for info in infos:
        base = "/" + _openapi_path(group, version)
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        gvk = {"group": group, "version": version, "kind": info.kind}
        params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                  {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                  {"name": "dryRun", "in": "query", "schema": {"type": "string"}}]
        paths[f"{base}{scope}/{info.resource}/{{name}}"] = {
            "patch": {"x-kubernetes-group-version-kind": gvk, "parameters": params},
            "put": {"x-kubernetes-group-version-kind": gvk, "parameters": params},
        }
        paths[f"{base}{scope}/{info.resource}"] = {
            "post": {"x-kubernetes-group-version-kind": gvk, "parameters": params}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths, "components": {"schemas": {}}}


def all_resources() -> tuple[ResourceInfo, ...]:
    return RESOURCES
