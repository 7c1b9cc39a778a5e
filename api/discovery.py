"""What kubectl asks before anything else: the version, the groups, the resources, OpenAPI v3.

Legacy discovery only (APIVersions, APIGroupList, APIResourceList): kubectl falls back to it when
the aggregated form is not offered (KUBECTL-WIRE.md). The OpenAPI documents are the minimal ones
kubectl needs to hand field validation to the server (`fieldValidation=Strict|Warn|Ignore`).
"""
from __future__ import annotations

from typing import Any

from api.registry import GROUPS, Resource, in_group_version

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+raftkube", "gitCommit": "", "gitTreeState": "clean",
           "buildDate": "2026-11-26T00:00:00Z", "goVersion": "python", "compiler": "cpython",
           "platform": "linux/amd64"}
OPENAPI_HASH = "raftkube-1"

# Subresources that are another kind: (group, version, kind, verbs).
_SUB_KINDS = {"scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
              "eviction": ("policy", "v1", "Eviction", ["create"]),
              "binding": ("", "v1", "Binding", ["create"]),
              "log": (None, None, None, ["get"]),
              "finalize": (None, None, None, ["update"]),
              "token": ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
              "status": (None, None, None, ["get", "patch", "update"])}


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def api_groups() -> dict[str, Any]:
    groups = []
    for group, versions in GROUPS.items():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _entry(res: Resource) -> dict[str, Any]:
    out = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced, "kind": res.kind,
           "verbs": list(res.verbs)}
    if res.short_names:
        out["shortNames"] = list(res.short_names)
    return out


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    resources = in_group_version(group, version)
    if not resources:
        return None
    entries = []
    for res in resources:
        entries.append(_entry(res))
        for sub in res.subresources:
            g, v, kind, verbs = _SUB_KINDS[sub]
            entry = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                     "kind": kind or res.kind, "verbs": verbs}
            if g is not None:
                entry.update(group=g, version=v)
            entries.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": resources[0].group_version,
            "resources": entries}


def openapi_root() -> dict[str, Any]:
    paths = {}
    for group, versions in GROUPS.items():
        for v in versions:
            name = f"apis/{group}/{v}" if group else f"api/{v}"
            paths[name] = {"serverRelativeURL": f"/openapi/v3/{name}?hash={OPENAPI_HASH}"}
    return {"paths": paths}


def openapi_document(group: str, version: str) -> dict[str, Any] | None:
    """Per kind, a `patch` operation that names its group-version-kind and takes fieldValidation."""
    resources = in_group_version(group, version)
    if not resources:
        return None
    paths = {}
    for res in resources:
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        path = (f"{base}/namespaces/{{namespace}}/{res.plural}/{{name}}" if res.namespaced
                else f"{base}/{res.plural}/{{name}}")
        paths[path] = {"patch": {
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": res.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "raftkube", "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def aggregated_version(accept: str) -> str | None:
    """v2 or v2beta1 when the client asks for aggregated discovery (and which), else None."""
    for part in accept.split(","):
        if "g=apidiscovery.k8s.io" in part and "as=APIGroupDiscoveryList" in part:
            for version in ("v2", "v2beta1"):
                if f"v={version}" in part.replace(" ", "").split(";"):
                    return version
    return None


def _discovered(res: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {"resource": res.plural, "singularResource": res.singular,
                           "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
                           "scope": "Namespaced" if res.namespaced else "Cluster", "verbs": list(res.verbs)}
    if res.short_names:
        out["shortNames"] = list(res.short_names)
    subs = []
    for sub in res.subresources:
        g, v, kind, verbs = _SUB_KINDS[sub]
        subs.append({"subresource": sub, "verbs": verbs,
                     "responseKind": {"group": g if g is not None else res.group,
                                      "version": v or res.version, "kind": kind or res.kind}})
    if subs:
        out["subresources"] = subs
    return out


def aggregated(core: bool, version: str) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (the core group) or /apis (every named group)."""
    items = []
    for group, versions in GROUPS.items():
        if (group == "") != core:
            continue
        items.append({"metadata": {"name": group} if group else {},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_discovered(r) for r in in_group_version(group, v)]}
                                   for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {},
            "items": items}
