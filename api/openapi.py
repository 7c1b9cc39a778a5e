"""OpenAPI v3 (one document per group-version) and v2 (one for all), with Kubernetes 1.32's real schemas.

The schemas are api/openapi_definitions.json (tools/gen_openapi_definitions.py says where they come from),
written the way kube-apiserver publishes them, so that `kubectl explain deployment.spec.strategy` prints the
fields, clients validate before they send, and kubectl knows how each list merges:

- JSON Schema's `"type": ["string", "null"]` becomes `"type": "string"`;
- a `$ref` with neighbours (a description, a patch strategy) becomes `allOf: [{$ref}]` beside them, since
  OpenAPI ignores whatever stands next to a bare `$ref`;
- IntOrString and Quantity become strings (`format: int-or-string` for the first), as Kubernetes writes them.

Each v3 document carries, per kind, the operations kubectl looks at: a patch that names the group-version-kind
and takes `fieldValidation` (so kubectl leaves field validation to the server).
"""
from __future__ import annotations

import hashlib
from typing import Any

from api import schema, schema_refs
from api.discovery import VERSION
from api.registry import GROUPS, Resource, in_group_version

Obj = dict[str, Any]
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
HASH = hashlib.sha256(repr(sorted(schema.DEFINITIONS)).encode() + schema.KUBERNETES.encode()).hexdigest()[:16].upper()
PATCH_TYPES = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json"]


def _convert(node: Obj, ref_prefix: str) -> Obj:
    """One JSON Schema node as an OpenAPI schema (its properties, items and map values too)."""
    out: Obj = {}
    for key, value in node.items():
        if key in ("$ref", "type", "$schema", "$id"):
            continue
        if key == "properties":
            out[key] = {name: _convert(prop, ref_prefix) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, ref_prefix)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_convert(alt, ref_prefix) for alt in value]
        else:
            out[key] = value
    kinds = node.get("type")
    if isinstance(kinds, list):
        kinds = next((k for k in kinds if k != "null"), None)
    if kinds:
        out["type"] = kinds
    if "$ref" in node:
        ref = {"$ref": ref_prefix + node["$ref"].rsplit("/", 1)[1]}
        if not out:
            return ref
        out["allOf"] = [ref]
    return out


def _definition(name: str, ref_prefix: str) -> Obj:
    d = schema.DEFINITIONS[name]
    if name == INT_OR_STRING:
        return {"description": d.get("description", ""), "type": "string", "format": "int-or-string"}
    if name == QUANTITY:
        return {"description": d.get("description", ""), "type": "string"}
    return _convert(d, ref_prefix)


def _closure(roots: list[str]) -> list[str]:
    return sorted(schema_refs.closure(roots, schema.DEFINITIONS))


def _kind_path(res: Resource) -> str:
    base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    return (f"{base}/namespaces/{{namespace}}/{res.plural}/{{name}}" if res.namespaced
            else f"{base}/{res.plural}/{{name}}")


def root_v3() -> Obj:
    paths = {}
    for group, versions in GROUPS.items():
        for v in versions:
            name = f"apis/{group}/{v}" if group else f"api/{v}"
            paths[name] = {"serverRelativeURL": f"/openapi/v3/{name}?hash={HASH}"}
    return {"paths": paths}


def document_v3(group: str, version: str) -> Obj | None:
    resources = in_group_version(group, version)
    if not resources:
        return None
    ref = "#/components/schemas/"
    paths, roots = {}, []
    for res in resources:
        name = schema.definition_for(res.group, res.version, res.kind)
        roots.append(name)
        gvk = {"group": group, "version": version, "kind": res.kind}
        answer = {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref + name}}}}}
        operation = {"x-kubernetes-group-version-kind": gvk, "responses": answer,
                     "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}}]}
        paths[_kind_path(res)] = {
            "get": {**operation, "x-kubernetes-action": "get"},
            "put": {**operation, "x-kubernetes-action": "put",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": ref + name}}}}},
            "patch": {**operation, "x-kubernetes-action": "patch",
                      "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in PATCH_TYPES}}}}
    schemas = {n: _definition(n, ref) for n in _closure(roots)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


def document_v2() -> Obj:
    """Swagger 2.0, every definition (JSON only: kubectl reads v3)."""
    ref = "#/definitions/"
    paths = {}
    for group, versions in GROUPS.items():
        for version in versions:
            for res in in_group_version(group, version):
                name = schema.definition_for(res.group, res.version, res.kind)
                gvk = {"group": group, "version": version, "kind": res.kind}
                paths[_kind_path(res)] = {"get": {"x-kubernetes-group-version-kind": gvk,
                                                  "x-kubernetes-action": "get", "produces": ["application/json"],
                                                  "responses": {"200": {"description": "OK",
                                                                        "schema": {"$ref": ref + name}}}}}
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]}, "paths": paths,
            "definitions": {n: _definition(n, ref) for n in sorted(schema.DEFINITIONS)}}
