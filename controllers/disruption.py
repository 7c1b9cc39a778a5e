"""The disruption controller: each PodDisruptionBudget's status says how many of its pods may go now
(Kubernetes' disruption.go), which is what the eviction subresource (api/eviction.py) spends.

One sync of a budget:
  1. its pods: those in its namespace its selector selects;
  2. expected pods and desired healthy: with an integer minAvailable, every selected pod is expected and
     minAvailable must stay healthy; with a percentage, or with maxUnavailable, the expected count is the scale
     of the pods' controllers (a Deployment's, ReplicaSet's, ReplicationController's or StatefulSet's
     spec.replicas), and the percentage is of that (rounded up, as upstream); a selected pod with no such
     controller makes the budget fail to sync (no disruptions allowed, a SyncFailed condition);
  3. current healthy: selected pods that are Ready, not being deleted, and not in status.disruptedPods (an
     eviction the API server granted that this controller has not seen happen yet; forgotten after
     DELETION_TIMEOUT);
  4. disruptionsAllowed = current healthy - desired healthy (never below 0), with the DisruptionAllowed
     condition, written only when it changed.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any

from api.selectors import selector_matches
from controllers.base import Context, Controller
from controllers.informer import key_of
from controllers.objects import controller_of, is_deleting, is_ready, now, parse_time

Obj = dict[str, Any]
DELETION_TIMEOUT = 120.0  # seconds a granted eviction counts as disrupted without its pod being deleted
SCALED = {"ReplicaSet": "replicasets", "ReplicationController": "replicationcontrollers",
          "StatefulSet": "statefulsets", "Deployment": "deployments"}


# -- pure decisions ------------------------------------------------------------------------------------------

def selected(budget: Obj, pod: Obj) -> bool:
    selector = (budget.get("spec") or {}).get("selector")
    if not isinstance(selector, dict) or pod["metadata"].get("namespace") != budget["metadata"].get("namespace"):
        return False
    return selector_matches(selector, pod["metadata"].get("labels") or {})


def scaled(value: int | str, total: int) -> int:
    """An IntOrString of `total`: a number as is, a percentage rounded up (GetScaledValueFromIntOrPercent)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def desired(budget: Obj, pod_count: int, controller_scale: int | None) -> tuple[int, int]:
    """(expected pods, desired healthy). `controller_scale` is None when some pod has no scalable controller."""
    spec = budget.get("spec") or {}
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if max_unavailable is None and (min_available is None or isinstance(min_available, int)):
        return pod_count, int(min_available or 0)
    if controller_scale is None:
        raise LookupError("found pods without a controller that has a scale (Deployment, ReplicaSet, "
                          "ReplicationController, StatefulSet): a percentage or maxUnavailable needs one")
    if max_unavailable is not None:
        return controller_scale, max(controller_scale - scaled(max_unavailable, controller_scale), 0)
    return controller_scale, scaled(min_available, controller_scale)


def live_disruptions(budget: Obj, pods: dict[str, Obj], at: float) -> dict[str, str]:
    """status.disruptedPods still pending: pods that exist, are not being deleted yet, granted recently."""
    out = {}
    for name, granted in ((budget.get("status") or {}).get("disruptedPods") or {}).items():
        pod = pods.get(name)
        when = parse_time(granted)
        if pod is not None and not is_deleting(pod) and when is not None and when + DELETION_TIMEOUT > at:
            out[name] = granted
    return out


def budget_status(budget: Obj, pods: list[Obj], controller_scale: int | None, at: float) -> Obj:
    by_name = {p["metadata"]["name"]: p for p in pods}
    disrupted = live_disruptions(budget, by_name, at)
    old = budget.get("status") or {}
    generation = budget["metadata"].get("generation", 1)
    try:
        expected, healthy_needed = desired(budget, len(pods), controller_scale)
    except LookupError as exc:
        expected, healthy_needed, failure = 0, 0, str(exc)
    else:
        failure = None
    healthy = sum(1 for p in pods if is_ready(p) and not is_deleting(p) and p["metadata"]["name"] not in disrupted)
    allowed = 0 if failure or expected <= 0 else max(healthy - healthy_needed, 0)
    if failure:
        reason, state, message = "SyncFailed", "False", failure
    else:
        reason, state, message = ("SufficientPods", "True", "") if allowed > 0 else ("InsufficientPods", "False", "")
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    since = previous.get("lastTransitionTime") if previous and previous.get("status") == state else now()
    status: Obj = {"observedGeneration": generation, "disruptionsAllowed": allowed, "currentHealthy": healthy,
                   "desiredHealthy": healthy_needed, "expectedPods": expected,
                   "conditions": [{"type": "DisruptionAllowed", "status": state, "reason": reason, "message": message,
                                   "observedGeneration": generation, "lastTransitionTime": since}]}
    if disrupted:
        status["disruptedPods"] = disrupted
    return status


def _same(a: Obj, b: Obj) -> bool:
    """Statuses equal but for when their condition last changed."""
    def strip(s: Obj) -> Obj:
        return {**s, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                    for c in s.get("conditions") or []]}
    return strip(a) == strip(b)


# -- the controller ------------------------------------------------------------------------------------------

class DisruptionController(Controller):
    name = "disruption"
    component = "controllermanager"
    service_account = "disruption-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.budgets = ctx.informers["poddisruptionbudgets"]
        self.pods = ctx.informers["pods"]
        self.scaled = {kind: ctx.informers[plural] for kind, plural in SCALED.items()}
        self.budgets.add_handler(lambda event, old, new: self.enqueue(new or old))
        self.pods.add_handler(self.on_pod)

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for pod in (old, new):
            if pod is not None:
                for budget in self.budgets.list(pod["metadata"]["namespace"]):
                    if selected(budget, pod):
                        self.enqueue(budget)

    def controller_scale(self, pods: list[Obj]) -> int | None:
        """The summed spec.replicas of the pods' controllers (a ReplicaSet's Deployment's, if it has one)."""
        found: dict[str, int] = {}
        for pod in pods:
            owner, ref = pod, controller_of(pod)
            while ref is not None and ref.get("kind") in SCALED:
                cached = self.scaled[ref["kind"]].get(f"{pod['metadata']['namespace']}/{ref['name']}")
                if cached is None or cached["metadata"].get("uid") != ref.get("uid"):
                    return None
                owner, ref = cached, controller_of(cached)
                if ref is None or ref.get("kind") != "Deployment":
                    break
            if owner is pod:
                return None
            found[owner["metadata"]["uid"]] = int((owner.get("spec") or {}).get("replicas") or 0)
        return sum(found.values())

    async def sync(self, key: str) -> None:
        cached = self.budgets.get(key)
        if cached is None:
            return
        budget = copy.deepcopy(cached)
        pods = [p for p in self.pods.list(budget["metadata"]["namespace"]) if selected(budget, p)]
        at = time.time()
        status = budget_status(budget, pods, self.controller_scale(pods), at)
        if not _same(status, budget.get("status") or {}):
            budget["status"] = status
            await self.client.update_status("poddisruptionbudgets", budget)
        granted = [t for t in map(parse_time, (status.get("disruptedPods") or {}).values()) if t is not None]
        if granted:  # look again when the oldest grant expires
            self.queue.add_after(key_of(budget), max(min(granted) + DELETION_TIMEOUT - at, 0) + 1)
