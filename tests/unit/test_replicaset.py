"""ReplicaSet decisions (controllers/replicaset.py): Kubernetes' ActivePods order for scale-down, slow-start
batches, and status counts."""
from __future__ import annotations

from controllers.replicaset import deletion_order, replicaset_status, slow_start_batches


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = True, created: int = 0,
        ready_at: int = 0, restarts: int = 0, labels: dict | None = None, **ann: str) -> dict:
    conds = [{"type": "Ready", "status": "True" if ready else "False",
              "lastTransitionTime": f"2024-01-01T00:01:{ready_at:02d}Z"}]
    return {"metadata": {"name": name, "creationTimestamp": f"2024-01-01T00:00:{created:02d}Z",
                         "labels": labels or {"app": "web"}, "annotations": ann},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conds, "containerStatuses": [{"restartCount": restarts}]}}


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_slow_start_doubles():
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]


def test_unscheduled_then_pending_then_not_ready_then_newer_are_deleted_first():
    pods = [pod("old-ready", created=1), pod("new-ready", created=5), pod("not-ready", ready=False),
            pod("pending", phase="Pending", ready=False), pod("unscheduled", node="", phase="Pending", ready=False)]
    assert names(deletion_order(pods)) == ["unscheduled", "pending", "not-ready", "new-ready", "old-ready"]


def test_deletion_cost_doubled_up_nodes_ready_time_and_restarts():
    assert names(deletion_order([pod("cheap"), pod("dear", **{"controller.kubernetes.io/pod-deletion-cost": "5"})])
                 ) == ["cheap", "dear"]
    crowded = [pod("a1", node="a"), pod("a2", node="a", created=1), pod("b1", node="b", created=9)]
    assert names(deletion_order(crowded))[0] in ("a1", "a2")  # two on node a: one of them goes first
    assert names(deletion_order([pod("long", ready_at=1), pod("short", ready_at=9)])) == ["short", "long"]
    assert names(deletion_order([pod("calm"), pod("crashy", restarts=4)])) == ["crashy", "calm"]


def test_status_counts_ready_available_and_fully_labeled():
    rs = {"metadata": {"generation": 3},
          "spec": {"replicas": 3, "minReadySeconds": 0,
                   "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}}}}
    pods = [pod("a", labels={"app": "web", "tier": "front"}), pod("b"), pod("c", ready=False)]
    assert replicaset_status(rs, pods, at=0) == {"replicas": 3, "fullyLabeledReplicas": 1, "readyReplicas": 2,
                                                 "availableReplicas": 2, "observedGeneration": 3}
    rs["spec"]["minReadySeconds"] = 30  # ready since 00:01:00: available only 30 s later
    at = 1704067260.0 + 10
    assert replicaset_status(rs, pods, at=at)["availableReplicas"] == 0
    failed = replicaset_status(rs, pods, at=at, failure="quota exceeded")
    assert failed["conditions"][0]["type"] == "ReplicaFailure" and failed["conditions"][0]["reason"] == "FailedCreate"
