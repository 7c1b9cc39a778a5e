"""Defaults as Kubernetes sets them, filled in on create and update (pure functions on dicts)."""
from __future__ import annotations

import base64
from typing import Any

Obj = dict[str, Any]


def _list(value: Any) -> list:
    """Lists only: a wrong type is validation's to report, not ours to trip over."""
    return value if isinstance(value, list) else []


def _image_pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    tag = tail.split(":", 1)[1] if ":" in tail else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for container in _list(spec.get("initContainers")) + _list(spec.get("containers")):
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _image_pull_policy(str(container.get("image", ""))))
        container.setdefault("resources", {})
        for port in _list(container.get("ports")):
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _template(spec: Obj) -> None:
    template = spec.get("template")  # a template of the wrong type is left for validation
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_spec(template["spec"])


def _rolling(spec: Obj, key: str, **values: Any) -> None:
    strategy = spec.setdefault(key, {})
    if not isinstance(strategy, dict):
        return
    strategy.setdefault("type", "RollingUpdate")
    rolling = strategy.setdefault("rollingUpdate", {}) if strategy["type"] == "RollingUpdate" else None
    if isinstance(rolling, dict):
        for name, value in values.items():
            rolling.setdefault(name, value)


def apply(kind: str, obj: Obj) -> None:
    """Fill in what the user left out, in place."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
    if kind == "Pod" and spec is not None:
        pod_spec(spec)
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind == "Deployment" and spec is not None:
        spec.setdefault("replicas", 1)
        _rolling(spec, "strategy", maxUnavailable="25%", maxSurge="25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _template(spec)
    elif kind == "ReplicaSet" and spec is not None:
        spec.setdefault("replicas", 1)
        _template(spec)
    elif kind == "StatefulSet" and spec is not None:
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        _rolling(spec, "updateStrategy", partition=0)
        spec.setdefault("revisionHistoryLimit", 10)
        _template(spec)
    elif kind == "DaemonSet" and spec is not None:
        _rolling(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
        spec.setdefault("revisionHistoryLimit", 10)
        _template(spec)
    elif kind == "Job" and spec is not None:
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        _template(spec)
    elif kind == "Service" and spec is not None:
        service(spec)
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif kind == "Secret":
        secret(obj)


def service(spec: Obj) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in _list(spec.get("ports")):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def job_selector(obj: Obj) -> None:
    """A Job without a manual selector selects its pods by its own uid (as Kubernetes does)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector"):
        return
    uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
              "controller-uid": uid, "job-name": name}
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
