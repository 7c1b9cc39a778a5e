"""The StatefulSet controller's decisions, as Kubernetes documents them (concepts/workloads/controllers/statefulset):
OrderedReady creates 0..N-1 one at a time, each after the previous is Running and Ready, and scales down from the
highest ordinal, only while the rest are healthy; Parallel does all at once; RollingUpdate replaces pods from the
highest ordinal down to the partition, one at a time; a Failed pod is deleted and made again."""
from controllers.statefulset import (POD_INDEX_LABEL, POD_NAME_LABEL, Step, compute_status, new_pod, ordinal_of,
                                     plan)

CUR, UPD = "web-aaa", "web-bbb"


def sts(replicas: int = 3, *, policy: str = "OrderedReady", partition: int = 0, strategy: str = "RollingUpdate"):
    update = {"type": strategy, **({"rollingUpdate": {"partition": partition}} if strategy == "RollingUpdate" else {})}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": {"replicas": replicas, "podManagementPolicy": policy, "serviceName": "nginx",
                     "updateStrategy": update, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}}}


def pod(ordinal: int, phase: str = "Running", *, ready: bool = True, rev: str = CUR, deleting: bool = False):
    meta = {"name": f"web-{ordinal}", "namespace": "ns", "uid": f"p{ordinal}",
            "labels": {"app": "web", "controller-revision-hash": rev}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def verbs(steps: list[Step]) -> list[tuple[str, int]]:
    return [(s.verb, s.ordinal) for s in steps]


def test_ordinal_from_the_name():
    assert ordinal_of(pod(7), "web") == 7
    assert ordinal_of({"metadata": {"name": "web-x"}}, "web") == -1
    assert ordinal_of({"metadata": {"name": "other-1"}}, "web") == -1
    assert ordinal_of({"metadata": {"name": "my-web-2"}}, "my-web") == 2


def test_ordered_ready_creates_one_at_a_time_after_the_previous_is_ready():
    assert verbs(plan(sts(), [], CUR, CUR)) == [("create", 0)]
    assert verbs(plan(sts(), [pod(0, "Pending", ready=False)], CUR, CUR)) == []
    assert verbs(plan(sts(), [pod(0, ready=False)], CUR, CUR)) == []
    assert verbs(plan(sts(), [pod(0)], CUR, CUR)) == [("create", 1)]
    assert verbs(plan(sts(), [pod(0), pod(1)], CUR, CUR)) == [("create", 2)]
    assert verbs(plan(sts(), [pod(0), pod(1), pod(2)], CUR, CUR)) == []


def test_parallel_creates_every_missing_pod_at_once():
    assert verbs(plan(sts(policy="Parallel"), [pod(1, "Pending", ready=False)], CUR, CUR)) == [
        ("create", 0), ("create", 2)]


def test_scale_down_from_the_highest_ordinal_one_at_a_time():
    pods = [pod(i) for i in range(5)]
    assert verbs(plan(sts(2), pods, CUR, CUR)) == [("delete", 4)]
    assert verbs(plan(sts(2), pods[:3] + [pod(3), pod(4, deleting=True)], CUR, CUR)) == []  # wait until gone
    assert verbs(plan(sts(2, policy="Parallel"), pods, CUR, CUR)) == [("delete", 4), ("delete", 3), ("delete", 2)]


def test_scale_down_waits_for_the_remaining_pods_to_be_healthy():
    assert verbs(plan(sts(1), [pod(0, ready=False), pod(1)], CUR, CUR)) == []
    # an unhealthy condemned pod may go only if it is the first unhealthy one (by ordinal)
    assert verbs(plan(sts(1), [pod(0), pod(1), pod(2, ready=False)], CUR, CUR)) == [("delete", 2)]
    assert verbs(plan(sts(1), [pod(0), pod(1, ready=False), pod(2, ready=False)], CUR, CUR)) == []
    assert verbs(plan(sts(1), [pod(0), pod(1, ready=False), pod(2)], CUR, CUR)) == [("delete", 2)]


def test_a_failed_pod_is_deleted_then_made_again():
    assert verbs(plan(sts(), [pod(0), pod(1, "Failed", ready=False), pod(2)], CUR, CUR)) == [("delete", 1)]
    assert verbs(plan(sts(), [pod(0), pod(2)], CUR, CUR)) == [("create", 1)]


def test_rolling_update_from_the_highest_ordinal_one_at_a_time():
    pods = [pod(0), pod(1), pod(2)]
    assert verbs(plan(sts(), pods, CUR, UPD)) == [("delete", 2)]
    steps = plan(sts(), [pod(0), pod(1)], CUR, UPD)
    assert verbs(steps) == [("create", 2)] and steps[0].revision == UPD
    assert verbs(plan(sts(), [pod(0), pod(1), pod(2, "Pending", rev=UPD)], CUR, UPD)) == []
    assert verbs(plan(sts(), [pod(0), pod(1), pod(2, rev=UPD)], CUR, UPD)) == [("delete", 1)]


def test_partition_keeps_lower_ordinals_at_the_current_revision():
    s = sts(partition=2)
    assert verbs(plan(s, [pod(0), pod(1), pod(2, rev=UPD)], CUR, UPD)) == []
    steps = plan(s, [pod(0)], CUR, UPD)
    assert verbs(steps) == [("create", 1)] and steps[0].revision == CUR  # below the partition: the old template


def test_on_delete_replaces_nothing_but_recreates_at_the_update_revision():
    s = sts(strategy="OnDelete")
    assert verbs(plan(s, [pod(0), pod(1), pod(2)], CUR, UPD)) == []
    assert plan(s, [pod(0), pod(2)], CUR, UPD)[0].revision == UPD


def test_status_counts_and_a_finished_rollout_makes_update_current():
    pods = [pod(0), pod(1, ready=False), pod(2, rev=UPD)]
    status = compute_status(sts(), pods, CUR, UPD, 0, 0.0)
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"], status["updatedReplicas"],
            status["currentRevision"], status["observedGeneration"]) == (3, 2, 2, 1, CUR, 2)
    done = compute_status(sts(), [pod(i, rev=UPD) for i in range(3)], CUR, UPD, 0, 0.0)
    assert done["currentRevision"] == UPD and done["currentReplicas"] == 3


def test_new_pod_identity():
    p = new_pod(sts(), 1, UPD, sts()["spec"]["template"])
    assert p["metadata"]["name"] == "web-1" and p["spec"]["hostname"] == "web-1"
    assert p["spec"]["subdomain"] == "nginx"
    assert p["metadata"]["labels"] == {"app": "web", POD_NAME_LABEL: "web-1", POD_INDEX_LABEL: "1",
                                       "controller-revision-hash": UPD}


def test_a_pod_event_wakes_its_set_and_for_an_orphan_the_sets_that_may_adopt_it():
    from controllers.objects import keys_to_wake
    owned = pod(0)
    owned["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "web", "uid": "u1", "controller": True}]
    other = sts()
    other["metadata"]["name"] = "db"
    assert keys_to_wake("StatefulSet", [sts(), other], None, owned) == {"ns/web"}
    assert keys_to_wake("StatefulSet", [sts(), other], None, pod(1)) == {"ns/web", "ns/db"}
    member = (lambda s, p: ordinal_of(p, s["metadata"]["name"]) >= 0)
    assert keys_to_wake("StatefulSet", [sts(), other], pod(1), None, member) == {"ns/web"}
    assert keys_to_wake("DaemonSet", [sts()], None, owned) == set()
