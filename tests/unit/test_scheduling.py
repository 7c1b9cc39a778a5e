"""The scheduler's pure decisions (controllers/scheduling.py, controllers/quantity.py): each filter and score on
small pod and node dicts, and kube-scheduler's wording of a pod that fits nowhere."""
from __future__ import annotations

import random
from fractions import Fraction

import pytest

from controllers import scheduling as s
from controllers.quantity import milli_value, parse_quantity, value


def node(name: str = "n1", *, cpu: str = "2", memory: str = "4Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None, ready: str | None = "True", unschedulable: bool = False) -> dict:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    spec: dict = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}, "conditions": conditions}}


def pod(name: str = "p", *, cpu: str | None = None, memory: str | None = None, owner: str | None = None,
        **spec: object) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    meta: dict = {"name": name, "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": True}]
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}], **spec}}


def info(n: dict, *pods: dict) -> s.NodeInfo:
    i = s.NodeInfo(n)
    for p in pods:
        i.add_pod(p["metadata"]["name"], p)
    return i


# -- quantities ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("100m", Fraction(1, 10)), ("1", 1), ("0.5", Fraction(1, 2)), ("512Mi", 512 * 2 ** 20), ("1Gi", 2 ** 30),
    ("1e3", 1000), ("1E-3", Fraction(1, 1000)), ("2k", 2000), ("1M", 10 ** 6), ("10Ki", 10240), (".5", Fraction(1, 2)),
    (3, 3), ("+4", 4), ("250u", Fraction(1, 4000))])
def test_parse_quantity(text: str, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1Kb", "Mi", "1 Gi", "--1"])
def test_parse_quantity_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_milli_and_whole_values_round_up_as_kubernetes() -> None:
    assert milli_value("250m") == 250 and milli_value("1") == 1000 and milli_value("0.1m") == 1
    assert value("1Ki") == 1024 and value("1.5") == 2


# -- what a pod asks for ------------------------------------------------------------------------------------

def test_pod_requests_sum_containers_and_take_limits_for_missing_requests() -> None:
    p = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
        {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"memory": "128Mi"}}}]}}
    assert s.pod_requests(p) == {"cpu": 1250, "memory": 192 * 2 ** 20}


def test_pod_requests_are_at_least_the_largest_init_container_plus_overhead() -> None:
    p = {"metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
        "overhead": {"cpu": "100m"}}}
    assert s.pod_requests(p) == {"cpu": 2100, "memory": 2 ** 30}


def test_sidecar_init_containers_add_to_the_containers() -> None:
    p = {"metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}}],
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}}
    assert s.pod_requests(p) == {"cpu": 700}


def test_node_info_counts_and_uncounts_pods() -> None:
    i = info(node(), pod("a", cpu="1", memory="1Gi", owner="u1"), pod("b", cpu="500m", owner="u1"))
    assert i.requested["cpu"] == 1500 and i.requested["memory"] == 2 ** 30 and i.owners["u1"] == 2
    i.remove_pod("a")
    assert i.requested["cpu"] == 500 and i.owners["u1"] == 1 and list(i.pods) == ["b"]
    i.add_pod("b", pod("b", cpu="250m", owner="u1"))  # an update replaces, never double counts
    assert i.requested["cpu"] == 250 and i.owners["u1"] == 1


# -- filters ------------------------------------------------------------------------------------------------

def test_resources_fit_against_allocatable_minus_requested() -> None:
    i = info(node(cpu="2", memory="1Gi"), pod("a", cpu="1500m"))
    assert s.filter_resources(pod(cpu="500m"), i) == []
    assert s.filter_resources(pod(cpu="501m"), i) == ["Insufficient cpu"]
    assert s.filter_resources(pod(cpu="1", memory="2Gi"), i) == ["Insufficient cpu", "Insufficient memory"]
    assert s.filter_resources(pod(), i) == []  # asks for nothing: fits anywhere with room for one more pod


def test_pods_capacity() -> None:
    i = info(node(pods="2"), pod("a"), pod("b"))
    assert s.filter_resources(pod(), i) == ["Too many pods"]


def test_extended_resources_must_be_allocatable() -> None:
    p = {"metadata": {"name": "g"}, "spec": {"containers": [
        {"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    assert s.filter_resources(p, info(node())) == ["Insufficient nvidia.com/gpu"]


def test_node_selector() -> None:
    i = info(node(labels={"disk": "ssd"}))
    assert s.filter_node_affinity(pod(nodeSelector={"disk": "ssd"}), i) == []
    assert s.filter_node_affinity(pod(nodeSelector={"disk": "hdd"}), i) == [s.AFFINITY]


def _required(*terms: dict) -> dict:
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}


@pytest.mark.parametrize("expression, fits", [
    ({"key": "zone", "operator": "In", "values": ["a", "b"]}, True),
    ({"key": "zone", "operator": "In", "values": ["c"]}, False),
    ({"key": "zone", "operator": "NotIn", "values": ["c"]}, True),
    ({"key": "zone", "operator": "NotIn", "values": ["a"]}, False),
    ({"key": "missing", "operator": "NotIn", "values": ["a"]}, True),
    ({"key": "zone", "operator": "Exists"}, True),
    ({"key": "missing", "operator": "Exists"}, False),
    ({"key": "missing", "operator": "DoesNotExist"}, True),
    ({"key": "zone", "operator": "DoesNotExist"}, False),
    ({"key": "cores", "operator": "Gt", "values": ["8"]}, True),
    ({"key": "cores", "operator": "Gt", "values": ["16"]}, False),
    ({"key": "cores", "operator": "Lt", "values": ["16"]}, True),
    ({"key": "zone", "operator": "Lt", "values": ["16"]}, False),  # not a number
])
def test_required_node_affinity_operators(expression: dict, fits: bool) -> None:
    i = info(node(labels={"zone": "a", "cores": "12"}))
    assert (s.filter_node_affinity(pod(**_required({"matchExpressions": [expression]})), i) == []) is fits


def test_node_affinity_terms_are_ored_and_match_fields_name_the_node() -> None:
    i = info(node("n1", labels={"zone": "a"}))
    wrong = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    other_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
    assert s.filter_node_affinity(pod(**_required(wrong, by_name)), i) == []
    assert s.filter_node_affinity(pod(**_required(wrong, other_name)), i) == [s.AFFINITY]
    assert s.filter_node_affinity(pod(**_required({})), i) == [s.AFFINITY]  # an empty term matches nothing
    both = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}], **other_name}
    assert s.filter_node_affinity(pod(**_required(both)), i) == [s.AFFINITY]  # within a term: AND


def test_taints_need_tolerations() -> None:
    i = info(node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                          {"key": "soft", "effect": "PreferNoSchedule"}]))
    assert s.filter_taints(pod(), i) == ["node(s) had untolerated taint {dedicated: gpu}"]
    for toleration, fits in [
            ({"key": "dedicated", "operator": "Equal", "value": "gpu"}, True),
            ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, True),
            ({"key": "dedicated", "value": "cpu"}, False),
            ({"key": "dedicated", "operator": "Exists"}, True),
            ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
            ({"operator": "Exists"}, True)]:  # empty key with Exists tolerates everything
        assert (s.filter_taints(pod(tolerations=[toleration]), i) == []) is fits, toleration


def test_no_execute_taints_filter_too() -> None:
    i = info(node(taints=[{"key": "k", "effect": "NoExecute"}]))
    assert s.filter_taints(pod(), i) == ["node(s) had untolerated taint {k: }"]


def test_a_node_that_is_not_ready_counts_as_tainted() -> None:
    assert s.filter_taints(pod(), info(node(ready="False"))) == [
        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    assert s.filter_taints(pod(), info(node(ready="Unknown"))) == [
        "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
    assert s.filter_taints(pod(), info(node(ready=None))) != []
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert s.filter_taints(tolerant, info(node(ready="False"))) == []


def test_unschedulable_nodes() -> None:
    i = info(node(unschedulable=True))
    assert s.filter_unschedulable(pod(), i) == [s.UNSCHEDULABLE]
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    assert s.filter_unschedulable(tolerant, i) == []


def _with_port(name: str, port: int, *, ip: str | None = None, protocol: str = "TCP") -> dict:
    p = pod(name)
    p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": port, "protocol": protocol,
                                            **({"hostIP": ip} if ip else {})}]
    return p


def test_host_ports_conflict() -> None:
    i = info(node(), _with_port("a", 8080))
    assert s.filter_ports(_with_port("b", 8080), i) == [s.PORTS]
    assert s.filter_ports(_with_port("b", 8081), i) == []
    assert s.filter_ports(_with_port("b", 8080, protocol="UDP"), i) == []
    assert s.filter_ports(_with_port("b", 8080, ip="10.0.0.1"), i) == [s.PORTS]  # no hostIP: every address
    j = info(node(), _with_port("a", 8080, ip="10.0.0.1"))
    assert s.filter_ports(_with_port("b", 8080, ip="10.0.0.2"), j) == []
    i.remove_pod("a")
    assert s.filter_ports(_with_port("b", 8080), i) == []


def test_filter_node_reports_only_the_first_refusing_filter() -> None:
    i = info(node(cpu="1", labels={"disk": "hdd"}, unschedulable=True))
    assert s.filter_node(pod(cpu="2", nodeSelector={"disk": "ssd"}), i) == [s.UNSCHEDULABLE]


# -- scores and the decision --------------------------------------------------------------------------------

def test_least_allocated_prefers_the_emptier_node() -> None:
    busy = info(node("busy", cpu="4", memory="4Gi"), pod("a", cpu="3", memory="3Gi"))
    idle = info(node("idle", cpu="4", memory="4Gi"))
    p = pod(cpu="1", memory="1Gi")
    assert s.score_least_allocated(p, idle) == 75 and s.score_least_allocated(p, busy) == 0
    assert s.schedule(p, [busy, idle])[0] == "idle"


def test_pods_without_requests_still_count_for_scoring() -> None:
    assert s.score_least_allocated(pod(), info(node(cpu="1", memory="1Gi"))) < 100


def test_spreading_pods_of_one_owner() -> None:
    assert s.score_spread({"a": 2, "b": 1, "c": 0}) == {"a": 0, "b": 50, "c": 100}
    assert s.score_spread({"a": 0, "b": 0}) == {"a": 100, "b": 100}
    crowded = info(node("crowded", cpu="100", memory="100Gi"), *(pod(f"x{i}", owner="u") for i in range(3)))
    empty = info(node("empty", cpu="100", memory="100Gi"), *(pod(f"y{i}", owner="other") for i in range(3)))
    assert s.schedule(pod(owner="u"), [crowded, empty])[0] == "empty"


def test_preferred_affinity_and_prefer_no_schedule_taints_score() -> None:
    plain, ssd = info(node("plain")), info(node("ssd", labels={"disk": "ssd"}))
    p = pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}})
    assert s.schedule(p, [plain, ssd])[0] == "ssd"
    soft = info(node("soft", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    assert s.schedule(pod(), [soft, info(node("clean"))])[0] == "clean"


def test_ties_are_broken_at_random() -> None:
    nodes = [info(node(f"n{i}")) for i in range(4)]
    chosen = {s.schedule(pod(), nodes, random.Random(seed))[0] for seed in range(40)}
    assert chosen == {"n0", "n1", "n2", "n3"}


def test_a_pod_that_fits_nowhere_gets_kube_schedulers_message() -> None:
    nodes = [info(node("small", cpu="500m")), info(node("gpu", labels={"gpu": "yes"}, cpu="1")),
             info(node("hdd", labels={"disk": "hdd"}))]
    chosen, refused = s.schedule(pod(cpu="1", nodeSelector={"disk": "ssd"}), nodes)
    assert chosen is None
    assert s.fit_error(3, refused) == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    chosen, refused = s.schedule(pod(cpu="1", memory="8Gi"), nodes)
    assert s.fit_error(3, refused) == "0/3 nodes are available: 1 Insufficient cpu, 3 Insufficient memory."
    cordoned = info(node("cordoned", unschedulable=True))
    _, refused = s.schedule(pod(cpu="3"), nodes + [cordoned])
    assert s.fit_error(4, refused) == "0/4 nodes are available: 1 node(s) were unschedulable, 3 Insufficient cpu."
    assert s.fit_error(0, {}) == "no nodes available to schedule pods"


def test_node_changes_that_matter_to_waiting_pods() -> None:
    before = node()
    heartbeat = {**before, "status": {**before["status"], "conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "later"}]}}
    assert not s.node_changed_for_scheduling(before, heartbeat)
    assert s.node_changed_for_scheduling(before, node(cpu="4"))
    assert s.node_changed_for_scheduling(before, node(labels={"disk": "ssd"}))
    assert s.node_changed_for_scheduling(before, node(ready="False"))
    assert s.node_changed_for_scheduling(before, node(unschedulable=True))
    assert s.node_changed_for_scheduling(None, before)
