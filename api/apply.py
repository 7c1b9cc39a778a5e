"""Server-side apply (`kubectl apply --server-side`): each field manager owns the fields of the
configuration it last applied, recorded in `metadata.managedFields` in Kubernetes' FieldsV1 form
(`{"f:spec": {"f:replicas": {}}}`, list items of keyed lists as `k:{"name":"app"}`).

Applying again: fields the manager owned and no longer sends are removed, then the configuration
is merged in with strategic-merge rules. Applying the same configuration twice changes nothing.
A field another manager owns is a conflict (409, naming the field and the manager) when this
configuration gives it another value; with `force=true` (`--force-conflicts`) it changes hands.

Every other write (create, update, patch; `record_update`) is an "Update" by its manager (`fieldManager`, else
the User-Agent up to its first "/", as kube-apiserver names it: kubectl-create, kubectl-edit,
kube-controller-manager; `kubectl scale` sends no fieldManager, so "kubectl"): the fields it changed become that
manager's and leave every other, so an apply that would undo a scale is a conflict, as upstream.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from api import errors, objects, strategic
from api.strategic import Node, _field, _merge_key

Obj = dict[str, Any]
IDENTITY = {"apiVersion", "kind"}
META_OWNED = {"labels", "annotations", "finalizers", "ownerReferences"}
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
Path = tuple[str, ...]  # FieldsV1 steps: "f:spec", "k:{\"name\":\"app\"}"


def field_set(config: Any, node: Node) -> Obj:
    """The fields `config` sets, in FieldsV1 form; `node` is its type's schema (lists' merge keys)."""
    return _from_leaves(set(_leaf_values(config, node)))


def _leaf_values(obj: Obj, node: Node, prefix: Path = ()) -> dict[Path, Any]:
    """Each field `obj` sets, as its FieldsV1 path, and its value. A map is its keys; a list with a merge key is
    its items, by key; anything else (a scalar, an empty map, an atomic list) is one field."""
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        if not prefix and key in IDENTITY:
            continue
        child = _field(node, key)
        here = prefix + (f"f:{key}",)
        if not prefix and key == "metadata":
            meta = {k: v for k, v in (value or {}).items() if k in META_OWNED}
            out.update(_leaf_values(meta, child, here))
            continue
        merge_key = _merge_key(child)
        if isinstance(value, dict) and value:
            out.update(_leaf_values(value, child, here))
        elif isinstance(value, list) and merge_key and value and all(
                isinstance(i, dict) and merge_key in i for i in value):
            items = (child or {}).get("items")
            for item in value:
                step = here + (f"k:{json.dumps({merge_key: item[merge_key]}, separators=(',', ':'))}",)
                rest = {k: v for k, v in item.items() if k != merge_key}
                out.update(_leaf_values(rest, items, step) if rest else {step: item})
        else:
            out[here] = value
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
    managed = readable((existing.get("metadata") or {}).get("managedFields"))
    managed = _settle_conflicts(existing, config, owned_now, manager, managed,
                                force or _upgraded_from_client_side(existing, config, owned_now, manager, managed,
                                                                    root))
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


def _conflicts(existing: Obj, config: Obj, owned_now: Obj, manager: str, managed: list[Obj]) -> list[tuple[str, Path]]:
    """(who, field) for each field another manager owns that this configuration gives another value."""
    wanted = _leaves(owned_now)
    out: list[tuple[str, Path]] = []
    for entry in managed:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        for path in sorted(wanted & _leaves(entry.get("fieldsV1") or {})):
            if _value_at(existing, path) != _value_at(config, path):
                out.append((_who(entry), path))
    return out


def _settle_conflicts(existing: Obj, config: Obj, owned_now: Obj, manager: str, managed: list[Obj],
                      force: bool) -> list[Obj]:
    """The managed fields once this apply's conflicts are settled: a 409 unless forced; forced, the fields
    leave every other manager."""
    conflicts = _conflicts(existing, config, owned_now, manager, managed)
    if not conflicts:
        return managed
    if not force:
        lines = [f"conflict with {who}: {_readable(p)}" for who, p in conflicts]
        raise errors.ApiError(409, f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: "
                              + "\n".join(lines), reason="Conflict", details={"causes": [
                                  {"reason": "FieldManagerConflict", "message": f"conflict with {who}",
                                   "field": _readable(p)} for who, p in conflicts]})
    taken = {p for _, p in conflicts}
    return _disowned(managed, taken, keep=lambda e: e.get("manager") == manager and e.get("operation") == "Apply")


def _upgraded_from_client_side(existing: Obj, config: Obj, owned_now: Obj, manager: str, managed: list[Obj],
                               root: Node) -> bool:
    """kubectl's first `apply --server-side` of an object it applied client-side takes it over without a
    conflict, as kube-apiserver lets it: the apply is forced when it is kubectl's and every field it conflicts
    on is in the object's last-applied-configuration annotation (then kubectl moves the managedFields)."""
    if manager != "kubectl":
        return False
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    try:
        last_applied = json.loads(annotations.get(LAST_APPLIED) or "null")
    except ValueError:
        return False
    conflicts = _conflicts(existing, config, owned_now, manager, managed)
    return isinstance(last_applied, dict) and bool(conflicts) and \
        {p for _, p in conflicts} <= _leaf_values(last_applied, root).keys()


def _who(entry: Obj) -> str:
    """A manager as kube-apiserver names it in a conflict: `"team-a"` for an applier, `"kubectl" with subresource
    "scale" using apps/v1 at 2026-12-08T02:00:00Z` for an Update."""
    out = json.dumps(entry.get("manager", ""))
    if entry.get("subresource"):
        out += f" with subresource {json.dumps(entry['subresource'])}"
    if entry.get("operation") == "Update":
        out += f" using {entry.get('apiVersion', '')}" + (f" at {entry['time']}" if entry.get("time") else "")
    return out


def _disowned(managed: list[Obj], paths: set[Path], keep: Callable[[Obj], bool]) -> list[Obj]:
    """The entries without `paths` (but those `keep` says), an entry left owning nothing gone."""
    out = []
    for entry in managed:
        if keep(entry):
            out.append(entry)
            continue
        fields = _without(entry.get("fieldsV1") or {}, paths)
        if _leaves(fields):
            out.append({**entry, "fieldsV1": fields})
    return out


def manager_of(field_manager: str | None, user_agent: str) -> str:
    """Who a write is recorded as: its fieldManager, else its User-Agent's product name (kube-apiserver's rule)."""
    return field_manager or user_agent.split("/")[0]


def record_update(old: Obj | None, new: Obj, manager: str, api_version: str, definition: str,
                  subresource: str | None = None) -> None:
    """`new`'s managedFields (in place) after a write that is not an apply: the fields it set or changed are
    `manager`'s Update entry, and no other entry's; fields it removed are nobody's. The entries the write sent
    are taken when it sent any (kubectl rewrites them to move client-side apply to server-side apply), else the
    stored ones: a PUT of a file that never had them keeps them, as upstream."""
    root: Node = {"$ref": "#/" + definition}
    meta = new.setdefault("metadata", {})
    sent = meta.get("managedFields")
    base = readable(sent) or readable(((old or {}).get("metadata") or {}).get("managedFields"))
    after = _leaf_values(new, root)
    before_values = _leaf_values(old, root) if old is not None else {}
    changed = {p for p, value in after.items() if before_values.get(p, _MISSING) != value}
    removed = before_values.keys() - after.keys()

    def mine(entry: Obj) -> bool:
        return (entry.get("manager"), entry.get("operation"), entry.get("apiVersion"),
                entry.get("subresource")) == (manager, "Update", api_version, subresource)

    before = next((e for e in base if mine(e)), None)
    managed = _disowned([e for e in base if not mine(e)], changed | removed, keep=lambda e: False)
    owned = (_leaves((before or {}).get("fieldsV1") or {}) - removed) | changed
    if owned:
        entry: Obj = {"manager": manager, "operation": "Update", "apiVersion": api_version,
                      "time": objects.now() if changed or before is None else before.get("time"),
                      "fieldsType": "FieldsV1", "fieldsV1": _from_leaves(owned)}
        if subresource:
            entry["subresource"] = subresource
        managed.append(entry)
    if managed:
        meta["managedFields"] = managed
    else:
        meta.pop("managedFields", None)


def readable(entries: Any) -> list[Obj]:
    """managedFields as sent or stored, if every entry is one this module can read (a name, and fieldsV1 a tree of
    objects); else none, as kube-apiserver ignores managedFields it cannot decode."""
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("manager", ""), str) and _is_fields(e.get("fieldsV1", {}))
            for e in entries):
        return []
    return entries


def _is_fields(fields: Any) -> bool:
    return isinstance(fields, dict) and all(isinstance(k, str) and _is_fields(v) for k, v in fields.items())


def _from_leaves(paths: set[Path]) -> Obj:
    """FieldsV1 holding exactly these leaves."""
    out: Obj = {}
    for path in sorted(paths):
        node = out
        for step in path:
            node = node.setdefault(step, {})
    return out


def _without(fields: Obj, paths: set[Path], prefix: Path = ()) -> Obj:
    out: Obj = {}
    for step, sub in fields.items():
        here = prefix + (step,)
        if here in paths:
            continue
        if not sub:
            out[step] = sub
        elif rest := _without(sub, paths, here):  # a field whose every child went goes too
            out[step] = rest
    return out
