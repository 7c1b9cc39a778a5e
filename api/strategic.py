"""Strategic merge patch, as Kubernetes' apimachinery does it: a merge patch whose lists follow their type.

How a list merges is read from the type's definition (api/openapi_definitions.json), the way the Go struct tags
say it, never from the field's name:

    Service.spec.ports        x-kubernetes-patch-strategy: merge, merge key: port   -> items matched by port
    Container.ports           ... merge key: containerPort                         -> by containerPort
    ObjectMeta.finalizers     strategy merge, list-type set                        -> a set of strings
    PodSpec.tolerations       no strategy (atomic)                                 -> replaced whole
    PodSpec.volumes           merge,retainKeys                                     -> by name; $retainKeys honoured

The directives kubectl sends: `$patch: replace|delete|merge` on a map or a list item, `$setElementOrder/FIELD`
(the order the merged list must end in), `$retainKeys` (the keys a map keeps), `$deleteFromPrimitiveList/FIELD`.
"""
from __future__ import annotations

import copy
from typing import Any

from api import errors, schema

Node = dict[str, Any] | None
_DELETE = object()  # a map whose patch said `$patch: delete`


def patch(target: Any, patch_body: Any, definition: str | None) -> Any:
    """`target` (a whole object of the type `definition`) with the strategic merge patch applied."""
    if not isinstance(patch_body, dict):
        raise errors.bad_request("a strategic merge patch must be a JSON object")
    out = _map(target, patch_body, {"$ref": "#/" + definition} if definition else None)
    return {} if out is _DELETE else out


def _resolved(node: Node) -> Node:
    return schema.resolve(node)[1] if node else None


def _field(node: Node, key: str) -> Node:
    """The schema of `key` in an object (its property, or the map's value type); None for a free-form object."""
    node = _resolved(node)
    if not node:
        return None
    return (node.get("properties") or {}).get(key) or (node.get("additionalProperties") or None)


def _map(target: Any, body: dict, node: Node) -> Any:
    directive = body.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in body.items() if k != "$patch"}
    if directive not in (None, "merge"):
        raise errors.bad_request(f"unknown $patch directive {directive!r}")
    out = dict(target) if isinstance(target, dict) else {}
    orders: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            if not isinstance(value, list):
                raise errors.bad_request(f"{key}: expected a list of values to delete, got {type(value).__name__}")
            name = key.split("/", 1)[1]
            out[name] = [v for v in out.get(name) or [] if v not in value]
        elif value is None:
            out.pop(key, None)
        elif isinstance(value, list):
            out[key] = _list(out.get(key), value, _field(node, key))
        elif isinstance(value, dict):
            merged = _map(out.get(key), value, _field(node, key))
            if merged is _DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    for name, order in orders.items():
        if isinstance(out.get(name), list) and isinstance(order, list):
            out[name] = _ordered(out[name], order, _merge_key(_field(node, name)))
    retain = body.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_key(field: Node) -> str | None:
    return (field or {}).get("x-kubernetes-patch-merge-key")


def _list(target: Any, items: list, field: Node) -> list:
    strategies = str((field or {}).get("x-kubernetes-patch-strategy") or "").split(",")
    plain = [i for i in items if not (isinstance(i, dict) and "$patch" in i and len(i) == 1)]
    if "merge" not in strategies or any(isinstance(i, dict) and i.get("$patch") == "replace" for i in items):
        return [copy.deepcopy(i) for i in plain if not (isinstance(i, dict) and i.get("$patch") == "delete")]
    current = list(target) if isinstance(target, list) else []
    key = _merge_key(field)
    if key is None:  # a set of primitives: add what is missing
        return current + [copy.deepcopy(v) for v in items if v not in current]
    item_node = (field or {}).get("items")
    merged = [dict(i) if isinstance(i, dict) else i for i in current]
    for item in items:
        if not isinstance(item, dict) or key not in item:
            raise errors.bad_request(f"a list item {str(item)[:80]} has no {key!r}, the key its list merges on")
        position = next((n for n, old in enumerate(merged) if isinstance(old, dict) and old.get(key) == item[key]),
                        None)
        if item.get("$patch") == "delete":
            if position is not None:
                merged.pop(position)
            continue
        value = _map(merged[position] if position is not None else {}, item, item_node)
        if value is _DELETE:
            continue
        if position is None:
            merged.append(value)
        else:
            merged[position] = value
    return merged


def _ordered(items: list, order: list, key: str | None) -> list:
    """`items` in the order `$setElementOrder` gives; items it does not name keep their place after those."""
    if key is None:
        rank = {repr(v): n for n, v in enumerate(order)}
        return sorted(items, key=lambda v: rank.get(repr(v), len(rank)))
    rank = {repr(o.get(key)): n for n, o in enumerate(order) if isinstance(o, dict)}
    return sorted(items, key=lambda i: rank.get(repr(i.get(key)) if isinstance(i, dict) else None, len(rank)))
