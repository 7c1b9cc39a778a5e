"""`kubectl get` output: a meta.k8s.io/v1 Table of rows with their PartialObjectMetadata."""
from __future__ import annotations

import datetime
from typing import Any, Callable

from api.registry import Resource
from api.selectors import get_path

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


def _terminated_reason(state: Obj) -> str:
    done = state.get("terminated") or {}
    if done.get("reason"):
        return done["reason"]
    return f"Signal:{done['signal']}" if done.get("signal") else f"ExitCode:{done.get('exitCode', 0)}"


def _pod_status(pod: Obj) -> str:
    """The STATUS column as kubectl's printer words it: a waiting or terminated container's reason (Completed,
    Error, CrashLoopBackOff, ...), Init:N/M while init containers run, else the phase."""
    reason = get_path(pod, "status.reason") or get_path(pod, "status.phase", "Pending")
    inits = get_path(pod, "status.initContainerStatuses", [])
    initializing = False
    for i, cs in enumerate(inits):
        state = cs.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode") == 0:
            continue
        initializing = True
        if state.get("terminated"):
            reason = "Init:" + _terminated_reason(state)
        elif (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(get_path(pod, 'spec.initContainers', []))}"
        break
    if not initializing:
        running = False
        for cs in reversed(get_path(pod, "status.containerStatuses", [])):
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated"):
                reason = _terminated_reason(state)
            elif "running" in state and cs.get("ready"):
                running = True
        if reason == "Completed" and running:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in get_path(pod, "status.conditions", []))
            reason = "Running" if ready else "NotReady"
    if get_path(pod, "metadata.deletionTimestamp"):
        return "Unknown" if get_path(pod, "status.reason") == "NodeLost" else "Terminating"
    return reason


def _ready_containers(pod: Obj) -> str:
    statuses = get_path(pod, "status.containerStatuses", [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{len(get_path(pod, 'spec.containers', []))}"


def _ports(svc: Obj) -> str:
    ports = []
    for p in get_path(svc, "spec.ports", []):
        text = f"{p.get('port')}" + (f":{p['nodePort']}" if p.get("nodePort") else "") + f"/{p.get('protocol', 'TCP')}"
        ports.append(text)
    return ",".join(ports) or "<none>"


def _containers(path: str) -> Callable[[Obj], str]:
    return lambda o: ",".join(c.get("name", "") for c in get_path(o, path, []))


def _images(path: str) -> Callable[[Obj], str]:
    return lambda o: ",".join(c.get("image", "") for c in get_path(o, path, []))


def _selector(o: Obj) -> str:
    labels = get_path(o, "spec.selector.matchLabels") or get_path(o, "spec.selector") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str)) or "<none>"


def _api_service_backend(o: Obj) -> str:
    service = get_path(o, "spec.service")
    return f"{service.get('namespace')}/{service.get('name')}" if isinstance(service, dict) else "Local"


def _api_service_available(o: Obj) -> str:
    available = next((c for c in get_path(o, "status.conditions", []) or [] if c.get("type") == "Available"), None)
    if available is None:
        return "Unknown"
    return "True" if available.get("status") == "True" else f"False ({available.get('reason', '')})"


def _endpoints(ep: Obj) -> str:
    out = [f"{a.get('ip')}:{p.get('port')}" for s in get_path(ep, "subsets", []) for a in s.get("addresses") or []
           for p in s.get("ports") or []]
    return ",".join(out[:3]) + (f" + {len(out) - 3} more..." if len(out) > 3 else "") if out else "<none>"


def _node_status(node: Obj) -> str:
    ready = next((c for c in get_path(node, "status.conditions", []) if c.get("type") == "Ready"), None)
    text = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    return text + (",SchedulingDisabled" if get_path(node, "spec.unschedulable") else "")


def _job_status(job: Obj) -> str:
    for c in get_path(job, "status.conditions", []):
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "Suspended"):
            return c["type"]
    return "Running"


_NAME: Column = ("Name", "string", lambda o: o["metadata"]["name"], 0)
_AGE: Column = ("Age", "string", age, 0)
_TEMPLATE = "spec.template.spec.containers"
COLUMNS: dict[str, list[Column]] = {
    "Namespace": [_NAME, ("Status", "string", lambda o: get_path(o, "status.phase", "Active"), 0), _AGE],
    "ConfigMap": [_NAME, ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), 0),
                  _AGE],
    "Secret": [_NAME, ("Type", "string", lambda o: o.get("type", "Opaque"), 0),
               ("Data", "integer", lambda o: len(o.get("data") or {}), 0), _AGE],
    "Pod": [_NAME, ("Ready", "string", _ready_containers, 0), ("Status", "string", _pod_status, 0),
            ("Restarts", "string", lambda o: str(sum(c.get("restartCount", 0)
                                                     for c in get_path(o, "status.containerStatuses", []))), 0),
            _AGE, ("IP", "string", lambda o: get_path(o, "status.podIP", "<none>"), 1),
            ("Node", "string", lambda o: get_path(o, "spec.nodeName", "<none>"), 1)],
    "Deployment": [_NAME, ("Ready", "string", lambda o: f"{get_path(o, 'status.readyReplicas', 0)}/{get_path(o, 'spec.replicas', 0)}", 0),
                   ("Up-to-date", "integer", lambda o: get_path(o, "status.updatedReplicas", 0), 0),
                   ("Available", "integer", lambda o: get_path(o, "status.availableReplicas", 0), 0), _AGE,
                   ("Containers", "string", _containers(_TEMPLATE), 1), ("Images", "string", _images(_TEMPLATE), 1),
                   ("Selector", "string", _selector, 1)],
    "ReplicaSet": [_NAME, ("Desired", "integer", lambda o: get_path(o, "spec.replicas", 0), 0),
                   ("Current", "integer", lambda o: get_path(o, "status.replicas", 0), 0),
                   ("Ready", "integer", lambda o: get_path(o, "status.readyReplicas", 0), 0), _AGE,
                   ("Containers", "string", _containers(_TEMPLATE), 1), ("Images", "string", _images(_TEMPLATE), 1),
                   ("Selector", "string", _selector, 1)],
    "ReplicationController": [_NAME, ("Desired", "integer", lambda o: get_path(o, "spec.replicas", 0), 0),
                              ("Current", "integer", lambda o: get_path(o, "status.replicas", 0), 0),
                              ("Ready", "integer", lambda o: get_path(o, "status.readyReplicas", 0), 0), _AGE,
                              ("Containers", "string", _containers(_TEMPLATE), 1),
                              ("Images", "string", _images(_TEMPLATE), 1), ("Selector", "string", _selector, 1)],
    "PodDisruptionBudget": [_NAME, ("Min Available", "string", lambda o: str(get_path(o, "spec.minAvailable", "N/A")), 0),
                            ("Max Unavailable", "string",
                             lambda o: str(get_path(o, "spec.maxUnavailable", "N/A")), 0),
                            ("Allowed Disruptions", "integer",
                             lambda o: get_path(o, "status.disruptionsAllowed", 0), 0), _AGE],
    "APIService": [_NAME, ("Service", "string", _api_service_backend, 0),
                   ("Available", "string", _api_service_available, 0), _AGE],
    "StatefulSet": [_NAME, ("Ready", "string", lambda o: f"{get_path(o, 'status.readyReplicas', 0)}/{get_path(o, 'spec.replicas', 0)}", 0),
                    _AGE, ("Containers", "string", _containers(_TEMPLATE), 1),
                    ("Images", "string", _images(_TEMPLATE), 1)],
    "DaemonSet": [_NAME, ("Desired", "integer", lambda o: get_path(o, "status.desiredNumberScheduled", 0), 0),
                  ("Current", "integer", lambda o: get_path(o, "status.currentNumberScheduled", 0), 0),
                  ("Ready", "integer", lambda o: get_path(o, "status.numberReady", 0), 0),
                  ("Up-to-date", "integer", lambda o: get_path(o, "status.updatedNumberScheduled", 0), 0),
                  ("Available", "integer", lambda o: get_path(o, "status.numberAvailable", 0), 0),
                  ("Node Selector", "string", lambda o: ",".join(f"{k}={v}" for k, v in get_path(o, "spec.template.spec.nodeSelector", {}).items()) or "<none>", 0),
                  _AGE],
    "Job": [_NAME, ("Status", "string", _job_status, 0),
            ("Completions", "string", lambda o: f"{get_path(o, 'status.succeeded', 0)}/{get_path(o, 'spec.completions', 1)}", 0),
            _AGE],
    "Service": [_NAME, ("Type", "string", lambda o: get_path(o, "spec.type", "ClusterIP"), 0),
                ("Cluster-IP", "string", lambda o: get_path(o, "spec.clusterIP", "<none>"), 0),
                ("External-IP", "string", lambda o: ",".join(get_path(o, "spec.externalIPs", [])) or "<none>", 0),
                ("Port(s)", "string", _ports, 0), _AGE, ("Selector", "string", _selector, 1)],
    "Endpoints": [_NAME, ("Endpoints", "string", _endpoints, 0), _AGE],
    "Node": [_NAME, ("Status", "string", _node_status, 0),
             ("Roles", "string", lambda o: ",".join(sorted(k.split("/", 1)[1] for k in get_path(o, "metadata.labels", {})
                                                           if k.startswith("node-role.kubernetes.io/"))) or "<none>", 0),
             _AGE, ("Version", "string", lambda o: get_path(o, "status.nodeInfo.kubeletVersion", ""), 0),
             ("Internal-IP", "string", lambda o: next((a.get("address") for a in get_path(o, "status.addresses", [])
                                                        if a.get("type") == "InternalIP"), "<none>"), 1)],
    "Event": [("Last Seen", "string", lambda o: age({"metadata": {"creationTimestamp": o.get("lastTimestamp")
                                                                  or get_path(o, "metadata.creationTimestamp")}}), 0),
              ("Type", "string", lambda o: o.get("type", ""), 0), ("Reason", "string", lambda o: o.get("reason", ""), 0),
              ("Object", "string", lambda o: f"{get_path(o, 'involvedObject.kind', '').lower()}/{get_path(o, 'involvedObject.name', '')}", 0),
              ("Message", "string", lambda o: o.get("message", ""), 0)],
    "Lease": [_NAME, ("Holder", "string", lambda o: get_path(o, "spec.holderIdentity", ""), 0), _AGE],
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
