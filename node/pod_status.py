"""A pod's status, as the kubelet writes it, computed from what its containers are doing (pure functions).

The pod workers keep one `ContainerRecord` per container (init containers included) and hand them here;
`pod_status` turns them into the `status` Kubernetes clients read: phase, the four conditions, podIP(s),
hostIP, startTime and complete containerStatuses (every field the official Python client requires).

Phases follow the Kubernetes documentation ("Pod phase"):
- Pending: an init container has not finished, or a container has never started;
- Running: every container has started once, and one runs or is being restarted;
- Succeeded: every container ended with exit code 0 and will not be restarted (restartPolicy Never/OnFailure);
- Failed: every container ended, one (or an init container) failed, and none will be restarted.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
OWN_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRecord:
    """What one container is doing now; its restarts and its previous run."""
    name: str
    image: str = ""
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    container_id: str = ""
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    last: Obj = field(default_factory=dict)  # the previous run's `terminated` state, or {}

    def running(self, container_id: str) -> None:
        self.state, self.reason, self.message, self.exit_code = "running", "", "", None
        self.started_at, self.finished_at, self.container_id = now(), None, container_id

    def terminated(self, exit_code: int, reason: str | None = None, message: str = "") -> None:
        self.state, self.exit_code, self.finished_at = "terminated", exit_code, now()
        self.reason = reason or ("Completed" if exit_code == 0 else "Error")
        self.message, self.ready, self.started = message, False, False

    def waiting(self, reason: str, message: str = "") -> None:
        """Waiting again (CrashLoopBackOff, a config error): a finished run becomes lastState."""
        if self.state == "terminated":
            self.last = {"terminated": self.state_dict()["terminated"]}
        self.state, self.reason, self.message, self.ready, self.started = "waiting", reason, message, False, False

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0

    def state_dict(self) -> Obj:
        if self.state == "running":
            return {"running": {"startedAt": self.started_at}}
        if self.state == "terminated":
            terminated = {"exitCode": self.exit_code, "reason": self.reason, "startedAt": self.started_at,
                          "finishedAt": self.finished_at, "containerID": self.container_id}
            if self.message:
                terminated["message"] = self.message
            return {"terminated": terminated}
        return {"waiting": {"reason": self.reason, **({"message": self.message} if self.message else {})}}

    def status(self) -> Obj:
        out = {"name": self.name, "image": self.image, "imageID": image_id(self.image), "state": self.state_dict(),
               "lastState": self.last, "ready": self.ready, "started": self.started,
               "restartCount": self.restart_count}
        if self.container_id:
            out["containerID"] = self.container_id
        return out

    def to_json(self) -> Obj:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Obj) -> "ContainerRecord":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def image_id(image: str) -> str:
    """raftkube pulls no images: the image ID only repeats the image's name (see README, "Nodes")."""
    return f"raftkube://{image}" if image else ""


def will_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def phase(policy: str, init: list[ContainerRecord], main: list[ContainerRecord]) -> str:
    for c in init:
        if c.state == "terminated" and c.exit_code != 0 and policy == "Never":
            return "Failed"
        if not c.succeeded:
            return "Pending"
    if any(c.state == "waiting" and c.restart_count == 0 and not c.last for c in main):
        return "Pending"
    if all(c.state == "terminated" for c in main) and not any(will_restart(policy, c.exit_code or 0) for c in main):
        return "Succeeded" if all(c.succeeded for c in main) else "Failed"
    return "Running"


def _condition(kind: str, ok: bool, previous: dict[str, Obj], reason: str = "", message: str = "") -> Obj:
    status = "True" if ok else "False"
    old = previous.get(kind) or {}
    cond = {"type": kind, "status": status, "lastProbeTime": None,
            "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == status else now()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def conditions(pod_phase: str, init: list[ContainerRecord], main: list[ContainerRecord],
               previous: list[Obj]) -> list[Obj]:
    """PodScheduled, Initialized, ContainersReady and Ready, keeping each transition time while its status holds;
    conditions of other types (readiness gates, DisruptionTarget) are kept as they are."""
    before = {c.get("type"): c for c in previous if isinstance(c, dict)}
    initialized = all(c.succeeded for c in init)
    unready = [c.name for c in main if not c.ready]
    done = pod_phase in ("Succeeded", "Failed")
    reason = "PodCompleted" if done else ("ContainersNotReady" if unready else "")
    message = "" if done or not unready else f"containers with unready status: [{' '.join(unready)}]"
    not_init = [c.name for c in init if not c.succeeded]
    out = [_condition("PodScheduled", True, before),
           _condition("Initialized", initialized or done, before, "" if initialized or done else "ContainersNotInitialized",
                      "" if initialized or done else f"containers with incomplete status: [{' '.join(not_init)}]"),
           _condition("ContainersReady", not unready, before, reason, message),
           _condition("Ready", not unready, before, reason, message)]
    return out + [c for kind, c in before.items() if kind not in OWN_CONDITIONS]


def pod_status(pod: Obj, init: list[ContainerRecord], main: list[ContainerRecord], *, pod_ip: str, host_ip: str,
               start_time: str) -> Obj:
    """The whole `status` of `pod` for what its containers are doing."""
    old = pod.get("status") or {}
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    pod_phase = phase(policy, init, main)
    status: Obj = {"phase": pod_phase,
                   "conditions": conditions(pod_phase, init, main, old.get("conditions") or []),
                   "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "startTime": start_time,
                   "qosClass": qos_class(pod),
                   "containerStatuses": [c.status() for c in main]}
    if init:
        status["initContainerStatuses"] = [c.status() for c in init]
    if pod_ip:
        status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
    return status


def qos_class(pod: Obj) -> str:
    """Guaranteed (every container's limits equal its requests for cpu and memory), BestEffort (none set),
    else Burstable."""
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers if isinstance(c, dict)]
    if not any((r.get("requests") or r.get("limits")) for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"
