"""`kubectl get` output: a meta.k8s.io/v1 Table of rows with their PartialObjectMetadata."""
from __future__ import annotations

import datetime
from typing import Any, Callable

from api.registry import Resource

Obj = dict[str, Any]
Column = tuple[str, str, Callable[[Obj], Any], int]  # name, type, cell, priority (1: only with -o wide)


def age(obj: Obj) -> str:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


_NAME: Column = ("Name", "string", lambda o: o["metadata"]["name"], 0)
_AGE: Column = ("Age", "string", age, 0)
COLUMNS: dict[str, list[Column]] = {
    "Namespace": [_NAME, ("Status", "string", lambda o: (o.get("status") or {}).get("phase", "Active"), 0), _AGE],
    "ConfigMap": [_NAME, ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), 0),
                  _AGE],
    "Secret": [_NAME, ("Type", "string", lambda o: o.get("type", "Opaque"), 0),
               ("Data", "integer", lambda o: len(o.get("data") or {}), 0), _AGE],
}


def partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(res: Resource, objects: list[Obj], resource_version: str | None) -> Obj:
    columns = COLUMNS.get(res.kind, [_NAME, _AGE])
    definitions = [{"name": name, "type": kind, "format": "name" if name == "Name" else "",
                    "description": name, "priority": priority} for name, kind, _, priority in columns]
    rows = [{"cells": [cell(obj) for _, _, cell, _ in columns], "object": partial(obj)} for obj in objects]
    meta = {"resourceVersion": resource_version} if resource_version else {}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": definitions,
            "rows": rows}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
