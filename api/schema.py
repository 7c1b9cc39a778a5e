"""Kubernetes' own type definitions (api/openapi_definitions.json), and decoding a body against them.

kube-apiserver decodes every body into its Go types before anything else looks at it: a field of the wrong
type is a 400 ("cannot be handled as a Pod"), an unknown field is dropped (or refused, with
fieldValidation=Strict), and a timestamp comes back in one canonical form. `decode` does the same against the
1.32 definitions (tools/gen_openapi_definitions.py says where they come from), so defaulting, validation,
storage, tables and controllers only ever meet values of the types they expect.

It walks the body without recursion; api/bounds.py has already made sure the body is of a size and depth
worth walking.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from api import bounds

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_INT_RANGE = {"int32": (-(1 << 31), (1 << 31) - 1)}
_INT64 = (-(1 << 63), (1 << 63) - 1)
_TIME_FORMATS = {META + "Time": "%Y-%m-%dT%H:%M:%SZ", META + "MicroTime": "%Y-%m-%dT%H:%M:%S.%fZ"}


@dataclass
class Findings:
    unknown: list[str] = field(default_factory=list)  # paths of fields the type does not have
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (path, what is wrong)


def _load() -> tuple[str, dict[str, Any]]:
    with open(os.path.join(os.path.dirname(__file__), "openapi_definitions.json")) as f:
        data = json.load(f)
    return data["kubernetes"], data["definitions"]


KUBERNETES, DEFINITIONS = _load()
BY_KIND: dict[tuple[str, str, str], str] = {
    (gvk["group"], gvk["version"], gvk["kind"]): name
    for name, d in DEFINITIONS.items() for gvk in d.get("x-kubernetes-group-version-kind", [])
}


def definition_for(group: str, version: str, kind: str) -> str | None:
    return BY_KIND.get((group, version, kind))


def resolve(node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A schema node with its $ref followed: (the definition's name or None, the node)."""
    ref = node.get("$ref")
    if ref is None:
        return None, node
    name = ref.rsplit("/", 1)[1]
    return name, DEFINITIONS[name]


def _types(node: dict[str, Any]) -> set[str]:
    if "oneOf" in node:  # IntOrString, Quantity: primitive alternatives
        return set().union(*(_types(alt) for alt in node["oneOf"]))
    kind = node.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def decode(definition: str, body: Any, *, prune: bool = True) -> tuple[Any, Findings]:
    """`body` checked against `definition`: wrong types in `invalid`, unknown fields in `unknown` (and gone
    from the body when `prune`), timestamps rewritten in Kubernetes' form. 413 past the size limits."""
    findings = Findings()
    root = {"": body}
    stack: list[tuple[dict | list, Any, dict[str, Any], str]] = [(root, "", {"$ref": "#/" + definition}, "")]
    bounds.size(body, what="the object")
    while stack:
        parent, key, node, path = stack.pop()
        name, node = resolve(node)
        value = parent[key]
        if value is None:
            continue  # JSON null: the field is absent
        allowed = _types(node)
        actual = _json_type(value)
        if allowed and actual not in allowed and not (actual == "integer" and "number" in allowed):
            findings.invalid.append((path or ".", f"expected {' or '.join(sorted(allowed - {'null'}))}, got {actual}"))
            continue
        if actual == "integer":
            low, high = _INT_RANGE.get(node.get("format"), _INT64)
            if not low <= value <= high:
                findings.invalid.append((path, f"{value} is out of range for {node.get('format') or 'int64'}"))
        elif actual == "string":
            _check_string(parent, key, node, name, path, findings)
        elif actual == "array":
            items = node.get("items")
            if items is not None:
                stack.extend((value, i, items, f"{path}[{i}]") for i in range(len(value)))
        elif actual == "object":
            _children(value, node, path, stack, findings, prune)
    return root[""], findings


def _children(value: dict, node: dict[str, Any], path: str, stack: list, findings: Findings, prune: bool) -> None:
    properties = node.get("properties")
    extra = node.get("additionalProperties")
    for child in list(value):
        where = f"{path}.{child}" if path else child
        if not isinstance(child, str):
            findings.invalid.append((where, "object keys must be strings"))
        elif properties is not None and child in properties:
            stack.append((value, child, properties[child], where))
        elif isinstance(extra, dict):
            stack.append((value, child, extra, where))
        elif properties is not None:  # a typed object without this field
            findings.unknown.append(where)
            if prune:
                del value[child]
        # neither properties nor additionalProperties: free-form (RawExtension, FieldsV1)


def _check_string(parent: dict | list, key: Any, node: dict[str, Any], name: str | None, path: str,
                  findings: Findings) -> None:
    value = parent[key]
    fmt = node.get("format")
    if fmt == "date-time":
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            findings.invalid.append((path, f"{value!r} is not an RFC 3339 time"))
            return
        if when.tzinfo is None:
            findings.invalid.append((path, f"{value!r} has no time zone (RFC 3339 needs Z or an offset)"))
            return
        parent[key] = when.astimezone(timezone.utc).strftime(_TIME_FORMATS.get(name, _TIME_FORMATS[META + "Time"]))
    elif fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            findings.invalid.append((path, "illegal base64 data"))
