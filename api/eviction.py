"""POST pods/NAME/eviction (kubectl drain, the node lifecycle controller): delete a pod unless that would break
its PodDisruptionBudget, as kube-apiserver's eviction subresource decides (pkg/registry/core/pod/storage/
eviction.go).

    a pod already failed, succeeded, pending or being deleted      deleted: evicting it disrupts nothing
    no budget selects it                                           deleted
    more than one budget selects it                                500, as upstream (it cannot choose)
    not ready, and the budget can spare it                         deleted without taking a disruption
    the budget's status is older than its spec                     429: the disruption controller is behind
    status.disruptionsAllowed is 0                                 429 TooManyRequests (kubectl drain waits, retries)
    otherwise                                                      one disruption taken (disruptionsAllowed - 1,
                                                                   the pod in status.disruptedPods) in a compare-
                                                                   and-swap of the budget, then the pod deleted

The budget's counts are the disruption controller's (controllers/disruption.py); the compare-and-swap on the
budget is what keeps two evictions at once from taking the same disruption.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from api import errors, objects
from api.errors import ApiError
from api.registry import lookup
from api.retry import retry_stale
from api.selectors import selector_matches
from api.storage import ObjectStore

Obj = dict[str, Any]
PODS = lookup("", "v1", "pods")
BUDGETS = lookup("policy", "v1", "poddisruptionbudgets")
MAX_DISRUPTED_PODS = 2000
TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def disrupts_nothing(pod: Obj) -> bool:
    """A pod whose eviction no budget guards (canIgnorePDB)."""
    return bool(pod["metadata"].get("deletionTimestamp")) or \
        (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Pending")


def budgets_for(pod: Obj, budgets: list[Obj]) -> list[Obj]:
    """The budgets in the pod's namespace whose selector selects it (a missing selector selects nothing)."""
    labels = pod["metadata"].get("labels") or {}
    return [b for b in budgets if isinstance((b.get("spec") or {}).get("selector"), dict)
            and selector_matches(b["spec"]["selector"], labels)]


def spares_unhealthy(pod: Obj, budget: Obj) -> bool:
    """May a pod that is not ready go without taking one of the budget's disruptions?"""
    if _ready(pod):
        return False
    if (budget.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
        return True
    status = budget.get("status") or {}
    return status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) > 0


def _too_many(why: str) -> ApiError:
    return ApiError(429, TOO_MANY, reason="TooManyRequests",
                    details={"causes": [{"reason": "DisruptionBudget", "message": why}]})


def take_disruption(budget: Obj, pod_name: str) -> Obj:
    """The budget with one disruption taken by `pod_name` (checkAndDecrement), or the error that refuses it."""
    name, status = budget["metadata"]["name"], dict(budget.get("status") or {})
    if int(status.get("observedGeneration") or 0) < int(budget["metadata"].get("generation") or 1):
        raise _too_many(f"The disruption budget {name} is still being processed by the server.")
    allowed = int(status.get("disruptionsAllowed") or 0)
    disrupted = dict(status.get("disruptedPods") or {})
    if allowed < 0:
        raise ApiError(403, f"pdb disruptions allowed is negative ({name})", reason="Forbidden")
    if len(disrupted) > MAX_DISRUPTED_PODS:
        raise ApiError(403, f"DisruptedPods map too big - too many evictions not confirmed by PDB controller "
                            f"({name})", reason="Forbidden")
    if allowed == 0:
        raise _too_many(f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy "
                                f"pods and has {status.get('currentHealthy', 0)} currently")
    disrupted[pod_name] = objects.now()
    status.update(disruptionsAllowed=allowed - 1, disruptedPods=disrupted)
    if allowed == 1:
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
        status["conditions"].append({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                                     "message": "", "observedGeneration": status.get("observedGeneration"),
                                     "lastTransitionTime": objects.now()})
    return {**budget, "status": status}


async def evict(store: ObjectStore, namespace: str, name: str, delete: Callable[[], Awaitable[Any]]) -> None:
    """Take a disruption from the pod's budget if it has one, then `delete` the pod; retried while another
    writer changes the budget first."""
    async def attempt() -> None:
        pod = await store.get(PODS, namespace, name)
        if not disrupts_nothing(pod):
            found, _ = await store.list(BUDGETS, namespace)
            budgets = budgets_for(pod, found)
            if len(budgets) > 1:
                raise ApiError(500, "This pod has more than one PodDisruptionBudget, which the eviction "
                                    "subresource does not support.")
            if budgets and not spares_unhealthy(pod, budgets[0]):
                taken = take_disruption(budgets[0], name)
                await store.update(BUDGETS, taken, int(budgets[0]["metadata"]["resourceVersion"]))
        await delete()

    try:
        await retry_stale(attempt)
    except errors.StaleWrite:
        raise _too_many("the disruption budget kept changing; try again") from None
