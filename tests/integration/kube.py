"""Playing a kubelet by hand in controller tests: Node objects and pod status written through the kube API."""
from __future__ import annotations

import datetime
from typing import Any

from api.client import ApiClient

Obj = dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def make_node(client: ApiClient, name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
                    labels: dict[str, str] | None = None, taints: list[Obj] | None = None, ready: bool = True) -> Obj:
    """A Node as a kubelet registers it, Ready (or not)."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    node = await client.create("nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints} if taints else {}})
    node["status"] = {"capacity": resources, "allocatable": resources,
                      "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                      "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                      "reason": "KubeletReady" if ready else "KubeletNotReady",
                                      "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}]}
    return await client.update_status("nodes", node)


async def set_pod_phase(client: ApiClient, pod: Obj, phase: str = "Running", *, ready: bool = True,
                        ip: str = "127.0.0.1", exit_code: int | None = None) -> Obj:
    """Write the status a kubelet would: phase, Ready condition, podIP, container states."""
    pod = await client.get("pods", pod["metadata"]["name"], pod["metadata"]["namespace"])
    ready = ready and phase == "Running"
    flag = "True" if ready else "False"
    state: Obj = {"running": {"startedAt": _now()}} if phase == "Running" else {
        "terminated": {"exitCode": exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1),
                       "reason": "Completed" if phase == "Succeeded" else "Error", "finishedAt": _now()}}
    pod["status"] = {**(pod.get("status") or {}), "phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
                     "hostIP": "127.0.0.1", "startTime": _now(),
                     "conditions": [{"type": t, "status": flag if t in ("Ready", "ContainersReady") else "True",
                                     "lastTransitionTime": _now()}
                                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                     "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "ready": ready,
                                            "restartCount": 0, "state": state, "started": phase == "Running"}
                                           for c in pod["spec"].get("containers") or []]}
    return await client.update_status("pods", pod)
