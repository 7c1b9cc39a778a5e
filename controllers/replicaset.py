"""The ReplicaSet controller: keeps spec.replicas active pods that match the selector (Kubernetes' replica_set.go).

One sync of a ReplicaSet:
  1. claim: active pods it controls and that still match stay; those that stopped matching are released (their
     ownerReference removed); orphans that match are adopted (a controller ownerReference patched in);
  2. if the pod cache has caught up with this controller's own creates and deletes (`Expectations`), create the
     missing pods in slow-start batches (1, 2, 4, ...: a failing create stops after one try, not five hundred), or
     delete the surplus, worst pods first (`deletion_order`, Kubernetes' ActivePodsWithRanks);
  3. write status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for minReadySeconds),
     observedGeneration, and a ReplicaFailure condition while creates fail.
"""
from __future__ import annotations

import asyncio
import copy
import math
import time
from typing import Any

from api.client import ApiClientError, Conflict, NotFound
from controllers.base import Context, Controller
from controllers.informer import key_of
from controllers.objects import (Expectations, condition, controller_of, is_active, is_available, is_deleting,
                                 is_ready, matches, now, parse_time, pod_from_template)
from controllers.pod_control import claim, create_pods

Obj = dict[str, Any]

BURST_REPLICAS = 500  # creates or deletes per sync, as kube-controller-manager's --replicaset burst
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


# -- pure decisions ------------------------------------------------------------------------------------------

def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes for `count` creates: 1, 2, 4, ... (client-go's slowStartBatch), the last one what is left."""
    batches, size = [], initial
    while count > 0:
        batches.append(min(size, count))
        count -= batches[-1]
        size *= 2
    return batches


def _ready_since(pod: Obj) -> float:
    return parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime")) or -math.inf


def _deletion_cost(pod: Obj) -> int:
    try:
        return int((pod["metadata"].get("annotations") or {}).get(DELETION_COST, "0"))
    except ValueError:
        return 0


def _restarts(pod: Obj) -> int:
    return max((int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def deletion_order(pods: list[Obj], related: list[Obj] | None = None) -> list[Obj]:
    """Pods, the first to delete first (ActivePodsWithRanks): unscheduled < scheduled; Pending < Unknown <
    Running; not ready < ready; lower pod-deletion-cost; more related pods on the same node; ready for less
    time; more restarts; newer."""
    on_node: dict[str, int] = {}
    for p in related if related is not None else pods:
        node = p["spec"].get("nodeName")
        if node and is_active(p):
            on_node[node] = on_node.get(node, 0) + 1

    def key(pod: Obj) -> tuple:
        node = pod["spec"].get("nodeName") or ""
        ready = is_ready(pod)
        return (bool(node), _PHASE_ORDER.get((pod.get("status") or {}).get("phase", ""), 0), ready,
                _deletion_cost(pod), -on_node.get(node, 0) if node else 0,
                -_ready_since(pod) if ready else 0.0, -_restarts(pod),
                -(parse_time(pod["metadata"].get("creationTimestamp")) or -math.inf))
    return sorted(pods, key=key)


def replicaset_status(rs: Obj, pods: list[Obj], at: float, failure: str | None = None) -> Obj:
    """calculateStatus over the active pods the ReplicaSet controls."""
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    status: Obj = {"replicas": len(pods),
                   "fullyLabeledReplicas": sum(1 for p in pods if template_labels.items()
                                               <= (p["metadata"].get("labels") or {}).items()),
                   "readyReplicas": sum(1 for p in pods if is_ready(p)),
                   "availableReplicas": sum(1 for p in pods if is_available(p, min_ready, at)),
                   "observedGeneration": rs["metadata"].get("generation", 1)}
    old = next((c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") == "ReplicaFailure"),
               None)
    if failure is not None:
        if old and old.get("message") == failure:
            status["conditions"] = [old]
        else:
            status["conditions"] = [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                     "message": failure, "lastTransitionTime": now()}]
    return status


def next_available_in(rs: Obj, pods: list[Obj], at: float) -> float | None:
    """Seconds until the next ready pod has been ready for minReadySeconds (when to look again), or None."""
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    waits = [_ready_since(p) + min_ready - at for p in pods if is_ready(p) and not is_available(p, min_ready, at)]
    return max(min(waits), 0.0) + 0.5 if waits and min_ready > 0 else None


# -- the controller ------------------------------------------------------------------------------------------

class ReplicaSetController(Controller):
    name = "replicaset"
    component = "replicaset-controller"
    service_account = "replicaset-controller"
    kind, plural = "ReplicaSet", "replicasets"  # what it controls (ReplicationControllerController: the same)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.rss = ctx.informers[self.plural]
        self.pods = ctx.informers["pods"]
        self.expectations = Expectations()
        self.rss.add_handler(self.on_replicaset)
        self.pods.add_handler(self.on_pod)

    def on_replicaset(self, event: str, old: Obj | None, new: Obj | None) -> None:
        rs = new or old
        assert rs is not None
        if event == "delete":
            self.expectations.forget(key_of(rs))
        self.enqueue(rs)

    def owner_key(self, pod: Obj) -> str | None:
        """The key of the ReplicaSet in the cache that controls the pod (by name and uid), or None."""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != self.kind:
            return None
        key = f"{pod['metadata']['namespace']}/{ref['name']}"
        rs = self.rss.get(key)
        return key if rs is not None and rs["metadata"].get("uid") == ref.get("uid") else None

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Wake the owners of a pod that came, went, changed owner, labels or readiness; for an orphan, every
        ReplicaSet that could adopt it."""
        keys = {self.owner_key(p) for p in (old, new) if p is not None} - {None}
        if new is not None and controller_of(new) is None and is_active(new):
            keys |= {key_of(rs) for rs in self.rss.list(new["metadata"]["namespace"]) if matches(rs, new)}
        if event == "delete" and old is not None and (owner := self.owner_key(old)):
            self.expectations.creation_observed(owner, key_of(old))
        for key in keys:
            assert key is not None
            self.queue.add(key)
            rs = self.rss.get(key)
            min_ready = int((rs or {}).get("spec", {}).get("minReadySeconds") or 0)
            if new is not None and min_ready and is_ready(new) and not (old is not None and is_ready(old)):
                self.queue.add_after(key, min_ready + 0.5)

    async def sync(self, key: str) -> None:
        cached = self.rss.get(key)
        if cached is None:
            self.expectations.forget(key)
            return
        rs = copy.deepcopy(cached)
        namespace = rs["metadata"]["namespace"]
        pods = await claim(self.client, owner_plural=self.plural, owner=rs, plural="pods",
                           candidates=[p for p in self.pods.list(namespace) if is_active(p)])
        failure: ApiClientError | None = None
        if self.expectations.satisfied(key, self.pods.cache) and not is_deleting(rs):
            try:
                await self.manage(key, rs, pods)
            except ApiClientError as exc:
                failure = exc
        at = time.time()
        status = replicaset_status(rs, pods, at, f"{failure}" if failure is not None else None)
        if status != {k: v for k, v in (rs.get("status") or {}).items() if k in status or k == "conditions"}:
            rs["status"] = status
            await self.client.update_status(self.plural, rs)
        if failure is not None:
            raise failure
        wait = next_available_in(rs, pods, at)
        if wait is not None:
            self.queue.add_after(key, wait)

    async def manage(self, key: str, rs: Obj, pods: list[Obj]) -> None:
        """Create the missing pods or delete the surplus (at most BURST_REPLICAS in one sync)."""
        diff = len(pods) - int(rs["spec"].get("replicas") or 0)
        if diff < 0:
            await self.create_pods(key, rs, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            related = self.related_pods(rs) or pods
            await asyncio.gather(*(self.delete_pod(key, rs, pod)
                                   for pod in deletion_order(pods, related)[:min(diff, BURST_REPLICAS)]))

    async def create_pods(self, key: str, rs: Obj, count: int) -> None:
        """In slow-start batches; a failing batch raises, and the rest are not tried: the next sync starts again
        with one."""
        template = rs["spec"].get("template") or {}
        for size in slow_start_batches(count):
            await create_pods(self, self.expectations, key, rs, [pod_from_template(rs, template) for _ in range(size)])

    async def delete_pod(self, key: str, rs: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], uid=meta.get("uid"))
        except (NotFound, Conflict):  # gone already, or a new pod of the same name: not ours to delete
            return
        except ApiClientError as exc:
            self.record(rs, "Warning", "FailedDelete", f"Error deleting: {exc}")
            raise
        self.expectations.expect_delete(key, key_of(pod), meta.get("uid", ""))
        self.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    def related_pods(self, rs: Obj) -> list[Obj]:
        """Active pods of every ReplicaSet with the same controller (a Deployment's), to rank pods by how many
        siblings share their node."""
        ref = controller_of(rs)
        if ref is None:
            return []
        siblings = self.rss.by_index("owner", ref["uid"])
        return [p for s in siblings for p in self.pods.by_index("owner", s["metadata"]["uid"]) if is_active(p)]
