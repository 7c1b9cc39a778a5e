"""The Node object a kubelet registers and keeps current, and its Lease (pure builders, plus host facts).

nodeInfo carries the ten fields the official Python client requires; machineID and systemUUID are derived from
the host's and the node's name, so several nodes on one machine differ and a restarted node keeps its own.
"""
from __future__ import annotations

import datetime
import hashlib
import platform
import uuid
from typing import Any

Obj = dict[str, Any]
VERSION = "v1.32.0+raftkube"
LEASE_NAMESPACE = "kube-node-lease"
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def node_info(name: str, runtime: str) -> Obj:
    host_id = _read("/etc/machine-id") or platform.node()
    machine = hashlib.sha256(f"{host_id}/{name}".encode()).hexdigest()[:32]
    return {"machineID": machine, "systemUUID": str(uuid.UUID(machine)),
            "bootID": _read("/proc/sys/kernel/random/boot_id", str(uuid.uuid4())),
            "kernelVersion": platform.release(), "osImage": os_image(),
            "containerRuntimeVersion": f"raftkube-{runtime}://0.1.0", "kubeletVersion": VERSION,
            "kubeProxyVersion": VERSION, "operatingSystem": "linux",
            "architecture": ARCHITECTURES.get(platform.machine(), platform.machine())}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node(name: str, *, runtime: str, pod_cidr: str, labels: dict[str, str] | None = None) -> Obj:
    """The Node to create on first registration (spec and labels are the kubelet's only then: a cordon stays)."""
    arch = ARCHITECTURES.get(platform.machine(), platform.machine())
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                                                  "beta.kubernetes.io/arch": arch,
                                                  "raftkube.io/runtime": runtime, **(labels or {})}},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}}


CONDITIONS = [("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
              ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
              ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
              ("Ready", "True", "KubeletReady", "kubelet is posting ready status")]


def conditions(previous: list[Obj]) -> list[Obj]:
    """The kubelet's conditions, heartbeat now; transition times kept while a condition's status holds."""
    before = {c.get("type"): c for c in previous if isinstance(c, dict)}
    now = _now()
    out = []
    for kind, status, reason, message in CONDITIONS:
        old = before.get(kind) or {}
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == status else now})
    return out


def status(previous: Obj, *, name: str, address: str, capacity: dict[str, str], runtime: str,
           kubelet_port: int) -> Obj:
    return {**previous, "capacity": capacity, "allocatable": capacity,
            "conditions": conditions(previous.get("conditions") or []),
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": node_info(name, runtime), "images": previous.get("images") or [],
            "phase": "Running"}


def needs_update(current: Obj, *, address: str, kubelet_port: int, capacity: dict[str, str],
                 max_age: float) -> bool:
    """Whether the stored status is not what this kubelet reports (another wrote Ready=Unknown, a restart moved
    the log port) or its heartbeat is older than `max_age` seconds."""
    st = current.get("status") or {}
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    if ready.get("status") != "True" or ready.get("reason") != "KubeletReady":
        return True
    if ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") != kubelet_port:
        return True
    if {"type": "InternalIP", "address": address} not in (st.get("addresses") or []) or st.get("capacity") != capacity:
        return True
    try:
        beat = datetime.datetime.strptime(ready.get("lastHeartbeatTime", ""), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return True
    age = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - beat
    return age.total_seconds() >= max_age


def lease(name: str, node_uid: str, duration: int) -> Obj:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": micro_now()}}
