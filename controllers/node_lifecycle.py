"""The node lifecycle controller: nodes that stop reporting become Ready=Unknown, get tainted, lose their pods.

Kubelets renew a Lease in kube-node-lease every 10 s and post their Ready condition now and then. This
controller remembers, by its own clock, when it last saw either change (a "probe", as Kubernetes' nodeHealth: so
clock skew between hosts does not matter, and a controller that just took over gives every node a full grace
period). A node with no news for Options.node_monitor_grace_period:
  1. gets every condition (Ready, MemoryPressure, DiskPressure, PIDPressure) set to Unknown, reason
     NodeStatusUnknown, "Kubelet stopped posting node status." (event NodeNotReady);
  2. carries the NoExecute taint its Ready condition implies: node.kubernetes.io/unreachable when Unknown,
     node.kubernetes.io/not-ready when False, none when True (so the taint goes when the kubelet comes back);
  3. marks its pods not Ready (their Ready condition False), so Services stop sending them traffic at once, not
     when they are evicted (Kubernetes' MarkPodsNotReady);
  4. loses the pods that do not tolerate its NoExecute taints: at once without a matching toleration, after
     tolerationSeconds (counted from the taint's timeAdded) with one. A pod with no toleration for unreachable
     or not-ready gets Options.pod_eviction_timeout, the 300 s Kubernetes' admission would have added.
     Evicted pods are deleted through pods/eviction ("Marking for deletion Pod ns/name"); on an Unknown node no
     kubelet will confirm, so they are then deleted with grace 0, and their controllers replace them elsewhere.
Pods bound to a Node that has been gone for the grace period are deleted with grace 0 too (Kubernetes' pod
garbage collector, with its quarantine).

Only nodes whose kubelet has shown a Lease are watched over (a difference from Kubernetes, which also marks a
Node that never reported): every kubelet of ours renews one, and a Node made by hand, as controller tests do, is
left as it was written.
"""
from __future__ import annotations

import copy
import time
from typing import Any

from api.client import ApiClientError, Conflict, NotFound
from controllers.base import Context, Controller
from controllers.objects import condition, is_deleting, is_terminal, now, parse_time
from controllers.scheduling import tolerates

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


# -- pure decisions ------------------------------------------------------------------------------------------

def probe(node: Obj, lease: Obj | None) -> tuple:
    """What changes when a kubelet is alive: its Lease's renewTime, its Ready heartbeat and status."""
    ready = condition(node, "Ready") or {}
    return ((lease or {}).get("spec", {}).get("renewTime"), ready.get("lastHeartbeatTime"), ready.get("status"))


def unknown_status(node: Obj) -> tuple[Obj, bool]:
    """The node's status with its conditions Unknown (NodeStatusUnknown); whether anything changed."""
    status = copy.deepcopy(node.get("status") or {})
    conditions = status.setdefault("conditions", [])
    stamp, changed = now(), False
    for type_ in CONDITIONS:
        old = next((c for c in conditions if c.get("type") == type_), None)
        if old is None:
            if type_ != "Ready":
                continue
            conditions.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.", "lastHeartbeatTime": stamp,
                               "lastTransitionTime": stamp})
            changed = True
        elif old.get("status") != "Unknown":
            old.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                       lastTransitionTime=stamp)
            changed = True
    return status, changed


def wanted_taints(node: Obj, stamp: str) -> list[Obj]:
    """The node's taints with the NoExecute one its Ready condition implies (keeping an existing one's timeAdded)."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    ready = (condition(node, "Ready") or {}).get("status")
    key = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready or "")
    kept = [t for t in taints if not (t.get("key") in (UNREACHABLE, NOT_READY) and t.get("effect") == "NoExecute"
                                      and t.get("key") != key)]
    if key and not any(t.get("key") == key and t.get("effect") == "NoExecute" for t in kept):
        kept.append({"key": key, "effect": "NoExecute", "timeAdded": stamp})
    return kept


def not_ready_status(pod: Obj) -> Obj | None:
    """The pod's status with its Ready condition False (its node stopped reporting), or None if it is not Ready."""
    status = copy.deepcopy(pod.get("status") or {})
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "False":
        return None
    ready.update(status="False", lastTransitionTime=now())
    return status


def eviction_time(pod: Obj, taints: list[Obj], default_seconds: float) -> float | None:
    """When (epoch seconds) the pod must go because of the node's NoExecute taints; None if it may stay."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: float | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        added = parse_time(taint.get("timeAdded")) or 0.0
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            if taint.get("key") not in (UNREACHABLE, NOT_READY):
                return added  # not tolerated at all: at once
            seconds: float | None = default_seconds  # what DefaultTolerationSeconds admission would have added
        else:
            limits = [t.get("tolerationSeconds") for t in matching]
            seconds = None if any(s is None for s in limits) else min(max(float(s), 0.0) for s in limits)
        if seconds is not None:
            when = added + seconds
            due = when if due is None else min(due, when)
    return due


# -- the controller ------------------------------------------------------------------------------------------

class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    component = "node-controller"
    service_account = "node-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.grace = ctx.options.node_monitor_grace_period
        self.eviction_timeout = ctx.options.pod_eviction_timeout
        self.nodes = ctx.informers["nodes"]
        self.leases = ctx.informers["leases"]
        self.pods = ctx.informers["pods"]
        self.seen: dict[str, tuple[tuple, float]] = {}  # node -> (last probe, when it last changed, monotonic)
        self.with_lease: set[str] = set()  # nodes whose kubelet has shown a Lease: the ones watched over
        self.missing: dict[str, float] = {}  # node -> since when (monotonic) pods are bound to it and it is gone
        self.nodes.add_handler(lambda event, old, new: self.enqueue(new or old))  # type: ignore[arg-type]
        self.leases.add_handler(self.on_lease)
        self.pods.add_handler(self.on_pod)

    def on_lease(self, event: str, old: Obj | None, new: Obj | None) -> None:
        lease = new or old
        assert lease is not None
        if lease["metadata"].get("namespace") == LEASE_NAMESPACE:
            self.with_lease.add(lease["metadata"]["name"])
            self.queue.add(lease["metadata"]["name"])

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """A pod landing on a tainted (or vanished) node needs a look."""
        pod = new or old
        assert pod is not None
        name = (pod.get("spec") or {}).get("nodeName")
        if not name or event == "delete":
            return
        node = self.nodes.get(name)
        if node is None or any(t.get("effect") == "NoExecute" for t in (node.get("spec") or {}).get("taints") or []):
            self.queue.add(name)

    def silent_for(self, name: str, node: Obj) -> float:
        """Seconds since the node last showed a sign of life, by this controller's clock."""
        current = probe(node, self.leases.get(f"{LEASE_NAMESPACE}/{name}"))
        at = time.monotonic()
        last = self.seen.get(name)
        if last is None or last[0] != current:
            self.seen[name] = (current, at)
            return 0.0
        return at - last[1]

    async def sync(self, name: str) -> None:
        cached = self.nodes.get(name)
        if cached is None:
            self.seen.pop(name, None)
            await self.collect_orphans(name)
            return
        self.missing.pop(name, None)
        if name not in self.with_lease:
            return
        node = copy.deepcopy(cached)
        silent = self.silent_for(name, node)
        if silent >= self.grace:
            status, changed = unknown_status(node)
            if changed:
                node["status"] = status
                node = await self.client.update_status("nodes", node)
                self.record(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
                self.log.info("node %s: no news for %.0fs, Ready=Unknown", name, silent)
        else:
            self.queue.add_after(name, self.grace - silent + 0.1)
        taints = wanted_taints(node, now())
        if taints != ((node.get("spec") or {}).get("taints") or []):
            node.setdefault("spec", {})["taints"] = taints or None
            node = await self.client.update("nodes", node)
        if (condition(node, "Ready") or {}).get("status") not in (None, "True"):
            await self.mark_pods_not_ready(node)
        await self.evict(node)

    async def mark_pods_not_ready(self, node: Obj) -> None:
        for pod in self.pods.by_index("node", node["metadata"]["name"]):
            status = None if is_terminal(pod) else not_ready_status(pod)
            if status is None:
                continue
            try:
                await self.client.update_status("pods", {**pod, "status": status})
            except (NotFound, Conflict):  # gone, or changed meanwhile: the pod's next event brings it back here
                continue
            self.record(pod, "Warning", "NodeNotReady", "Node is not ready")

    async def evict(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        taints = (node.get("spec") or {}).get("taints") or []
        if not any(t.get("effect") == "NoExecute" for t in taints):
            return
        unknown = (condition(node, "Ready") or {}).get("status") == "Unknown"
        at, next_due = time.time(), None
        for pod in self.pods.by_index("node", name):
            if is_terminal(pod):
                continue  # runs nothing; kept, as a finished pod's history
            due = eviction_time(pod, taints, self.eviction_timeout)
            if due is None:
                continue
            if due > at:
                next_due = due if next_due is None else min(next_due, due)
                continue
            meta = pod["metadata"]
            try:
                if not is_deleting(pod):
                    await self.client.post_subresource("pods", meta["name"], "eviction", {
                        "apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}, meta["namespace"])
                    self.record(pod, "Normal", "TaintManagerEviction",
                                f"Marking for deletion Pod {meta['namespace']}/{meta['name']}")
                if unknown:  # no kubelet will confirm: the pod goes now, so its controller replaces it
                    await self.client.delete("pods", meta["name"], meta["namespace"], grace_period_seconds=0,
                                             uid=meta.get("uid"))
            except NotFound:
                continue
            except ApiClientError as exc:
                if exc.status != 409:
                    raise
        if next_due is not None:
            self.queue.add_after(name, next_due - at + 0.1)

    async def collect_orphans(self, name: str) -> None:
        """Pods bound to a node that is gone: deleted with grace 0 once the API confirms the node is gone."""
        pods = self.pods.by_index("node", name)
        if not pods:
            self.missing.pop(name, None)
            return
        since = self.missing.setdefault(name, time.monotonic())
        if time.monotonic() - since < self.grace:  # a Node about to be made, or a cache behind: wait a while
            self.queue.add_after(name, since + self.grace - time.monotonic() + 0.1)
            return
        try:
            await self.client.get("nodes", name)
            return  # the cache lags: the node is there
        except NotFound:
            pass
        for pod in pods:
            meta = pod["metadata"]
            try:
                await self.client.delete("pods", meta["name"], meta["namespace"], grace_period_seconds=0,
                                         uid=meta.get("uid"))
                self.log.info("deleted pod %s/%s: its node %s is gone", meta["namespace"], meta["name"], name)
            except NotFound:
                continue
            except ApiClientError as exc:
                if exc.status != 409:
                    raise
