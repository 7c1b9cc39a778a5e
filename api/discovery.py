"""What kubectl asks before anything else: the version, the groups, the resources, OpenAPI v3.

Legacy discovery (APIVersions, APIGroupList, APIResourceList), and the aggregated form when it is asked for.
The OpenAPI documents are api/openapi.py's.
"""
from __future__ import annotations

from typing import Any

from api.registry import AGGREGATED_APIS, GROUPS, Resource, in_group_version

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+raftkube", "gitCommit": "", "gitTreeState": "clean",
           "buildDate": "2026-11-26T00:00:00Z", "goVersion": "python", "compiler": "cpython",
           "platform": "linux/amd64"}

# Subresources that are another kind: (group, version, kind, verbs); "{}" in a kind is the resource's.
_SUB_KINDS = {"scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
              "eviction": ("policy", "v1", "Eviction", ["create"]),
              "binding": ("", "v1", "Binding", ["create"]),
              "log": (None, None, None, ["get"]),
              "finalize": (None, None, None, ["update"]),
              "token": ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
              "status": (None, None, None, ["get", "patch", "update"]),
              "exec": ("", "v1", "PodExecOptions", ["create", "get"]),
              "attach": ("", "v1", "PodAttachOptions", ["create", "get"]),
              "portforward": ("", "v1", "PodPortForwardOptions", ["create", "get"]),
              "proxy": ("", "v1", "{}ProxyOptions", ["create", "delete", "get", "patch", "update"])}


def _sub_kind(res: Resource, sub: str) -> tuple[str | None, str | None, str, list[str]]:
    """A subresource's (group, version, kind, verbs), its kind spelled out for this resource."""
    g, v, kind, verbs = _SUB_KINDS[sub]
    return g, v, (kind or "{}").format(res.kind), verbs


def _groups() -> dict[str, list[str]]:
    """Every group and its versions: the stored resources' and the aggregated ones' (metrics.k8s.io)."""
    groups = {group: list(versions) for group, versions in GROUPS.items()}
    for res in AGGREGATED_APIS:
        groups.setdefault(res.group, [])
        if res.version not in groups[res.group]:
            groups[res.group].append(res.version)
    return groups


def _resources(group: str, version: str) -> list[Resource]:
    return in_group_version(group, version) + [r for r in AGGREGATED_APIS if (r.group, r.version) == (group, version)]


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def api_groups() -> dict[str, Any]:
    groups = []
    for group, versions in _groups().items():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _aliases(res: Resource) -> dict[str, list[str]]:
    """The other names kubectl knows a resource by: its short names (`po`) and its categories (`all`)."""
    out = {}
    if res.short_names:
        out["shortNames"] = list(res.short_names)
    if res.categories:
        out["categories"] = list(res.categories)
    return out


def _entry(res: Resource) -> dict[str, Any]:
    return {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced, "kind": res.kind,
            "verbs": list(res.verbs), **_aliases(res)}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    resources = _resources(group, version)
    if not resources:
        return None
    entries = []
    for res in resources:
        entries.append(_entry(res))
        for sub in res.subresources:
            g, v, kind, verbs = _sub_kind(res, sub)
            entry = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                     "kind": kind, "verbs": verbs}
            if g is not None:
                entry.update(group=g, version=v)
            entries.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": resources[0].group_version,
            "resources": entries}


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
                           "scope": "Namespaced" if res.namespaced else "Cluster", "verbs": list(res.verbs),
                           **_aliases(res)}
    subs = []
    for sub in res.subresources:
        g, v, kind, verbs = _sub_kind(res, sub)
        subs.append({"subresource": sub, "verbs": verbs,
                     "responseKind": {"group": g if g is not None else res.group,
                                      "version": v or res.version, "kind": kind}})
    if subs:
        out["subresources"] = subs
    return out


def aggregated(core: bool, version: str) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (the core group) or /apis (every named group)."""
    items = []
    for group, versions in _groups().items():
        if (group == "") != core:
            continue
        items.append({"metadata": {"name": group} if group else {},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_discovered(r) for r in _resources(group, v)]}
                                   for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {},
            "items": items}
