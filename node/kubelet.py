"""The kubelet: registers its Node, renews its Lease, and runs the pods bound to it, each in a PodWorker.

    kubelet.run()
      register()        create the Node with its status (capacity, addresses, nodeInfo, Ready), or find it
                        and write its status
      _lease_loop()     renew Lease kube-node-lease/NAME every lease_interval (the node lifecycle controller's
                        sign of life), as Kubernetes' kubelet does since 1.17
      _status_loop()    rewrite the Node's status when it is not what we report, or its heartbeat is old
      _pods_loop()      watch pods with fieldSelector spec.nodeName=NAME; one PodWorker per pod uid
Everything goes through api.client: the kubelet could run against any master, anywhere.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from api.client import ApiClient, ApiClientError, Conflict, NotFound
from api.event_recorder import EventRecorder
from node import node_object
from node.pod_worker import NodeContext, PodWorker
from node.runtime import Runtime
from node.sandbox import Sandboxes

Obj = dict[str, Any]
log = logging.getLogger("raftkube.kubelet")
TRANSIENT = (ApiClientError, OSError, asyncio.TimeoutError)


@dataclass
class KubeletConfig:
    name: str
    address: str  # the node's InternalIP; its kubelet server listens there
    pod_cidr: str
    state_dir: str  # this node's own directory
    capacity: dict[str, str] = field(default_factory=lambda: {"cpu": "4", "memory": "8Gi", "pods": "110"})
    lease_interval: float = 10.0
    lease_duration: int = 40
    status_interval: float = 10.0
    status_max_age: float = 60.0
    backoff_base: float = 10.0
    shutdown_grace: float = 2.0  # seconds each container gets when the node process itself is stopped


class Kubelet:
    def __init__(self, client: ApiClient, runtime: Runtime, config: KubeletConfig) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.kubelet_port = 0  # set once the kubelet server listens
        self.sandboxes = Sandboxes(config.state_dir, config.pod_cidr)
        self.ctx = NodeContext(client=client, runtime=runtime, sandboxes=self.sandboxes,
                               recorder=EventRecorder(client, "kubelet", config.name), node_name=config.name,
                               host_ip=config.address, allocatable=dict(config.capacity),
                               backoff_base=config.backoff_base)
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()  # uids of pods whose workers are done
        self._lease: Obj | None = None
        self.node_uid = ""

    @property
    def name(self) -> str:
        return self.config.name

    async def run(self) -> None:
        await self.register()
        log.info("node %s registered (InternalIP %s, pods from %s, runtime %s)", self.name, self.config.address,
                 self.config.pod_cidr, self.runtime.kind)
        await asyncio.gather(self._lease_loop(), self._status_loop(), self._pods_loop())

    def find(self, namespace: str, name: str) -> PodWorker | None:
        """The worker of a pod on this node (the kubelet server asks)."""
        return next((w for w in self.workers.values()
                     if w.pod["metadata"]["namespace"] == namespace and w.pod_name == name), None)

    # -- the Node and its Lease -----------------------------------------------------------

    async def register(self) -> None:
        c = self.config
        while True:
            try:
                try:  # with its status, as the real kubelet: nobody sees this Node without conditions
                    obj = await self.client.create("nodes", {
                        **node_object.node(c.name, runtime=self.runtime.kind, pod_cidr=c.pod_cidr),
                        "status": self._node_status({})})
                except Conflict:
                    obj = await self.client.get("nodes", c.name)
                    await self._write_node_status(obj)
                self.node_uid = obj["metadata"]["uid"]
                return
            except TRANSIENT as exc:
                log.warning("node %s: could not register (%s); retrying", c.name, exc)
                await asyncio.sleep(1.0)

    def _node_status(self, previous: Obj) -> Obj:
        c = self.config
        return node_object.status(previous, name=c.name, address=c.address, capacity=c.capacity,
                                  runtime=self.runtime.kind, kubelet_port=self.kubelet_port)

    async def _write_node_status(self, current: Obj) -> None:
        await self.client.update_status("nodes", {"apiVersion": "v1", "kind": "Node",
                                                  "metadata": {"name": self.config.name},
                                                  "status": self._node_status(current.get("status") or {})})

    async def _status_loop(self) -> None:
        c = self.config
        while True:
            await asyncio.sleep(c.status_interval)
            try:
                current = await self.client.get("nodes", c.name)
                if node_object.needs_update(current, address=c.address, kubelet_port=self.kubelet_port,
                                            capacity=c.capacity, max_age=c.status_max_age):
                    await self._write_node_status(current)
            except NotFound:
                log.warning("node %s: its Node object was deleted; registering again", c.name)
                await self.register()
            except TRANSIENT as exc:
                log.warning("node %s: could not update its status: %s", c.name, exc)

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self.renew_lease()
            except TRANSIENT as exc:
                log.warning("node %s: could not renew its Lease: %s", self.name, exc)
            await asyncio.sleep(self.config.lease_interval)

    async def renew_lease(self) -> None:
        ns = node_object.LEASE_NAMESPACE
        if self._lease is None:
            try:
                self._lease = await self.client.get("leases", self.name, ns)
            except NotFound:
                self._lease = await self.client.create(
                    "leases", node_object.lease(self.name, self.node_uid, self.config.lease_duration), ns)
                return
        spec = self._lease.setdefault("spec", {})
        spec.update(holderIdentity=self.name, leaseDurationSeconds=self.config.lease_duration,
                    renewTime=node_object.micro_now())
        try:
            self._lease = await self.client.update("leases", self._lease)
        except (Conflict, NotFound):
            self._lease = None  # changed or removed by someone else: read it again next time
            raise

    # -- pods -----------------------------------------------------------------------------

    async def _pods_loop(self) -> None:
        first = True
        async for kind, obj in self.client.watch("pods", field_selector=f"spec.nodeName={self.name}"):
            if kind == "RELIST":
                uids = {o["metadata"]["uid"] for o in obj}
                for pod in obj:
                    self._dispatch(pod)
                for uid, worker in list(self.workers.items()):
                    if uid not in uids:
                        worker.deleted()
                if first:
                    self._remove_orphans(uids)
                    first = False
            elif kind == "DELETED":
                worker = self.workers.get(obj["metadata"]["uid"])
                if worker is not None:
                    worker.deleted()
            else:
                self._dispatch(obj)

    def _dispatch(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self.workers:
            self.workers[uid].update(pod)
        elif uid not in self._finished:
            worker = PodWorker(self.ctx, pod)
            self.workers[uid] = worker
            task = asyncio.get_running_loop().create_task(worker.run(), name=f"pod {worker.key}")
            self._tasks[uid] = task
            task.add_done_callback(lambda t, uid=uid: self._worker_done(uid, t))

    def _worker_done(self, uid: str, task: asyncio.Task) -> None:
        worker = self.workers.pop(uid, None)
        self._tasks.pop(uid, None)
        self._finished[uid] = None
        while len(self._finished) > 10_000:
            self._finished.popitem(last=False)
        if not task.cancelled() and task.exception() is not None and worker is not None:
            log.error("node %s: the worker of pod %s failed", self.name, worker.key, exc_info=task.exception())

    def _remove_orphans(self, known: set[str]) -> None:
        """Sandboxes of pods no longer bound here (deleted while the kubelet was down): kill and remove."""
        for uid, info in self.sandboxes.existing().items():
            if uid in known or uid in self.workers:
                continue
            pod = {"metadata": {"uid": uid, "namespace": info.get("namespace", ""), "name": info.get("name", "")},
                   "spec": {}}
            sandbox = self.sandboxes.open(pod)
            containers = os.path.join(sandbox.dir, "containers")
            for name in os.listdir(containers) if os.path.isdir(containers) else []:
                record = sandbox.load_record(name)
                handle = self.runtime.adopt(sandbox, pod, name, record.container_id) if record else None
                if handle is not None:
                    handle.signal(signal.SIGKILL)
            log.info("node %s: removed the sandbox of pod %s/%s, gone while the kubelet was down", self.name,
                     info.get("namespace"), info.get("name"))
            self.sandboxes.remove(uid)

    async def shutdown(self) -> None:
        """The node process stops: its containers stop too (so `raftkube up` leaves no process behind);
        the pods stay bound, and a kubelet started again restarts them."""
        workers = list(self.workers.values())
        for w in workers:
            for r in w.runners:
                r.stopping = True
        await asyncio.gather(*(r.stop(self.config.shutdown_grace) for w in workers for r in w.runners),
                             return_exceptions=True)
        for task in self._tasks.values():
            task.cancel()
