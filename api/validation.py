"""What makes an object invalid (422): required fields, ranges, selectors, immutable fields.

Each check returns (field path, message) causes; the server turns a non-empty list into a 422
Invalid Status with one cause per field, as Kubernetes does.
"""
from __future__ import annotations

from typing import Any, Callable

from api.objects import DNS1123_LABEL
from api.selectors import get_path, selector_matches

Obj = dict[str, Any]
Causes = list[tuple[str, str]]

def _containers(spec: Any, path: str) -> Causes:
    if not isinstance(spec, dict):
        return [(path, "Required value")]
    causes: Causes = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [(f"{path}.containers", "Required value: at least one container")]
    init = spec.get("initContainers") or []
    if not isinstance(init, list):
        return [(f"{path}.initContainers", "Invalid value: must be a list")]
    seen = set()
    for i, c in enumerate(init + containers):
        where = f"{path}.containers[{i}]"
        if not isinstance(c, dict):
            causes.append((where, "Invalid value: a container must be an object"))
            continue
        name = c.get("name")
        if not isinstance(name, str) or not name:
            causes.append((f"{where}.name", "Required value"))
        elif not DNS1123_LABEL.match(name) or len(name) > 63:
            causes.append((f"{where}.name", f"Invalid value: {name!r}: must be a lowercase RFC 1123 label"))
        elif name in seen:
            causes.append((f"{where}.name", f"Duplicate value: {name!r}"))
        seen.add(name)
        if not isinstance(c.get("image"), str) or not c.get("image"):
            causes.append((f"{where}.image", "Required value"))
        ports = c.get("ports") or []
        if not isinstance(ports, list):
            causes.append((f"{where}.ports", "Invalid value: must be a list"))
            ports = []
        for j, port in enumerate(ports):
            number = port.get("containerPort") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 1 <= number <= 65535:
                causes.append((f"{where}.ports[{j}].containerPort",
                               f"Invalid value: {number!r}: must be between 1 and 65535, inclusive"))
    return causes


def _selector(spec: Obj) -> Causes:
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [("spec.selector", "Required value")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    try:
        matches = selector_matches(selector, labels)
    except ValueError as exc:
        return [("spec.selector", f"Invalid value: {exc}")]
    if not matches:
        return [("spec.template.metadata.labels", f"Invalid value: {labels!r}: `selector` does not match "
                                                  "template `labels`")]
    return []


def _pod(obj: Obj) -> Causes:
    return _containers(obj.get("spec"), "spec")


def _counts(spec: Obj) -> Causes:
    causes = []
    for field in ("replicas", "parallelism", "completions", "backoffLimit"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append((f"spec.{field}", f"Invalid value: {value!r}: must be greater than or equal to 0"))
    return causes


def _workload(selects: Callable[[Obj], Causes]) -> Callable[[Obj], Causes]:
    """A kind with a pod template, whose selector `selects` checks."""
    def check_workload(obj: Obj) -> Causes:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [("spec", "Required value")]
        template = spec.get("template")
        if not isinstance(template, dict) or not isinstance(template.get("metadata", {}), dict):
            return [("spec.template", "Required value: a pod template object")]
        return _containers(template.get("spec"), "spec.template.spec") + selects(spec) + _counts(spec)
    return check_workload


def _job_restart_policy(spec: Obj) -> Causes:
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        return [("spec.template.spec.restartPolicy",
                 f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"')]
    return []


def _map_selector(spec: Obj) -> Causes:
    """A ReplicationController's selector: a plain map of labels its template must carry."""
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        return [("spec.selector", "Required value")]
    return _selector({**spec, "selector": {"matchLabels": selector}})


def _service(obj: Obj) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return []
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        return [("spec.ports", "Invalid value: must be a list")]
    causes = []
    for i, port in enumerate(ports):
        number = port.get("port") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append((f"spec.ports[{i}].port", f"Invalid value: {number!r}: must be between 1 and 65535"))
    return causes


def _int_or_percent(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    return isinstance(value, str) and value.endswith("%") and value[:-1].isdigit() and int(value[:-1]) <= 100


def _pod_disruption_budget(obj: Obj) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    given = [f for f in ("minAvailable", "maxUnavailable") if spec.get(f) is not None]
    if len(given) > 1:
        return [("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set")]
    causes = [(f"spec.{f}", f"Invalid value: {spec[f]!r}: must be a non-negative integer or a percentage "
                            "between 0% and 100%") for f in given if not _int_or_percent(spec[f])]
    selector = spec.get("selector")
    if selector is not None:
        try:
            selector_matches(selector, {})
        except (ValueError, AttributeError, TypeError) as exc:
            causes.append(("spec.selector", f"Invalid value: {exc}"))
    return causes


def _api_service(obj: Obj) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    version, group = spec.get("version"), spec.get("group")
    name = obj["metadata"]["name"]
    causes = []
    if name != f"{version}.{group}" and not (group == "" and name == version):
        causes.append(("metadata.name", f'Invalid value: "{name}": must be `spec.version+"."+spec.group`: '
                                        f'"{version}.{group}"'))
    for field in ("groupPriorityMinimum", "versionPriority"):
        value = spec.get(field)
        if not isinstance(value, int) or not 0 < value <= 20000:
            causes.append((f"spec.{field}", f"Invalid value: {value!r}: must be positive and less than 20000"))
    return causes


VALIDATORS: dict[str, Callable[[Obj], Causes]] = {
    "Pod": _pod,
    "Deployment": _workload(_selector),
    "ReplicaSet": _workload(_selector),
    "StatefulSet": _workload(_selector),
    "DaemonSet": _workload(_selector),
    "Job": _workload(_job_restart_policy),
    "ReplicationController": _workload(_map_selector),
    "Service": _service,
    "PodDisruptionBudget": _pod_disruption_budget,
    "APIService": _api_service,
}


def check(kind: str, obj: Obj) -> Causes:
    validator = VALIDATORS.get(kind)
    return validator(obj) if validator else []


IMMUTABLE = {"Deployment": ["spec.selector"], "ReplicaSet": ["spec.selector"], "StatefulSet": ["spec.selector"],
             "DaemonSet": ["spec.selector"], "Job": ["spec.selector"], "Service": ["spec.clusterIP"],
             "APIService": ["spec.group", "spec.version"]}


def check_update(kind: str, old: Obj, new: Obj) -> Causes:
    causes = check(kind, new)
    for path in IMMUTABLE.get(kind, []):
        if get_path(new, path) != get_path(old, path):
            causes.append((path, f"Invalid value: {get_path(new, path)!r}: field is immutable"))
    return causes
