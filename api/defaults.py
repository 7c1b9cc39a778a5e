"""Defaults as Kubernetes sets them, filled in on create and update (pure functions on dicts)."""
from __future__ import annotations

import base64
from typing import Any, Callable

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


def _spec_of(fill: Callable[[Obj], None]) -> Callable[[Obj], None]:
    """A defaulter of the object's spec; a missing or mistyped spec is validation's to report."""
    def defaulter(obj: Obj) -> None:
        if isinstance(obj.get("spec"), dict):
            fill(obj["spec"])
    return defaulter


def _pod(obj: Obj) -> None:
    _spec_of(pod_spec)(obj)
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _deployment(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    _rolling(spec, "strategy", maxUnavailable="25%", maxSurge="25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(spec)


def _replicated(spec: Obj) -> None:
    """ReplicaSet and ReplicationController."""
    spec.setdefault("replicas", 1)
    _template(spec)


def _replication_controller(spec: Obj) -> None:
    """A ReplicationController without a selector selects its template's labels (and is labelled by them)."""
    _replicated(spec)
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") if isinstance(
        spec.get("template"), dict) else None
    if not spec.get("selector") and isinstance(labels, dict):
        spec["selector"] = dict(labels)


def _statefulset(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    _rolling(spec, "updateStrategy", partition=0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(spec)


def _daemonset(spec: Obj) -> None:
    _rolling(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(spec)


def _job(spec: Obj) -> None:
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    _template(spec)


def _service(obj: Obj) -> None:
    _spec_of(service)(obj)
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _namespace(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _pod_disruption_budget(obj: Obj) -> None:
    """The status counts are required fields (0 until the disruption controller counts)."""
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        for count in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            status.setdefault(count, 0)


def _api_service(obj: Obj) -> None:
    """An APIService served by this server itself (no spec.service) is available."""
    spec = obj.get("spec")
    if isinstance(spec, dict) and spec.get("service") is None and isinstance(obj.setdefault("status", {}), dict):
        obj["status"].setdefault("conditions", [{
            "type": "Available", "status": "True", "reason": "Local",
            "message": "Local APIServices are always available"}])


def apply(kind: str, obj: Obj) -> None:
    """Fill in what the user left out, in place."""
    defaulter = DEFAULTERS.get(kind)
    if defaulter is not None:
        defaulter(obj)


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


DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "Pod": _pod,
    "Deployment": _spec_of(_deployment),
    "ReplicaSet": _spec_of(_replicated),
    "ReplicationController": _spec_of(_replication_controller),
    "StatefulSet": _spec_of(_statefulset),
    "DaemonSet": _spec_of(_daemonset),
    "Job": _spec_of(_job),
    "Service": _service,
    "Namespace": _namespace,
    "Secret": secret,
    "PodDisruptionBudget": _pod_disruption_budget,
    "APIService": _api_service,
}
