"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch (api/strategic.py)."""
from __future__ import annotations

import copy
from typing import Any

from api import bounds, errors, strategic

JSON_MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def apply_patch(content_type: str, obj: dict, patch: Any, definition: str | None = None) -> dict:
    """`obj` (of the type `definition`, which strategic merge needs) with the patch applied."""
    if content_type == JSON_MERGE:
        return merge(obj, _object(patch))
    if content_type == STRATEGIC:
        return strategic.patch(obj, _object(patch), definition)
    if content_type == JSON_PATCH:
        return json_patch(obj, patch)
    raise errors.ApiError(415, f"the patch type {content_type!r} is not supported; use {JSON_MERGE}, "
                               f"{JSON_PATCH} or {STRATEGIC}")


def _object(patch: Any) -> dict:
    if not isinstance(patch, dict):
        raise errors.bad_request("a merge patch must be a JSON object")
    return patch


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            if not part.isdigit() or int(part) >= len(doc):
                raise errors.bad_request(f"no element {part!r} in a list of {len(doc)}")
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise errors.bad_request(f"path element {part!r} not found")
    return doc


OPERATIONS = {"add": ("value",), "remove": (), "replace": ("value",), "move": ("from",), "copy": ("from",),
              "test": ("value",)}


def _operation(op: Any) -> tuple[str, list[str]]:
    """The op's name and path, once it is a well-formed RFC 6902 operation (400 otherwise)."""
    if not isinstance(op, dict) or op.get("op") not in OPERATIONS or not isinstance(op.get("path"), str):
        raise errors.bad_request(f"invalid JSON patch operation {str(op)[:100]}: it needs an op (one of "
                                 f"{', '.join(OPERATIONS)}) and a string path")
    missing = [k for k in OPERATIONS[op["op"]] if k not in op or (k == "from" and not isinstance(op[k], str))]
    if missing:
        raise errors.bad_request(f"JSON patch operation {op['op']} at {op['path']!r} needs {' and '.join(missing)}")
    return op["op"], _pointer(op["path"])


def json_patch(obj: dict, operations: Any) -> dict:
    """RFC 6902: add, remove, replace, move, copy, test. The document may grow to bounds.MAX_BYTES, counted
    operation by operation (twenty copies of a value onto itself would otherwise make it a million times larger)."""
    if not isinstance(operations, list):
        raise errors.bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(obj)
    total = bounds.size(doc, what="the patched object")
    for op in operations:
        kind, parts = _operation(op)
        if kind in ("add", "replace", "copy"):
            total += bounds.size(_walk(doc, _pointer(op["from"])) if kind == "copy" else op["value"],
                                 budget=bounds.MAX_BYTES - total, what="the patched object")
        if kind in ("move", "copy"):
            value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
            if kind == "move":
                doc = _remove(doc, _pointer(op["from"]))
            doc = _add(doc, parts, value)
        elif kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)
            doc = _add(_remove(doc, parts), parts, copy.deepcopy(op.get("value")))
        elif _walk(doc, parts) != op["value"]:  # test
            raise errors.ApiError(422, f"test failed at {op['path']}")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise errors.bad_request(f"index {last!r} out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise errors.bad_request(f"cannot add to {type(parent).__name__}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise errors.bad_request("cannot remove the whole object")
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    _walk(parent, [last])
    if isinstance(parent, list):
        parent.pop(int(last))
    else:
        del parent[last]
    return doc
