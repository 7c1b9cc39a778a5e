"""The scheduler: binds each pod that has no node (and asks for "default-scheduler") to the node that fits it best.

It keeps, per node, a NodeInfo of the pods on it (controllers/scheduling.py), updated by the pod and node informers.
A scheduling cycle is synchronous: read the pod, filter and score the nodes, and *assume* the pod onto the chosen
node (count its requests there) before anything awaits. The binding cycle (POST pods/NAME/binding) then runs in a
task of its own, many at once, as kube-scheduler's goroutines do: the next pod is decided while earlier bindings
are in flight, and still sees their resources taken. An assumed pod stays counted until the informer shows it bound
(or deleted); a binding that fails forgets the assumption and the pod is tried again with backoff.

A pod that fits nowhere gets a FailedScheduling event and PodScheduled=False (reason Unschedulable), and waits:
it is tried again when a node is added or changes in a way that matters, when a pod leaves a node, or after five
minutes, and never sooner than its backoff (1 s, doubling to 10 s) allows.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from api.client import ApiClientError, NotFound
from controllers.base import Context, Controller
from controllers.informer import key_of
from controllers.objects import condition, is_deleting, is_terminal, now
from controllers.scheduling import NodeInfo, fit_error, node_changed_for_scheduling, schedule

Obj = dict[str, Any]

SCHEDULER_NAME = "default-scheduler"
BINDS_IN_FLIGHT = 128
INITIAL_BACKOFF = 1.0  # kube-scheduler's podInitialBackoffDuration
MAX_BACKOFF = 10.0  # podMaxBackoffDuration
UNSCHEDULABLE_RETRY = 300.0  # try a waiting pod again after this long even if nothing seemed to change
#                             (podMaxInUnschedulablePodsDuration: a safety net, wakes come from changes)


def wants_scheduling(pod: Obj) -> bool:
    """Ours to place: no node yet, our schedulerName (or none), neither finished nor being deleted."""
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and not is_terminal(pod) and not is_deleting(pod))


def backoff(attempts: int) -> float:
    return min(INITIAL_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


class Scheduler(Controller):
    name = "scheduler"
    component = "default-scheduler"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.pods = ctx.informers["pods"]
        self.nodes = ctx.informers["nodes"]
        self.infos: dict[str, NodeInfo] = {}  # node name -> its node (None once deleted) and pods
        self.placed: dict[str, str] = {}  # pod key -> the node its resources are counted on
        self.assumed: dict[str, str] = {}  # pod key -> node we bound it to, while the cache still shows it unbound
        self.waiting: dict[str, float] = {}  # unschedulable pod key -> loop time before which it is not retried
        self.attempts: dict[str, int] = {}
        self.binds = asyncio.Semaphore(BINDS_IN_FLIGHT)
        self.bind_tasks: set[asyncio.Task] = set()
        self.rng = random.Random()
        self.nodes.add_handler(self.on_node)
        self.pods.add_handler(self.on_pod)

    # -- informer handlers: keep the NodeInfos right, enqueue pods to place ------------------------------------

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        pod = new or old
        assert pod is not None
        key = key_of(pod)
        if new is None or is_terminal(new):  # gone, or finished: its resources are free
            self.assumed.pop(key, None)
            self.waiting.pop(key, None)
            self.attempts.pop(key, None)
            if self.unplace(key):
                self.wake_waiting()
            return
        node = (new.get("spec") or {}).get("nodeName")
        if node:
            self.assumed.pop(key, None)
            self.waiting.pop(key, None)
            self.attempts.pop(key, None)
            self.place(key, node, new)
        elif key in self.assumed:
            self.place(key, self.assumed[key], new)
        elif wants_scheduling(new):
            if key not in self.waiting:
                self.queue.add(key)
            elif old is None or old.get("spec") != new.get("spec") or old["metadata"].get("labels") != \
                    new["metadata"].get("labels"):  # the pod itself changed: maybe it fits now
                self.retry_waiting(key)

    def on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        name = (new or old or {})["metadata"]["name"]
        if new is None:
            info = self.infos.get(name)
            if info is not None:
                info.node = None
                if not info.pods:
                    del self.infos[name]
            return
        self.infos.setdefault(name, NodeInfo()).set_node(new)
        if node_changed_for_scheduling(old, new):
            self.wake_waiting()

    def place(self, key: str, node: str, pod: Obj) -> None:
        """Count the pod on `node` (moving it from wherever it was counted before)."""
        before = self.placed.get(key)
        if before is not None and before != node:
            self.unplace(key)
        self.infos.setdefault(node, NodeInfo()).add_pod(key, pod)
        self.placed[key] = node

    def unplace(self, key: str) -> bool:
        """Stop counting the pod anywhere. Was it counted?"""
        node = self.placed.pop(key, None)
        if node is None:
            return False
        info = self.infos.get(node)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self.infos[node]
        return True

    def wake_waiting(self) -> None:
        for key in list(self.waiting):
            self.retry_waiting(key)

    def retry_waiting(self, key: str) -> None:
        self.queue.add_after(key, self.waiting[key] - asyncio.get_running_loop().time())

    # -- the scheduling cycle ------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        await self.binds.acquire()  # first, so the decision below is made on the freshest cache
        try:
            pod = self.pods.get(key)
            if pod is None or not wants_scheduling(pod) or key in self.assumed:
                self.waiting.pop(key, None)
                self.binds.release()
                return
            node, refused = schedule(pod, [i for i in self.infos.values() if i.node is not None], self.rng)
        except BaseException:
            self.binds.release()
            raise
        if node is None:
            self.binds.release()
            self.count("unschedulable")
            await self.mark_unschedulable(key, pod, fit_error(len(refused), refused))
            return
        self.assumed[key] = node
        self.place(key, node, pod)
        self.waiting.pop(key, None)
        self.attempts.pop(key, None)
        task = asyncio.create_task(self.bind(key, pod, node))
        self.bind_tasks.add(task)
        task.add_done_callback(self.bind_tasks.discard)

    async def mark_unschedulable(self, key: str, pod: Obj, message: str) -> None:
        attempts = self.attempts[key] = self.attempts.get(key, 0) + 1
        self.waiting[key] = asyncio.get_running_loop().time() + backoff(attempts)
        self.queue.add_after(key, UNSCHEDULABLE_RETRY)
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        self.log.log(logging.INFO if attempts == 1 else logging.DEBUG, "pod %s/%s is unschedulable: %s",
                     namespace, name, message)
        self.record(_pod_ref(pod), "Warning", "FailedScheduling", message)
        scheduled = condition(pod, "PodScheduled") or {}
        if (scheduled.get("status"), scheduled.get("reason"), scheduled.get("message")) == (
                "False", "Unschedulable", message):
            return
        patch = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": message, "lastProbeTime": None,
                                            "lastTransitionTime": now()}]}}
        try:
            await self.client.patch("pods", name, patch, namespace, patch_type="strategic", subresource="status")
        except NotFound:
            pass

    # -- the binding cycle ---------------------------------------------------------------------------------------

    async def bind(self, key: str, pod: Obj, node: str) -> None:
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.client.post_subresource("pods", name, "binding", binding, namespace)
            self.count("scheduled")
            self.record(_pod_ref(pod), "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, ApiClientError) and exc.status in (404, 409):
                return  # gone, or bound already (perhaps by our own earlier try): the informer will say where
            self.log.warning("binding pod %s/%s to node %s failed: %s", namespace, name, node, exc)
            self.count("error")
            self.forget(key, node)
            self.queue.retry(key)
        finally:
            self.binds.release()

    def forget(self, key: str, node: str) -> None:
        """Undo an assumption whose binding failed (unless the cache has moved on since)."""
        if self.assumed.get(key) != node:
            return
        del self.assumed[key]
        pod = self.pods.get(key)
        if pod is None or not (pod.get("spec") or {}).get("nodeName"):
            self.unplace(key)

    async def run(self) -> None:
        try:
            await super().run()
        finally:  # no longer the leader: bindings in flight must not land afterwards
            for task in list(self.bind_tasks):
                task.cancel()


def _pod_ref(pod: Obj) -> Obj:
    """A cached pod with its kind, for the Event's involvedObject (list items may lack it)."""
    return {**pod, "kind": "Pod", "apiVersion": "v1"}
