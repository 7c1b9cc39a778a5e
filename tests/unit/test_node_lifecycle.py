"""Node lifecycle decisions: Unknown conditions, the NoExecute taints Ready implies, when pods are evicted."""
from __future__ import annotations

import datetime

from controllers.node_lifecycle import NOT_READY, UNREACHABLE, eviction_time, unknown_status, wanted_taints


def stamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(ready: str, taints: list[dict] | None = None) -> dict:
    return {"metadata": {"name": "n1"}, "spec": {"taints": taints} if taints else {},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady"},
                                      {"type": "MemoryPressure", "status": "False"}]}}


def pod(*tolerations: dict) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"tolerations": list(tolerations)}}


def test_a_silent_node_gets_unknown_conditions_once():
    status, changed = unknown_status(node("True"))
    assert changed
    assert {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]} == {
        "Ready": ("Unknown", "NodeStatusUnknown"), "MemoryPressure": ("Unknown", "NodeStatusUnknown")}
    assert status["conditions"][0]["message"] == "Kubelet stopped posting node status."
    assert not unknown_status({"status": status})[1]
    never, _ = unknown_status({"metadata": {"name": "n"}, "status": {}})
    assert never["conditions"][0]["reason"] == "NodeStatusNeverUpdated"


def test_the_no_execute_taint_follows_the_ready_condition():
    other = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    unreachable = wanted_taints(node("Unknown", [other]), stamp(5))
    assert unreachable == [other, {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp(5)}]
    assert wanted_taints(node("Unknown", unreachable), stamp(9)) == unreachable  # timeAdded kept
    assert wanted_taints(node("False", unreachable), stamp(9)) == [other, {"key": NOT_READY, "effect": "NoExecute",
                                                                           "timeAdded": stamp(9)}]
    assert wanted_taints(node("True", unreachable), stamp(9)) == [other]


def test_pods_go_after_their_toleration_seconds_or_the_default():
    taints = [{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp(100)}]
    assert eviction_time(pod(), taints, 300) == 400  # no toleration: the admission default
    tolerating = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    assert eviction_time(pod(tolerating), taints, 300) == 130
    forever = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}  # as DaemonSet pods
    assert eviction_time(pod(forever), taints, 300) is None
    assert eviction_time(pod({"operator": "Exists"}), taints, 300) is None


def test_an_untolerated_custom_no_execute_taint_evicts_at_once():
    taints = [{"key": "maintenance", "effect": "NoExecute", "timeAdded": stamp(100)},
              {"key": "dedicated", "effect": "NoSchedule"}]
    assert eviction_time(pod(), taints, 300) == 100
    assert eviction_time(pod({"key": "maintenance", "operator": "Exists"}), taints, 300) is None
