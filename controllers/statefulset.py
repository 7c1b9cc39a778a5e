"""The StatefulSet controller: pods with stable names `NAME-0 .. NAME-(N-1)`, made and replaced in order.

Each sync makes one pass of Kubernetes' StatefulSet control loop (pkg/controller/statefulset):

    1. the update revision: a ControllerRevision of today's template (controllers/history.py); the current
       revision is the one status.currentRevision names (the update revision when there is none)
    2. plan(...) (pure): walk ordinals 0..N-1 and decide: create a missing pod (at the current revision below
       the partition, else the update revision), delete a Failed one, delete condemned pods (ordinal >= N) from
       the highest down, then roll pods at the wrong revision from the highest ordinal down to the partition.
       With podManagementPolicy OrderedReady the pass stops at the first pod that is missing, not Running and
       Ready, or terminating: one step at a time, each after the previous pod is healthy. Parallel does every
       create and condemned delete at once (rolling updates still go one pod at a time).
    3. do the steps, then write status (replicas, readyReplicas, currentReplicas, updatedReplicas, ...) and
       drop revisions beyond revisionHistoryLimit that nothing uses.

Pod names are deterministic, so the API refuses a second `web-1` while one exists (409 AlreadyExists): a pod being
replaced is deleted first and its successor is created only in a later pass, after the informer shows it gone.
That, and deletes made with a uid precondition, keep two pods of one ordinal from ever existing at once even when
the cache lags behind our own writes. volumeClaimTemplates are not acted on: raftkube has no PersistentVolumes
(a pod's volumes are files in its sandbox on one node, node/volumes.py, and do not follow it to another node).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from api.client import Conflict, NotFound
from controllers.base import Context, Controller
from controllers.history import (HASH_LABEL, ensure_update_revision, history_to_delete, pod_revision,
                                 template_of)
from controllers.informer import key_of, split_key
from controllers.objects import (condition, controller_of, is_available, is_deleting, is_ready, keys_to_wake,
                                 owned_by, parse_time, pod_from_template)
from controllers.pod_control import claim

Obj = dict[str, Any]
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


# -- pure decisions -------------------------------------------------------------------------------------------

def ordinal_of(pod: Obj, set_name: str) -> int:
    """The ordinal in a pod name `<set>-<n>`, or -1 when the name does not have that shape."""
    parent, _, tail = pod["metadata"]["name"].rpartition("-")
    return int(tail) if parent == set_name and tail.isdigit() else -1


def is_created(pod: Obj) -> bool:
    return bool((pod.get("status") or {}).get("phase"))


def is_failed(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def is_succeeded(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def is_healthy(pod: Obj) -> bool:
    """Running and Ready and not on its way out: the bar OrderedReady waits for."""
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod) and not is_deleting(pod)


@dataclass(frozen=True)
class Step:
    """One write the controller makes: create ordinal `ordinal` at `revision`, or delete `pod`."""
    verb: str  # "create" | "delete"
    ordinal: int
    revision: str = ""
    pod: Obj | None = field(default=None, compare=False)
    reason: str = ""


def _spec(sts: Obj) -> Obj:
    return sts.get("spec") or {}


def partition_of(sts: Obj) -> int:
    strategy = _spec(sts).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def revision_for(sts: Obj, ordinal: int, current: str, update: str) -> str:
    """The revision a new pod gets: the current one below a RollingUpdate's partition, else the update one."""
    strategy = (_spec(sts).get("updateStrategy") or {}).get("type", "RollingUpdate")
    return current if strategy == "RollingUpdate" and ordinal < partition_of(sts) else update


def plan(sts: Obj, pods: list[Obj], current: str, update: str) -> list[Step]:
    """The writes of one pass of the StatefulSet control loop, in order (see the module docstring)."""
    name = sts["metadata"]["name"]
    spec = _spec(sts)
    replicas = int(spec.get("replicas", 1))
    ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    by_ordinal: dict[int, Obj] = {}
    condemned: list[Obj] = []
    for pod in pods:
        ordinal = ordinal_of(pod, name)
        if 0 <= ordinal < replicas:
            by_ordinal[ordinal] = pod
        elif ordinal >= replicas:
            condemned.append(pod)
    condemned.sort(key=lambda p: ordinal_of(p, name), reverse=True)
    steps: list[Step] = []

    for ordinal in range(replicas):
        pod = by_ordinal.get(ordinal)
        if pod is None:
            steps.append(Step("create", ordinal, revision_for(sts, ordinal, current, update)))
            if ordered:
                return steps
            continue
        if (is_failed(pod) or is_succeeded(pod)) and not is_deleting(pod):
            phase = pod["status"]["phase"]
            steps.append(Step("delete", ordinal, pod=pod, reason=f"pod is {phase}, recreating it"))
            if ordered:
                return steps
            continue
        if ordered and not is_healthy(pod):
            return steps  # wait: created but not yet Running and Ready, or terminating

    # as Kubernetes: the first unhealthy pod by ordinal, the only one that may be deleted while it is unhealthy
    unhealthy = next((p for p in [by_ordinal.get(i) for i in range(replicas)] + condemned[::-1]
                      if p is not None and not is_healthy(p)), None)
    for pod in condemned:
        ordinal = ordinal_of(pod, name)
        if is_deleting(pod):
            if ordered:
                return steps  # wait until it is gone
            continue
        if ordered and not is_healthy(pod) and pod is not unhealthy:
            return steps  # only the first unhealthy pod may go while others are unhealthy
        steps.append(Step("delete", ordinal, pod=pod, reason="scale down"))
        if ordered:
            return steps

    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate" or steps:
        return steps
    for ordinal in range(replicas - 1, partition_of(sts) - 1, -1):
        pod = by_ordinal[ordinal]
        if pod_revision(pod) != update and not is_deleting(pod):
            return [Step("delete", ordinal, pod=pod, reason=f"rolling update to {update}")]
        if not is_healthy(pod):
            return []  # wait for the pod just updated to become healthy
    return []


def compute_status(sts: Obj, pods: list[Obj], current: str, update: str, collisions: int, at: float) -> Obj:
    """The status the pods imply, as Kubernetes counts it (a rollout that is done makes update the current)."""
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    status: Obj = {"observedGeneration": sts["metadata"].get("generation", 1), "replicas": 0, "readyReplicas": 0,
                   "currentReplicas": 0, "updatedReplicas": 0, "availableReplicas": 0,
                   "currentRevision": current, "updateRevision": update, "collisionCount": collisions}
    for pod in pods:
        if is_created(pod):
            status["replicas"] += 1
        if (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod):
            status["readyReplicas"] += 1
            if is_available(pod, min_ready, at):
                status["availableReplicas"] += 1
        if is_created(pod) and not is_deleting(pod):
            status["currentReplicas"] += pod_revision(pod) == current
            status["updatedReplicas"] += pod_revision(pod) == update
    rolling = (_spec(sts).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and status["updatedReplicas"] == status["replicas"] == status["readyReplicas"]:
        status["currentReplicas"] = status["updatedReplicas"]
        status["currentRevision"] = update
    return status


def new_pod(sts: Obj, ordinal: int, revision: str, template: Obj) -> Obj:
    """Pod `<set>-<ordinal>` from `template`: hostname its name, subdomain the governing service, the labels."""
    name = f"{sts['metadata']['name']}-{ordinal}"
    pod = pod_from_template(sts, template, name=name, extra_labels={
        POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), HASH_LABEL: revision})
    pod["spec"]["hostname"] = name
    if _spec(sts).get("serviceName"):
        pod["spec"]["subdomain"] = _spec(sts)["serviceName"]
    return pod


def ready_soon(pods: list[Obj], min_ready: int, at: float) -> float | None:
    """Seconds until the next ready pod becomes available (minReadySeconds), if any is waiting."""
    waits = [since + min_ready - at for pod in pods if is_ready(pod) and not is_available(pod, min_ready, at)
             and (since := parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))) is not None]
    return max(min(waits), 0.1) if waits else None


# -- the controller -------------------------------------------------------------------------------------------

class StatefulSetController(Controller):
    name = "statefulset-controller"
    component = "statefulset-controller"
    service_account = "statefulset-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sets = ctx.informers["statefulsets"]
        self.pods = ctx.informers["pods"]
        self.revisions = ctx.informers["controllerrevisions"]
        self.sets.add_handler(lambda event, old, new: self.enqueue(new or old))
        self.pods.add_handler(self._owned_changed)
        self.revisions.add_handler(self._owned_changed)

    def _owned_changed(self, event: str, old: Obj | None, new: Obj | None) -> None:
        namespace = (new or old or {}).get("metadata", {}).get("namespace")
        for key in keys_to_wake("StatefulSet", self.sets.list(namespace), old, new,
                                lambda sts, pod: ordinal_of(pod, sts["metadata"]["name"]) >= 0):
            self.queue.add(key)

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        """The set's pods, after adopting orphans named as its members that it selects (and releasing those it
        no longer selects), as Kubernetes' getPodsForStatefulSet."""
        name = sts["metadata"]["name"]
        candidates = [p for p in self.pods.list(sts["metadata"]["namespace"])
                      if owned_by(p, sts) or (controller_of(p) is None and ordinal_of(p, name) >= 0)]
        return await claim(self.client, owner_plural="statefulsets", owner=sts, plural="pods",
                           candidates=candidates)

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None or is_deleting(sts):
            return  # the garbage collector removes its pods and revisions
        sts = copy.deepcopy(sts)
        namespace, _ = split_key(key)
        pods = await self._claim_pods(sts)
        revisions = [r for r in self.revisions.by_index("owner", sts["metadata"]["uid"]) if owned_by(r, sts)]
        status = sts.get("status") or {}
        update_rev, collisions = await ensure_update_revision(self.client, sts, revisions,
                                                              int(status.get("collisionCount") or 0))
        revisions = [r for r in revisions if r["metadata"]["name"] != update_rev["metadata"]["name"]] + [update_rev]
        update = update_rev["metadata"]["name"]
        current_rev = next((r for r in revisions if r["metadata"]["name"] == status.get("currentRevision")),
                           update_rev)
        current = current_rev["metadata"]["name"]

        for step in plan(sts, pods, current, update):
            if step.verb == "create":
                template = template_of(current_rev if step.revision == current else update_rev)
                if not await self._create(sts, new_pod(sts, step.ordinal, step.revision, template)):
                    break
            else:
                await self._delete(sts, step.pod, step.reason)

        at = time.time()
        new_status = compute_status(sts, pods, current, update, collisions, at)
        if any(status.get(k) != v for k, v in new_status.items()):
            await self.client.update_status("statefulsets", {**sts, "status": {**status, **new_status}})
        wait = ready_soon(pods, int(sts["spec"].get("minReadySeconds") or 0), at)
        if wait is not None:
            self.queue.add_after(key, wait)

        live = {new_status["currentRevision"], update} | {pod_revision(p) for p in pods}
        for old in history_to_delete(revisions, live, int(sts["spec"].get("revisionHistoryLimit", 10))):
            try:
                await self.client.delete("controllerrevisions", old["metadata"]["name"], namespace)
            except NotFound:
                pass

    async def _create(self, sts: Obj, pod: Obj) -> bool:
        """Create a pod; False when its name is still taken (the old pod not gone yet, or our cache behind)."""
        name, set_name = pod["metadata"]["name"], sts["metadata"]["name"]
        try:
            await self.client.create("pods", pod)
        except Conflict:
            return False
        except Exception as exc:
            self.record(sts, "Warning", "FailedCreate", f"create Pod {name} in StatefulSet {set_name} failed "
                                                        f"error: {exc}")
            raise
        self.record(sts, "Normal", "SuccessfulCreate", f"create Pod {name} in StatefulSet {set_name} successful")
        return True

    async def _delete(self, sts: Obj, pod: Obj, reason: str) -> None:
        """Delete the very pod we saw (uid precondition): never a successor our cache has not shown yet."""
        meta, set_name = pod["metadata"], sts["metadata"]["name"]
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], uid=meta["uid"])
        except (NotFound, Conflict):
            return
        self.log.info("statefulset %s: deleted pod %s (%s)", key_of(sts), meta["name"], reason)
        self.record(sts, "Normal", "SuccessfulDelete", f"delete Pod {meta['name']} in StatefulSet {set_name} "
                                                       f"successful")
