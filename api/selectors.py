"""Label and field selectors, parsed once and matched against objects (pure functions).

    labels:  app=web, tier!=db, env in (prod,staging), env notin (dev), release, !canary
    fields:  metadata.name=x, metadata.namespace!=kube-system, spec.nodeName=n1, status.phase=Running
"""
from __future__ import annotations

import re
from typing import Any, Callable

from api.errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_FIELD = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*(.*?)\s*$")  # a value may be "apps/v1"


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def parse_labels(text: str | None) -> Matcher:
    requirements: list[Matcher] = []
    for part in _split(text or ""):
        eq = _EQ.match(part)
        if eq:
            key, op, value = eq.groups()
            if op == "!=":
                requirements.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                requirements.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        m = _SET.match(part)
        if not m or (m.group(1) and m.group(3)):
            raise bad_request(f"unable to parse requirement: {part.strip()!r} in labelSelector {text!r}")
        negate, key, op, values = m.groups()
        if op:
            allowed = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in":
                requirements.append(lambda labels, k=key, a=allowed: labels.get(k) in a)
            else:
                requirements.append(lambda labels, k=key, a=allowed: labels.get(k) not in a)
        elif negate:
            requirements.append(lambda labels, k=key: k not in labels)
        else:
            requirements.append(lambda labels, k=key: k in labels)

    def matches(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(req(labels) for req in requirements)

    return matches


def get_path(obj: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path ("spec.selector.matchLabels"), or `default` where it is absent."""
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return default if obj is None else obj


def field_value(obj: dict[str, Any], path: str) -> str:
    return str(get_path(obj, path, ""))


# The fields each kind can be selected by, besides metadata.name and metadata.namespace (kube-apiserver's field
# label conversions for the kinds served here).
SELECTABLE: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
              "reportingComponent", "source", "type"),
    "Secret": ("type",),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "ReplicationController": ("status.replicas",),
    "Job": ("status.successful",),
    "Service": ("spec.clusterIP", "spec.type"),
}


def parse_fields(text: str | None, kind: str | None = None) -> Matcher:
    """A field selector; with `kind`, only the fields that kind can be selected by (400 for another)."""
    requirements: list[tuple[str, bool, str]] = []
    for part in _split(text or ""):
        m = _FIELD.match(part)
        if not m:
            raise bad_request(f"invalid field selector: {part.strip()!r}")
        path, op, value = m.groups()
        if kind is not None and path not in ("metadata.name", "metadata.namespace", *SELECTABLE.get(kind, ())):
            raise bad_request(f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                              + "".join(f', "{f}"' for f in SELECTABLE.get(kind, ())))
        requirements.append((path, op != "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) == equal for path, equal, value in requirements)

    return matches


def single_name(text: str | None) -> str | None:
    """The name a `metadata.name=X` field selector pins, if that is all it says (a cheap get)."""
    parts = _split(text or "")
    if len(parts) == 1:
        m = _FIELD.match(parts[0])
        if m and m.group(1) == "metadata.name" and m.group(2) != "!=":
            return m.group(3)
    return None


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions) against a label map."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for e in selector.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True
