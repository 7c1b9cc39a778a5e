"""Deployment arithmetic (controllers/rollout.py) against Kubernetes' documented rolling update behaviour:
maxSurge rounds up, maxUnavailable rounds down, and the sums of ReplicaSet sizes stay inside both bounds."""
from __future__ import annotations

import pytest

from controllers import rollout
from controllers.rollout import (fenceposts, max_unavailable, new_rs_replicas, old_rs_scale_downs,
                                 proportional_scale, rollout_status, scaled_value)


def deployment(n: int = 10, surge: object = "25%", unavailable: object = "25%", *, kind: str = "RollingUpdate",
               **spec: object) -> dict:
    strategy = {"type": kind, "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}} \
        if kind == "RollingUpdate" else {"type": kind}
    return {"metadata": {"name": "web", "namespace": "ns", "generation": 2},
            "spec": {"replicas": n, "strategy": strategy, "revisionHistoryLimit": 2, "progressDeadlineSeconds": 600,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}},
                     **spec},
            "status": {}}


def rs(name: str, size: int, available: int | None = None, *, age: int = 0, rev: int = 1, **ann: str) -> dict:
    available = size if available is None else available
    return {"metadata": {"name": name, "creationTimestamp": f"2024-01-01T00:00:{age:02d}Z", "generation": 1,
                         "annotations": {rollout.REVISION: str(rev), **ann}},
            "spec": {"replicas": size},
            "status": {"replicas": size, "availableReplicas": available, "readyReplicas": available,
                       "observedGeneration": 1}}


@pytest.mark.parametrize("value,total,up,expected", [
    ("25%", 10, True, 3), ("25%", 10, False, 2), (2, 10, True, 2), ("0%", 5, True, 0), ("100%", 3, False, 3),
    ("3", 10, False, 3)])
def test_scaled_value_rounds_surge_up_and_unavailable_down(value, total, up, expected):
    assert scaled_value(value, total, round_up=up) == expected


def test_fenceposts_never_both_zero_and_recreate_has_none():
    assert fenceposts(deployment(10)) == (3, 2)
    assert fenceposts(deployment(3, 0, 0)) == (0, 1)
    assert fenceposts(deployment(3, "10%", "10%")) == (1, 0)
    assert fenceposts(deployment(3, kind="Recreate")) == (0, 0)
    assert max_unavailable(deployment(2, 0, 5)) == 2


def test_new_replica_set_grows_within_the_surge():
    d = deployment(4, 1, 1)
    old = rs("old", 4)
    assert new_rs_replicas(d, [old], None) == 1
    new = rs("new", 1, 0)
    assert new_rs_replicas(d, [old, new], new) == 1  # 5 pods already: no room
    old["spec"]["replicas"] = 2
    assert new_rs_replicas(d, [old, new], new) == 3
    assert new_rs_replicas(deployment(4, kind="Recreate"), [old], None) == 4


def test_old_replica_sets_shrink_keeping_the_minimum_available():
    d = deployment(4, 1, 1)  # at least 3 available
    new = rs("new", 1, 0)
    assert old_rs_scale_downs(d, [rs("old", 4)], new) == {"old": 3}
    # the new pod is not available yet and the old set already shrank: nothing more may go
    assert old_rs_scale_downs(d, [rs("old", 3)], new) == {}
    new = rs("new", 2, 2)
    assert old_rs_scale_downs(d, [rs("old", 3)], new) == {"old": 1}


def test_unhealthy_old_pods_are_cleaned_up_first_oldest_set_first():
    d = deployment(4, 1, 1)
    a, b = rs("a", 2, 0, age=1), rs("b", 2, 2, age=2)
    # a's two pods are unavailable: they go at no cost in availability, b stays
    assert old_rs_scale_downs(d, [b, a], rs("new", 1, 1, age=3)) == {"a": 0}
    # with the new pod not available yet, only one may go (5 pods, 3 must stay available, 1 is missing)
    assert old_rs_scale_downs(d, [b, a], rs("new", 1, 0, age=3)) == {"a": 1}


def test_proportional_scaling_during_a_rollout():
    d = deployment(20, 3, 2)  # was 10 with surge 3: max-replicas 13
    new = rs("new", 5, 5, age=2, **{rollout.MAX_REPLICAS: "13"})
    old = rs("old", 8, 8, age=1, **{rollout.MAX_REPLICAS: "13"})
    sizes = proportional_scale(d, new, [old])
    assert sum(sizes.values()) == 23 and sizes["old"] > sizes["new"] > 5
    assert proportional_scale(deployment(5), rs("only", 3), [rs("gone", 0)]) == {"only": 5}


def test_status_conditions_follow_the_rollout():
    d = deployment(2, 1, 0)
    new = rs("web-new", 2, 1)
    status = rollout_status(d, [new], new, at=0)
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"],
            status["unavailableReplicas"], status["observedGeneration"]) == (2, 2, 1, 1, 2)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasUnavailable"
    assert conds["Progressing"]["reason"] == "ReplicaSetUpdated"
    assert conds["Progressing"]["message"] == 'ReplicaSet "web-new" is progressing.'
    d["status"] = status
    done = rollout_status(d, [rs("web-new", 2, 2)], rs("web-new", 2, 2), at=0)
    conds = {c["type"]: c for c in done["conditions"]}
    assert (conds["Progressing"]["reason"], conds["Available"]["reason"]) == ("NewReplicaSetAvailable",
                                                                            "MinimumReplicasAvailable")
    assert conds["Progressing"]["message"] == 'ReplicaSet "web-new" has successfully progressed.'


def test_a_stuck_rollout_times_out_after_the_deadline():
    d = deployment(2, 1, 0, progressDeadlineSeconds=10)
    d["status"] = {"replicas": 2, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1,
                   "conditions": [rollout.new_condition("Progressing", "True", "ReplicaSetUpdated", "x",
                                                        at="2024-01-01T00:00:00Z")]}
    rss = [rs("old", 1, 1), rs("web-new", 1, 0)]
    start = rollout.parse_time("2024-01-01T00:00:00Z")
    assert rollout.seconds_until_deadline(d, d["status"], start + 5) == pytest.approx(6.0)
    assert rollout.progressing(rollout_status(d, rss, rss[1], at=start + 5))["reason"] == "ReplicaSetUpdated"
    late = rollout.progressing(rollout_status(d, rss, rss[1], at=start + 11))
    assert (late["status"], late["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_cleanup_keeps_revision_history_limit_and_nonempty_sets():
    d = deployment(2)  # limit 2
    olds = [rs("r1", 0, rev=1), rs("r2", 1, rev=2), rs("r3", 0, rev=3), rs("r4", 0, rev=4)]
    assert [r["metadata"]["name"] for r in rollout.cleanup_candidates(d, olds)] == ["r1"]  # r2 still has a pod


def test_templates_compare_without_the_hash_label_and_new_sets_carry_it():
    d = deployment(3)
    new = rollout.new_replica_set(d, "abc", 4, 1)
    assert new["metadata"]["name"] == "web-abc"
    assert new["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": "abc"}
    assert new["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "abc"
    assert new["metadata"]["annotations"] == {rollout.REVISION: "4", rollout.DESIRED_REPLICAS: "3",
                                              rollout.MAX_REPLICAS: "4"}
    assert rollout.same_template(new["spec"]["template"], d["spec"]["template"])
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web"}  # not mutated


def test_a_template_kubectl_copied_back_still_matches():
    """`kubectl rollout undo` sends the old template with `creationTimestamp: null`: still the same template."""
    d = deployment(3)
    copied = {"metadata": {"creationTimestamp": None, "labels": {"app": "web", "pod-template-hash": "x"}},
              "spec": {"containers": [{"name": "c", "resources": {}}], "volumes": []}}
    assert rollout.same_template(copied, d["spec"]["template"])
