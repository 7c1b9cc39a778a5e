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


def _get(obj: Obj, path: str, default: Any = None) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return default if obj is None else obj


def _pod_status(pod: Obj) -> str:
    if _get(pod, "metadata.deletionTimestamp"):
        return "Terminating"
    for cs in _get(pod, "status.containerStatuses", []):
        waiting = _get(cs, "state.waiting.reason")
        if waiting:
            return waiting
    return _get(pod, "status.reason") or _get(pod, "status.phase", "Pending")


def _ready_containers(pod: Obj) -> str:
    statuses = _get(pod, "status.containerStatuses", [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{len(_get(pod, 'spec.containers', []))}"


def _ports(svc: Obj) -> str:
    ports = []
    for p in _get(svc, "spec.ports", []):
        text = f"{p.get('port')}" + (f":{p['nodePort']}" if p.get("nodePort") else "") + f"/{p.get('protocol', 'TCP')}"
        ports.append(text)
    return ",".join(ports) or "<none>"


def _containers(path: str) -> Callable[[Obj], str]:
    return lambda o: ",".join(c.get("name", "") for c in _get(o, path, []))


def _images(path: str) -> Callable[[Obj], str]:
    return lambda o: ",".join(c.get("image", "") for c in _get(o, path, []))


def _selector(o: Obj) -> str:
    labels = _get(o, "spec.selector.matchLabels") or _get(o, "spec.selector") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str)) or "<none>"


def _endpoints(ep: Obj) -> str:
    out = [f"{a.get('ip')}:{p.get('port')}" for s in _get(ep, "subsets", []) for a in s.get("addresses") or []
           for p in s.get("ports") or []]
    return ",".join(out[:3]) + (f" + {len(out) - 3} more..." if len(out) > 3 else "") if out else "<none>"


def _node_status(node: Obj) -> str:
    ready = next((c for c in _get(node, "status.conditions", []) if c.get("type") == "Ready"), None)
    text = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    return text + (",SchedulingDisabled" if _get(node, "spec.unschedulable") else "")


def _job_status(job: Obj) -> str:
    for c in _get(job, "status.conditions", []):
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "Suspended"):
            return c["type"]
    return "Running"


_NAME: Column = ("Name", "string", lambda o: o["metadata"]["name"], 0)
_AGE: Column = ("Age", "string", age, 0)
_TEMPLATE = "spec.template.spec.containers"
COLUMNS: dict[str, list[Column]] = {
    "Namespace": [_NAME, ("Status", "string", lambda o: _get(o, "status.phase", "Active"), 0), _AGE],
    "ConfigMap": [_NAME, ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), 0),
                  _AGE],
    "Secret": [_NAME, ("Type", "string", lambda o: o.get("type", "Opaque"), 0),
               ("Data", "integer", lambda o: len(o.get("data") or {}), 0), _AGE],
    "Pod": [_NAME, ("Ready", "string", _ready_containers, 0), ("Status", "string", _pod_status, 0),
            ("Restarts", "string", lambda o: str(sum(c.get("restartCount", 0)
                                                     for c in _get(o, "status.containerStatuses", []))), 0),
            _AGE, ("IP", "string", lambda o: _get(o, "status.podIP", "<none>"), 1),
            ("Node", "string", lambda o: _get(o, "spec.nodeName", "<none>"), 1)],
    "Deployment": [_NAME, ("Ready", "string", lambda o: f"{_get(o, 'status.readyReplicas', 0)}/{_get(o, 'spec.replicas', 0)}", 0),
                   ("Up-to-date", "integer", lambda o: _get(o, "status.updatedReplicas", 0), 0),
                   ("Available", "integer", lambda o: _get(o, "status.availableReplicas", 0), 0), _AGE,
                   ("Containers", "string", _containers(_TEMPLATE), 1), ("Images", "string", _images(_TEMPLATE), 1),
                   ("Selector", "string", _selector, 1)],
    "ReplicaSet": [_NAME, ("Desired", "integer", lambda o: _get(o, "spec.replicas", 0), 0),
                   ("Current", "integer", lambda o: _get(o, "status.replicas", 0), 0),
                   ("Ready", "integer", lambda o: _get(o, "status.readyReplicas", 0), 0), _AGE,
                   ("Containers", "string", _containers(_TEMPLATE), 1), ("Images", "string", _images(_TEMPLATE), 1),
                   ("Selector", "string", _selector, 1)],
    "StatefulSet": [_NAME, ("Ready", "string", lambda o: f"{_get(o, 'status.readyReplicas', 0)}/{_get(o, 'spec.replicas', 0)}", 0),
                    _AGE, ("Containers", "string", _containers(_TEMPLATE), 1),
                    ("Images", "string", _images(_TEMPLATE), 1)],
    "DaemonSet": [_NAME, ("Desired", "integer", lambda o: _get(o, "status.desiredNumberScheduled", 0), 0),
                  ("Current", "integer", lambda o: _get(o, "status.currentNumberScheduled", 0), 0),
                  ("Ready", "integer", lambda o: _get(o, "status.numberReady", 0), 0),
                  ("Up-to-date", "integer", lambda o: _get(o, "status.updatedNumberScheduled", 0), 0),
                  ("Available", "integer", lambda o: _get(o, "status.numberAvailable", 0), 0),
                  ("Node Selector", "string", lambda o: ",".join(f"{k}={v}" for k, v in _get(o, "spec.template.spec.nodeSelector", {}).items()) or "<none>", 0),
                  _AGE],
    "Job": [_NAME, ("Status", "string", _job_status, 0),
            ("Completions", "string", lambda o: f"{_get(o, 'status.succeeded', 0)}/{_get(o, 'spec.completions', 1)}", 0),
            _AGE],
    "Service": [_NAME, ("Type", "string", lambda o: _get(o, "spec.type", "ClusterIP"), 0),
                ("Cluster-IP", "string", lambda o: _get(o, "spec.clusterIP", "<none>"), 0),
                ("External-IP", "string", lambda o: ",".join(_get(o, "spec.externalIPs", [])) or "<none>", 0),
                ("Port(s)", "string", _ports, 0), _AGE, ("Selector", "string", _selector, 1)],
    "Endpoints": [_NAME, ("Endpoints", "string", _endpoints, 0), _AGE],
    "Node": [_NAME, ("Status", "string", _node_status, 0),
             ("Roles", "string", lambda o: ",".join(sorted(k.split("/", 1)[1] for k in _get(o, "metadata.labels", {})
                                                           if k.startswith("node-role.kubernetes.io/"))) or "<none>", 0),
             _AGE, ("Version", "string", lambda o: _get(o, "status.nodeInfo.kubeletVersion", ""), 0),
             ("Internal-IP", "string", lambda o: next((a.get("address") for a in _get(o, "status.addresses", [])
                                                        if a.get("type") == "InternalIP"), "<none>"), 1)],
    "Event": [("Last Seen", "string", lambda o: age({"metadata": {"creationTimestamp": o.get("lastTimestamp")
                                                                  or _get(o, "metadata.creationTimestamp")}}), 0),
              ("Type", "string", lambda o: o.get("type", ""), 0), ("Reason", "string", lambda o: o.get("reason", ""), 0),
              ("Object", "string", lambda o: f"{_get(o, 'involvedObject.kind', '').lower()}/{_get(o, 'involvedObject.name', '')}", 0),
              ("Message", "string", lambda o: o.get("message", ""), 0)],
    "Lease": [_NAME, ("Holder", "string", lambda o: _get(o, "spec.holderIdentity", ""), 0), _AGE],
    "ServiceAccount": [_NAME, ("Secrets", "integer", lambda o: len(o.get("secrets") or []), 0), _AGE],
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
