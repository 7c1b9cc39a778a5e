"""The pod sandbox: what Kubernetes' pause container holds for a pod, here a directory and an IP address.

    NODE_DIR/pods/<pod uid>/          (NODE_DIR: the node's own directory, .raftkube/nodes/NAME with `up`)
        pod.json                      namespace, name and IP (so a restarted kubelet knows whose it is)
        volumes/<volume name>/        emptyDir, configMap, secret and downwardAPI volumes as files
        containers/<name>/root/       the container's working directory; each volumeMount's mountPath is a
                                      symlink inside it (root/etc/config -> ../../../volumes/config)
        containers/<name>/state.json  the container's record (restarts, last state) and its process
        containers/<name>/current.log, current.log.1, previous.log   its output, bounded

Every container of a pod shares the pod's IP, taken from the node's pod CIDR on the loopback range
(127.A.B.0/24: any 127/8 address is bindable on Linux without root); the IP is kept in pod.json, so a
restarted kubelet hands out no address twice.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

from node.pod_status import ContainerRecord

Obj = dict[str, Any]


@dataclass
class Sandbox:
    uid: str
    namespace: str
    name: str
    dir: str
    ip: str

    def container_dir(self, container: str) -> str:
        path = os.path.join(self.dir, "containers", container)
        os.makedirs(path, exist_ok=True)
        return path

    def root_dir(self, container: str) -> str:
        """The container's working directory, where its volumeMounts appear (see the module docstring)."""
        return os.path.join(self.dir, "containers", container, "root")

    def log_path(self, container: str, previous: bool = False) -> str:
        return os.path.join(self.dir, "containers", container, "previous.log" if previous else "current.log")

    def save_record(self, record: ContainerRecord, extra: Obj | None = None) -> None:
        """The container's record (and runtime facts such as its pid), replaced atomically."""
        path = os.path.join(self.container_dir(record.name), "state.json")
        with open(path + ".tmp", "w") as f:
            json.dump({"record": record.to_json(), **(extra or {})}, f)
        os.replace(path + ".tmp", path)

    def load_state(self, container: str) -> Obj:
        try:
            with open(os.path.join(self.dir, "containers", container, "state.json")) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def load_record(self, container: str) -> ContainerRecord | None:
        data = self.load_state(container).get("record")
        try:
            return ContainerRecord.from_json(data) if isinstance(data, dict) else None
        except TypeError:
            return None


class Sandboxes:
    """The pod directories of one node and the pod IPs they hold."""

    def __init__(self, root: str, pod_cidr: str) -> None:
        self.root = os.path.join(root, "pods")
        os.makedirs(self.root, exist_ok=True)
        network = ipaddress.ip_network(pod_cidr, strict=False)
        self.gateway = str(network.network_address + 1)  # the node's own address in its pod network
        self._free = [str(ip) for ip in list(network.hosts())[1:]]
        self._used: dict[str, str] = {}  # ip -> uid
        for uid, info in self.existing().items():
            if info.get("ip"):
                self._used[info["ip"]] = uid

    def existing(self) -> dict[str, Obj]:
        """uid -> pod.json of every pod directory on disk (a restarted kubelet's pods)."""
        found = {}
        for uid in os.listdir(self.root):
            try:
                with open(os.path.join(self.root, uid, "pod.json")) as f:
                    found[uid] = json.load(f)
            except (OSError, ValueError):
                found[uid] = {}
        return found

    def open(self, pod: Obj, *, host_network_ip: str | None = None) -> Sandbox:
        """The pod's sandbox, made on first use, found again after a kubelet restart."""
        meta = pod["metadata"]
        uid = meta["uid"]
        path = os.path.join(self.root, uid)
        info = self.existing_one(uid)
        ip = info.get("ip") or host_network_ip or self._allocate(uid)
        if not info:
            os.makedirs(os.path.join(path, "volumes"), exist_ok=True)
            with open(os.path.join(path, "pod.json.tmp"), "w") as f:
                json.dump({"namespace": meta["namespace"], "name": meta["name"], "ip": ip}, f)
            os.replace(os.path.join(path, "pod.json.tmp"), os.path.join(path, "pod.json"))
        return Sandbox(uid, meta["namespace"], meta["name"], path, ip)

    def existing_one(self, uid: str) -> Obj:
        try:
            with open(os.path.join(self.root, uid, "pod.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _allocate(self, uid: str) -> str:
        for ip in self._free:
            if ip not in self._used:
                self._used[ip] = uid
                return ip
        raise RuntimeError(f"the node's pod network has no free address for pod {uid}; "
                           "delete some pods or give the node a larger --pod-cidr")

    def remove(self, uid: str) -> None:
        """Forget the pod: its directory (volumes, logs) and its IP."""
        shutil.rmtree(os.path.join(self.root, uid), ignore_errors=True)
        for ip, owner in list(self._used.items()):
            if owner == uid:
                del self._used[ip]
