"""Server-side apply (`kubectl apply --server-side`): each field manager owns the fields of the
configuration it last applied, recorded in `metadata.managedFields` in Kubernetes' FieldsV1 form
(`{"f:spec": {"f:replicas": {}}}`, list items of keyed lists as `k:{"name":"app"}`).

Applying again: fields the manager owned and no longer sends are removed, then the configuration
is merged in with strategic-merge rules. Applying the same configuration twice changes nothing.
A field another manager applied is a conflict (409, naming the field and the manager) when this
configuration gives it another value; with `force=true` (`--force-conflicts`) it changes hands.
Fields set by other verbs (edit, scale, patch) have no recorded manager here and never conflict.
"""
from __future__ import annotations

import json
from typing import Any

from api import errors, objects, strategic
from api.strategic import Node, _field, _merge_key

Obj = dict[str, Any]
IDENTITY = {"apiVersion", "kind"}
META_OWNED = {"labels", "annotations", "finalizers", "ownerReferences"}


def field_set(config: Any, node: Node, top: bool = True) -> Obj:
    """The fields `config` sets, in FieldsV1 form; `node` is its type's schema (lists' merge keys)."""
    out: Obj = {}
    for key, value in config.items():
        if top and key in IDENTITY:
            continue
        child = _field(node, key)
        if top and key == "metadata":
            meta = {k: v for k, v in (value or {}).items() if k in META_OWNED}
            if meta:
                out["f:metadata"] = field_set(meta, child, top=False)
            continue
        merge_key = _merge_key(child)
        if isinstance(value, dict) and value:
            out[f"f:{key}"] = field_set(value, child, top=False)
        elif isinstance(value, list) and merge_key and value and all(
                isinstance(i, dict) and merge_key in i for i in value):
            items = (child or {}).get("items")
            out[f"f:{key}"] = {f"k:{json.dumps({merge_key: item[merge_key]}, separators=(',', ':'))}":
                               field_set({k: v for k, v in item.items() if k != merge_key}, items, top=False)
                               for item in value}
        else:
            out[f"f:{key}"] = {}
    return out


def _remove(obj: Any, owned_before: Obj, owned_now: Obj, node: Node) -> None:
    """Remove from `obj` what was owned before and is not now (in place)."""
    if not isinstance(obj, dict):
        return
    for path, sub_before in owned_before.items():
        sub_now = owned_now.get(path)
        kind, _, name = path.partition(":")
        if kind == "f":
            if sub_now is None:
                obj.pop(name, None)
            elif sub_before and isinstance(obj.get(name), (dict, list)):
                target = obj[name]
                if isinstance(target, list):
                    _remove_items(target, _field(node, name), sub_before, sub_now)
                else:
                    _remove(target, sub_before, sub_now, _field(node, name))


def _remove_items(items: list, field: Node, before: Obj, now: Obj) -> None:
    merge_key = _merge_key(field)
    for path, sub_before in before.items():
        if not path.startswith("k:") or merge_key is None:
            continue
        wanted = json.loads(path[2:]).get(merge_key)
        for item in list(items):
            if isinstance(item, dict) and item.get(merge_key) == wanted:
                if path not in now:
                    items.remove(item)
                else:
                    _remove(item, sub_before, now[path], (field or {}).get("items"))


def apply(existing: Obj | None, config: Obj, manager: str, api_version: str, definition: str,
          force: bool = False) -> Obj:
    """The object after `manager` applies `config` (for a create when `existing` is None); `definition` names
    the object's type, whose schema says how its lists merge. 409 on a conflict with another manager's field,
    unless `force`."""
    root: Node = {"$ref": "#/" + definition}
    owned_now = field_set(config, root)
    entry = {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": objects.now(),
             "fieldsType": "FieldsV1", "fieldsV1": owned_now}
    if existing is None:
        obj = {k: v for k, v in config.items()}
        obj["metadata"] = {**(config.get("metadata") or {}), "managedFields": [entry]}
        return obj
    managed = (existing.get("metadata") or {}).get("managedFields") or []
    managed = _settle_conflicts(existing, config, owned_now, manager, managed, force)
    before = next((m for m in managed if m.get("manager") == manager and m.get("operation") == "Apply"), None)
    obj = json.loads(json.dumps(existing))  # a deep copy: the cached object is not ours to change
    if before is not None:
        _remove(obj, before.get("fieldsV1") or {}, owned_now, root)
    merged = strategic.patch(obj, {k: v for k, v in config.items() if k not in IDENTITY}, definition)
    merged_meta = merged.setdefault("metadata", {})
    previous = [m for m in managed if not (m.get("manager") == manager and m.get("operation") == "Apply")]
    if before is not None and before.get("fieldsV1") == owned_now:
        entry["time"] = before.get("time", entry["time"])  # nothing changed: not even the time
    merged_meta["managedFields"] = previous + [entry]
    return merged


Path = tuple[str, ...]  # FieldsV1 steps: "f:spec", "k:{\"name\":\"app\"}"


def _leaves(fields: Obj, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for step, sub in fields.items():
        if step == ".":
            continue
        if sub:
            out |= _leaves(sub, prefix + (step,))
        else:
            out.add(prefix + (step,))
    return out


_MISSING = object()


def _value_at(obj: Any, path: Path) -> Any:
    for step in path:
        kind, _, name = step.partition(":")
        if kind == "f" and isinstance(obj, dict):
            obj = obj.get(name, _MISSING)
        elif kind == "k" and isinstance(obj, list):
            want = json.loads(name)
            obj = next((i for i in obj if isinstance(i, dict) and all(i.get(k) == v for k, v in want.items())),
                       _MISSING)
        else:
            return _MISSING
    return obj


def _readable(path: Path) -> str:
    """.spec.template.spec.containers[name="app"].image, as kube-apiserver words a conflict."""
    out = ""
    for step in path:
        kind, _, name = step.partition(":")
        out += f".{name}" if kind == "f" else "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in
                                                             json.loads(name).items()) + "]"
    return out


def _settle_conflicts(existing: Obj, config: Obj, owned_now: Obj, manager: str, managed: list[Obj],
                      force: bool) -> list[Obj]:
    """The managed fields once this apply's conflicts are settled: a 409 unless forced; forced, the fields
    leave their other appliers."""
    wanted = _leaves(owned_now)
    conflicts: list[tuple[str, str, Path]] = []
    for entry in managed:
        if entry.get("manager") == manager or entry.get("operation") != "Apply":
            continue
        for path in wanted & _leaves(entry.get("fieldsV1") or {}):
            if _value_at(existing, path) != _value_at(config, path):
                conflicts.append((entry["manager"], entry.get("apiVersion", ""), path))
    if not conflicts:
        return managed
    if not force:
        lines = [f'conflict with "{m}" using {v}: {_readable(p)}' for m, v, p in conflicts]
        raise errors.ApiError(409, f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: "
                              + "\n".join(lines), reason="Conflict", details={"causes": [
                                  {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}',
                                   "field": _readable(p)} for m, v, p in conflicts]})
    taken = {(m, p) for m, _, p in conflicts}
    return [{**e, "fieldsV1": _without(e.get("fieldsV1") or {}, {p for m, p in taken if m == e.get("manager")})}
            if e.get("operation") == "Apply" else e for e in managed]


def _without(fields: Obj, paths: set[Path], prefix: Path = ()) -> Obj:
    out: Obj = {}
    for step, sub in fields.items():
        here = prefix + (step,)
        if here in paths:
            continue
        out[step] = _without(sub, paths, here) if sub else sub
    return out
