"""Subresources that are views of their object: scale (autoscaling/v1 Scale), pods/binding, pods/eviction."""
from __future__ import annotations

from typing import Any

from api import errors, objects

Obj = dict[str, Any]


def selector_string(selector: Any) -> str:
    """A LabelSelector as the string form Scale.status.selector carries."""
    if not isinstance(selector, dict):
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        values = ",".join(e.get("values") or [])
        parts.append({"In": f"{e.get('key')} in ({values})", "NotIn": f"{e.get('key')} notin ({values})",
                      "Exists": e.get("key"), "DoesNotExist": f"!{e.get('key')}"}.get(e.get("operator"), ""))
    return ",".join(p for p in parts if p)


def scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector")
    if obj.get("kind") == "ReplicationController":  # a plain map of labels, not a LabelSelector
        selector = {"matchLabels": selector}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0), "selector": selector_string(selector)}}


def with_replicas(obj: Obj, scale: Any) -> Obj:
    """The object with the replicas a Scale (as PUT or patched) asks for."""
    replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("Scale", obj["metadata"]["name"],
                             [("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")])
    return {**obj, "spec": {**(obj.get("spec") or {}), "replicas": replicas}}


def bound(pod: Obj, binding: Any) -> Obj:
    """The pod bound to the Binding's target node: 409 if it is bound already."""
    target = (binding.get("target") or {}) if isinstance(binding, dict) else {}
    node = target.get("name")
    if not isinstance(node, str) or not node:
        raise errors.invalid("Binding", pod["metadata"]["name"], [("target.name", "Required value")])
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise errors.ApiError(409, f'pod {pod["metadata"]["name"]} is already assigned to node "{current}"')
    status = dict(pod.get("status") or {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": objects.now()})
    status["conditions"] = conditions
    return {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}, "status": status}


def success(code: int = 201) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
