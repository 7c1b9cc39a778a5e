"""The DaemonSet controller: one pod on every node that should run it, and no pod anywhere else.

Each sync, as Kubernetes' daemon controller (pkg/controller/daemon):

    1. the revision of today's template (controllers/history.py); its hash labels the new pods
       (`controller-revision-hash`), so a pod with another hash is old
    2. manage(...) (pure): for each node, should it run the daemon pod (nodeSelector, required node affinity,
       taints against the pod's tolerations: a NoSchedule taint keeps a new pod off but lets one running stay, a
       NoExecute one makes it go)? Create the missing pods, delete the extra, Failed and misplaced ones, and
       the pods of nodes that no longer exist
    3. when manage had nothing to do, rolling_update(...) (pure): delete old pods, at most maxUnavailable nodes
       without an available pod at a time (maxSurge 0); the next pass's manage creates their successors
    4. status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
       updatedNumberScheduled, numberAvailable, numberUnavailable; history beyond revisionHistoryLimit goes.

Pods are created already bound (spec.nodeName), as Kubernetes did before 1.12, and also carry the node affinity
(matchFields metadata.name In [node]) that newer Kubernetes gives them for its scheduler: nothing depends on the
scheduler being up, and a daemon pod goes where it must even on a full node. Pod names come from generateName, so
expectations (controllers/objects.py) keep a lagging cache from making a node's pod twice. A pod left on a node
that was deleted has no kubelet to confirm its deletion: it is deleted with grace 0 (Kubernetes' pod garbage
collector does this; we have none).
"""
from __future__ import annotations

import copy
import time
from typing import Any

from api.client import Conflict, NotFound
from controllers.base import Context, Controller
from controllers.history import (HASH_LABEL, ensure_update_revision, history_to_delete, pod_revision,
                                 revision_hash)
from controllers.informer import key_of, split_key
from controllers.objects import (Expectations, controller_of, is_available, is_deleting, is_ready, keys_to_wake,
                                 owned_by, pod_from_template, scaled_value)
from controllers.pod_control import claim
from controllers.scheduling import NodeInfo, filter_node_affinity, tolerates

Obj = dict[str, Any]
GENERATION_LABEL = "pod-template-generation"
# What Kubernetes adds to every daemon pod (util.AddOrUpdateDaemonPodTolerations): it stays on a node that is not
# ready or unreachable, and goes onto one under pressure or cordoned.
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                           "effect": "NoSchedule"}


# -- pure decisions -------------------------------------------------------------------------------------------

def with_daemon_tolerations(pod_spec: Obj) -> Obj:
    """The pod spec with the standard daemon tolerations added (those it has already are not repeated)."""
    spec = copy.deepcopy(pod_spec)
    tolerations = spec.setdefault("tolerations", [])
    extra = DAEMON_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else [])
    for toleration in extra:
        if not any(all(t.get(k) == toleration[k] for k in ("key", "operator", "effect")) for t in tolerations):
            tolerations.append(dict(toleration))
    return spec


def template_pod(ds: Obj) -> Obj:
    """The daemon pod before it has a node: what node_should_run judges."""
    template = (ds.get("spec") or {}).get("template") or {}
    return {"metadata": copy.deepcopy(template.get("metadata") or {}),
            "spec": with_daemon_tolerations(template.get("spec") or {})}


def node_should_run(pod: Obj, node: Obj) -> tuple[bool, bool]:
    """(should run a new daemon pod, may keep a running one) on `node`: nodeName, nodeSelector and required
    node affinity must match; an untolerated NoSchedule taint refuses a new pod, an untolerated NoExecute one
    both. The node's readiness does not matter (the daemon tolerations say so)."""
    wanted = (pod.get("spec") or {}).get("nodeName")
    if wanted and wanted != node["metadata"]["name"]:
        return False, False
    if filter_node_affinity(pod, NodeInfo(node)):
        return False, False
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    untolerated = [t for t in (node.get("spec") or {}).get("taints") or []
                   if t.get("effect") in ("NoSchedule", "NoExecute")
                   and not any(tolerates(tol, t) for tol in tolerations)]
    if untolerated:
        return False, not any(t.get("effect") == "NoExecute" for t in untolerated)
    return True, True


def target_node(pod: Obj) -> str:
    """The node a daemon pod is for: its nodeName, or the node its matchFields affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and field.get("values"):
                return field["values"][0]
    return ""


def by_node(pods: list[Obj]) -> dict[str, list[Obj]]:
    """Daemon pods per node, oldest first."""
    out: dict[str, list[Obj]] = {}
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])):
        out.setdefault(target_node(pod), []).append(pod)
    return out


def daemon_pod(ds: Obj, node_name: str, hash_: str) -> Obj:
    """A new daemon pod for `node_name`: bound to it, with the node affinity and tolerations Kubernetes adds."""
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    template["spec"] = with_daemon_tolerations(template.get("spec") or {})
    pod = pod_from_template(ds, template, extra_labels={
        HASH_LABEL: hash_, GENERATION_LABEL: str(ds["metadata"].get("generation", 1))})
    affinity = pod["spec"].setdefault("affinity", {})
    affinity.setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    pod["spec"]["nodeName"] = node_name
    return pod


def manage(ds: Obj, nodes: list[Obj], pods: dict[str, list[Obj]]) -> tuple[list[str], list[Obj], list[Obj]]:
    """(nodes that need a daemon pod, pods to delete, pods to delete at once because their node is gone).
    A pod for no node in particular (adopted, unbound) is left to the scheduler, as Kubernetes does."""
    template = template_pod(ds)
    create: list[str] = []
    delete: list[Obj] = []
    for node in nodes:
        name = node["metadata"]["name"]
        should_run, should_continue = node_should_run(template, node)
        here = [p for p in pods.get(name, []) if not is_deleting(p)]
        if should_run:
            failed = [p for p in here if (p.get("status") or {}).get("phase") == "Failed"]
            delete += failed
            running = [p for p in here if p not in failed]
            if not running:
                create.append(name)
            delete += running[1:]  # more than one: keep the oldest
        elif not should_continue:
            delete += here
    known = {n["metadata"]["name"] for n in nodes}
    orphaned = [p for node, ps in pods.items() if node and node not in known for p in ps]
    return create, delete, orphaned


def max_unavailable(ds: Obj, desired: int) -> int:
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    return max(scaled_value(rolling.get("maxUnavailable"), desired, round_up=True, default=1), 1)


def rolling_update(ds: Obj, pods: dict[str, list[Obj]], hash_: str, limit: int, at: float) -> list[Obj]:
    """Old pods to delete now, keeping at most `limit` nodes without an available daemon pod (maxSurge 0).
    An old pod that is not available goes at once: replacing it costs no availability."""
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    unavailable = 0
    broken: list[Obj] = []
    candidates: list[Obj] = []
    for node in sorted(pods):
        live = [p for p in pods[node] if not is_deleting(p)]
        new = [p for p in live if pod_revision(p) == hash_]
        old = [p for p in live if pod_revision(p) != hash_]
        if len(new) > 1 or len(old) > 1 or len(new) == len(old):
            unavailable += 1  # none, or both: manage sorts it out; count the node as unavailable meanwhile
        elif new:
            unavailable += not is_available(new[0], min_ready, at)
        elif not is_available(old[0], min_ready, at):
            broken.append(old[0])
        elif unavailable < limit:
            candidates.append(old[0])
    return broken + candidates[:max(limit - unavailable, 0)]


def compute_status(ds: Obj, nodes: list[Obj], pods: dict[str, list[Obj]], hash_: str, at: float) -> Obj:
    """The four counts kubectl shows and the rest, as Kubernetes' updateDaemonSetStatus counts them."""
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    template = template_pod(ds)
    generation = str(ds["metadata"].get("generation", 1))
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        here = pods.get(node["metadata"]["name"], [])
        if not node_should_run(template, node)[0]:
            misscheduled += bool(here)
            continue
        desired += 1
        if not here:
            continue
        current += 1
        pod = sorted(here, key=is_deleting)[0]  # the oldest, preferring one that is not on its way out
        if is_ready(pod):
            ready += 1
            available += is_available(pod, min_ready, at)
        labels = pod["metadata"].get("labels") or {}
        updated += pod_revision(pod) == hash_ or labels.get(GENERATION_LABEL) == generation
    return {"observedGeneration": ds["metadata"].get("generation", 1), "desiredNumberScheduled": desired,
            "currentNumberScheduled": current, "numberMisscheduled": misscheduled, "numberReady": ready,
            "updatedNumberScheduled": updated, "numberAvailable": available,
            "numberUnavailable": desired - available}


# -- the controller -------------------------------------------------------------------------------------------

class DaemonSetController(Controller):
    name = "daemonset-controller"
    component = "daemonset-controller"
    service_account = "daemon-set-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sets = ctx.informers["daemonsets"]
        self.pods = ctx.informers["pods"]
        self.nodes = ctx.informers["nodes"]
        self.revisions = ctx.informers["controllerrevisions"]
        self.expectations = Expectations()
        self.sets.add_handler(lambda event, old, new: self.enqueue(new or old))
        self.pods.add_handler(self._owned_changed)
        self.revisions.add_handler(self._owned_changed)
        self.nodes.add_handler(self._node_changed)

    def _owned_changed(self, event: str, old: Obj | None, new: Obj | None) -> None:
        namespace = (new or old or {}).get("metadata", {}).get("namespace")
        for key in keys_to_wake("DaemonSet", self.sets.list(namespace), old, new):
            self.queue.add(key)

    def _node_changed(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "update" and old is not None and new is not None and (
                old["metadata"].get("labels"), old.get("spec")) == (new["metadata"].get("labels"), new.get("spec")):
            return  # a status heartbeat: nothing a daemon set decides on has changed
        for ds in self.sets.list():
            self.enqueue(ds)

    def _owned(self, informer: Any, ds: Obj) -> list[Obj]:
        return [o for o in informer.by_index("owner", ds["metadata"]["uid"]) if owned_by(o, ds)]

    async def sync(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        if is_deleting(ds):
            return  # the garbage collector removes its pods and revisions
        ds = copy.deepcopy(ds)
        namespace, _ = split_key(key)
        revisions = self._owned(self.revisions, ds)
        status = ds.get("status") or {}
        update_rev, collisions = await ensure_update_revision(self.client, ds, revisions,
                                                              int(status.get("collisionCount") or 0))
        revisions = [r for r in revisions if r["metadata"]["name"] != update_rev["metadata"]["name"]] + [update_rev]
        hash_ = revision_hash(update_rev)
        nodes = self.nodes.list()
        candidates = [p for p in self.pods.list(namespace) if owned_by(p, ds) or controller_of(p) is None]
        pods = by_node(await claim(self.client, owner_plural="daemonsets", owner=ds, plural="pods",
                                   candidates=candidates))
        at = time.time()

        if self.expectations.satisfied(key, self.pods.cache):
            create, delete, orphaned = manage(ds, nodes, pods)
            for node_name in create:
                await self._create(key, ds, daemon_pod(ds, node_name, hash_))
            for pod in delete:
                await self._delete(key, ds, pod)
            for pod in orphaned:
                await self._delete(key, ds, pod, force=True)
            strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
            if not (create or delete or orphaned) and strategy == "RollingUpdate":
                desired = sum(node_should_run(template_pod(ds), n)[0] for n in nodes)
                for pod in rolling_update(ds, pods, hash_, max_unavailable(ds, desired), at):
                    await self._delete(key, ds, pod)

        new_status = {**compute_status(ds, nodes, pods, hash_, at), "collisionCount": collisions}
        if any(status.get(k) != v for k, v in new_status.items()):
            await self.client.update_status("daemonsets", {**ds, "status": {**status, **new_status}})
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        if min_ready and new_status["numberReady"] > new_status["numberAvailable"]:
            self.queue.add_after(key, min_ready)

        in_use = {hash_} | {pod_revision(p) for ps in pods.values() for p in ps}
        live = {r["metadata"]["name"] for r in revisions if revision_hash(r) in in_use}
        for old in history_to_delete(revisions, live, int(ds["spec"].get("revisionHistoryLimit", 10))):
            try:
                await self.client.delete("controllerrevisions", old["metadata"]["name"], namespace)
            except NotFound:
                pass

    async def _create(self, key: str, ds: Obj, pod: Obj) -> None:
        node = pod["spec"]["nodeName"]
        try:
            created = await self.client.create("pods", pod)
        except Exception as exc:
            self.record(ds, "Warning", "FailedCreate", f"Error creating: {exc}")
            raise
        self.expectations.expect_create(key, key_of(created))
        self.record(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        self.log.info("daemonset %s: created pod %s on node %s", key, created["metadata"]["name"], node)

    async def _delete(self, key: str, ds: Obj, pod: Obj, *, force: bool = False) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], uid=meta["uid"],
                                     grace_period_seconds=0 if force else None)
        except (NotFound, Conflict):
            return
        self.expectations.expect_delete(key, key_of(pod), meta["uid"])
        self.record(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
