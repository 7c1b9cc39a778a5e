"""PodDisruptionBudgets: the disruption controller's counts and the eviction subresource's decisions."""
from __future__ import annotations

import time

import pytest

from api import eviction
from api.errors import ApiError
from controllers.disruption import budget_status, desired, live_disruptions, scaled


def pod(name: str, ready: bool = True, labels: dict | None = None, phase: str = "Running", deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "default", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def budget(spec: dict, status: dict | None = None, generation: int = 1) -> dict:
    return {"metadata": {"name": "web", "namespace": "default", "generation": generation, "resourceVersion": "5"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}, "status": status or {}}


def test_scaled_rounds_percentages_up():
    assert scaled(2, 10) == 2
    assert scaled("25%", 10) == 3
    assert scaled("100%", 3) == 3


def test_desired_healthy_by_kind_of_budget():
    assert desired(budget({"minAvailable": 2}), 5, None) == (5, 2)
    assert desired(budget({"minAvailable": "50%"}), 4, 3) == (3, 2)
    assert desired(budget({"maxUnavailable": 1}), 4, 3) == (3, 2)
    assert desired(budget({"maxUnavailable": "50%"}), 4, 3) == (3, 1)
    with pytest.raises(LookupError):
        desired(budget({"maxUnavailable": 1}), 4, None)


def test_status_counts_healthy_pods_and_allowed_disruptions():
    pods = [pod("a"), pod("b"), pod("c", ready=False)]
    status = budget_status(budget({"minAvailable": 1}), pods, None, time.time())
    assert (status["expectedPods"], status["currentHealthy"], status["desiredHealthy"],
            status["disruptionsAllowed"]) == (3, 2, 1, 1)
    assert status["conditions"][0]["reason"] == "SufficientPods"
    status = budget_status(budget({"minAvailable": 2}), pods, None, time.time())
    assert status["disruptionsAllowed"] == 0 and status["conditions"][0]["reason"] == "InsufficientPods"


def test_a_granted_eviction_counts_until_its_pod_is_deleted_or_it_expires():
    now = time.time()
    granted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 10))
    b = budget({"minAvailable": 1}, {"disruptedPods": {"a": granted}})
    assert live_disruptions(b, {"a": pod("a")}, now) == {"a": granted}
    assert live_disruptions(b, {"a": pod("a", deleting=True)}, now) == {}
    assert live_disruptions(b, {"a": pod("a")}, now + 200) == {}
    status = budget_status(b, [pod("a"), pod("b")], None, now)
    assert status["currentHealthy"] == 1 and status["disruptionsAllowed"] == 0


def test_a_pod_without_a_scaled_controller_fails_a_percentage_budget():
    status = budget_status(budget({"maxUnavailable": "10%"}), [pod("a")], None, time.time())
    assert status["disruptionsAllowed"] == 0 and status["conditions"][0]["reason"] == "SyncFailed"


def test_eviction_takes_one_disruption_and_refuses_at_zero():
    b = budget({"minAvailable": 1}, {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2,
                                     "desiredHealthy": 1})
    taken = eviction.take_disruption(b, "a")
    assert taken["status"]["disruptionsAllowed"] == 0 and "a" in taken["status"]["disruptedPods"]
    with pytest.raises(ApiError) as refused:
        eviction.take_disruption(taken, "b")
    assert refused.value.code == 429 and refused.value.reason == "TooManyRequests"
    assert "needs 1 healthy pods and has 2 currently" in refused.value.details["causes"][0]["message"]


def test_eviction_waits_for_the_controller_to_see_a_new_budget():
    with pytest.raises(ApiError) as refused:
        eviction.take_disruption(budget({"minAvailable": 1}, {"observedGeneration": 1, "disruptionsAllowed": 3},
                                        generation=2), "a")
    assert refused.value.code == 429 and "still being processed" in refused.value.details["causes"][0]["message"]


def test_what_eviction_lets_go_without_a_budget():
    assert eviction.disrupts_nothing(pod("a", phase="Succeeded"))
    assert eviction.disrupts_nothing(pod("a", phase="Pending"))
    assert eviction.disrupts_nothing(pod("a", deleting=True))
    assert not eviction.disrupts_nothing(pod("a"))
    healthy_enough = budget({"minAvailable": 1}, {"currentHealthy": 2, "desiredHealthy": 1})
    assert eviction.spares_unhealthy(pod("a", ready=False), healthy_enough)
    assert not eviction.spares_unhealthy(pod("a"), healthy_enough)
    assert eviction.spares_unhealthy(pod("a", ready=False), budget({"unhealthyPodEvictionPolicy": "AlwaysAllow"}))
    assert eviction.budgets_for(pod("a"), [healthy_enough, budget({"selector": {"matchLabels": {"app": "x"}}})]) \
        == [healthy_enough]
