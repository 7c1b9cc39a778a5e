"""The DaemonSet controller's decisions, as Kubernetes documents them (concepts/workloads/controllers/daemonset):
which nodes run a daemon pod (nodeSelector, node affinity, taints and the tolerations every daemon pod gets), what
to create and delete, a rolling update within maxUnavailable, and the status counts; plus the expectations that
keep a lagging cache from creating a node's pod twice."""
from controllers.daemonset import (compute_status, daemon_pod, manage, max_unavailable, node_should_run,
                                   rolling_update, target_node, template_pod)
from controllers.objects import Expectations

NEW, OLD = "hnew", "hold"


def ds(*, node_selector=None, tolerations=None, max_unavailable=1):
    spec = {"containers": [{"name": "c", "image": "agent:1"}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "uid": "u1", "generation": 3},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}}


def node(name, *, labels=None, taints=None, ready=True):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints} if taints else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name, node_name, *, rev=NEW, ready=True, phase="Running", deleting=False, created="2024-01-01T00:00:00Z"):
    meta = {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": created,
            "labels": {"app": "agent", "controller-revision-hash": rev}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:09Z"
    return {"metadata": meta, "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_every_node_by_default_even_not_ready_or_cordoned():
    t = template_pod(ds())
    assert node_should_run(t, node("n1")) == (True, True)
    assert node_should_run(t, node("n1", ready=False)) == (True, True)
    cordoned = node("n1", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    assert node_should_run(t, cordoned) == (True, True)


def test_node_selector_and_required_affinity():
    t = template_pod(ds(node_selector={"disk": "ssd"}))
    assert node_should_run(t, node("n1", labels={"disk": "ssd"})) == (True, True)
    assert node_should_run(t, node("n2")) == (False, False)
    aff = ds()
    aff["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}
    assert node_should_run(template_pod(aff), node("n1", labels={"zone": "a"}))[0]
    assert not node_should_run(template_pod(aff), node("n1", labels={"zone": "b"}))[0]


def test_taints_no_schedule_keeps_running_pods_no_execute_does_not():
    t = template_pod(ds())
    assert node_should_run(t, node("n1", taints=[{"key": "gpu", "effect": "NoSchedule"}])) == (False, True)
    assert node_should_run(t, node("n1", taints=[{"key": "gpu", "effect": "NoExecute"}])) == (False, False)
    assert node_should_run(t, node("n1", taints=[{"key": "gpu", "effect": "PreferNoSchedule"}])) == (True, True)
    tolerant = template_pod(ds(tolerations=[{"key": "gpu", "operator": "Exists"}]))
    assert node_should_run(tolerant, node("n1", taints=[{"key": "gpu", "effect": "NoExecute"}])) == (True, True)


def test_daemon_pod_is_bound_with_affinity_and_tolerations():
    p = daemon_pod(ds(), "n2", NEW)
    assert p["spec"]["nodeName"] == "n2" and target_node(p) == "n2"
    terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                             "values": ["n2"]}]}]}
    keys = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys and ("node.kubernetes.io/unreachable",
                                                                      "NoExecute") in keys
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert p["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": NEW, "pod-template-generation": "3"}
    assert p["metadata"]["generateName"] == "agent-"


def test_manage_creates_missing_deletes_extra_failed_misplaced_and_orphaned():
    nodes = [node("n1"), node("n2"), node("n3", taints=[{"key": "x", "effect": "NoExecute"}]), node("n4")]
    pods = {"n1": [pod("a", "n1"), pod("b", "n1", created="2024-02-01T00:00:00Z")],
            "n3": [pod("c", "n3")], "n4": [pod("d", "n4", phase="Failed")], "gone": [pod("e", "gone")], "": [pod("f", "")]}
    create, delete, orphaned = manage(ds(), nodes, pods)
    assert create == ["n2", "n4"]
    assert sorted(p["metadata"]["name"] for p in delete) == ["b", "c", "d"]  # the newer extra, the evicted, Failed
    assert [p["metadata"]["name"] for p in orphaned] == ["e"]


def test_manage_leaves_a_node_whose_pod_is_terminating_to_be_refilled():
    create, delete, _ = manage(ds(), [node("n1")], {"n1": [pod("a", "n1", deleting=True)]})
    assert create == ["n1"] and delete == []


def test_rolling_update_within_max_unavailable():
    pods = {f"n{i}": [pod(f"p{i}", f"n{i}", rev=OLD)] for i in range(4)}
    assert [p["metadata"]["name"] for p in rolling_update(ds(), pods, NEW, 1, 0.0)] == ["p0"]
    assert len(rolling_update(ds(), pods, NEW, 2, 0.0)) == 2
    pods["n0"] = [pod("q0", "n0", ready=False)]  # the new pod on n0 is not ready yet: nothing more goes
    assert rolling_update(ds(), pods, NEW, 1, 0.0) == []
    pods["n0"] = [pod("q0", "n0")]
    assert [p["metadata"]["name"] for p in rolling_update(ds(), pods, NEW, 1, 0.0)] == ["p1"]
    pods["n3"] = [pod("p3", "n3", rev=OLD, ready=False)]  # an old pod that is not available goes regardless
    assert [p["metadata"]["name"] for p in rolling_update(ds(), pods, NEW, 1, 0.0)] == ["p3", "p1"]


def test_max_unavailable_numbers_and_percentages():
    assert max_unavailable(ds(max_unavailable=2), 5) == 2
    assert max_unavailable(ds(max_unavailable="30%"), 5) == 2  # rounded up
    assert max_unavailable(ds(max_unavailable="0%"), 5) == 1


def test_status_counts():
    nodes = [node("n1"), node("n2"), node("n3", labels={"skip": "1"}), node("n4")]
    d = ds()
    d["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}]}}}
    pods = {"n1": [pod("a", "n1")], "n2": [pod("b", "n2", rev=OLD, ready=False)], "n3": [pod("c", "n3")]}
    status = compute_status(d, nodes, pods, NEW, 0.0)
    assert status == {"observedGeneration": 3, "desiredNumberScheduled": 3, "currentNumberScheduled": 2,
                      "numberMisscheduled": 1, "numberReady": 1, "updatedNumberScheduled": 1,
                      "numberAvailable": 1, "numberUnavailable": 2}


def test_expectations_wait_for_the_cache():
    e = Expectations()
    e.expect_create("ns/agent", "ns/agent-x")
    assert not e.satisfied("ns/agent", {})
    cache = {"ns/agent-x": pod("agent-x", "n1")}
    assert e.satisfied("ns/agent", cache)
    e.expect_delete("ns/agent", "ns/agent-x", "agent-x")
    assert not e.satisfied("ns/agent", cache)
    cache["ns/agent-x"] = pod("agent-x", "n1", deleting=True)
    assert e.satisfied("ns/agent", cache)
    e.expect_create("ns/agent", "ns/agent-y")
    e.ttl = -1  # expired: a lost event must not block the owner forever
    assert e.satisfied("ns/agent", {})
