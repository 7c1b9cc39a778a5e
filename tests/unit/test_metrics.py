"""The lock-free metric pieces: histogram buckets, the API's verbs and labels, one registry per process."""
from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import TARGET, ApiMetrics, verb_and_resource
from kvstore.metrics import Histogram, StoreStats, new_registry
from pysyncobj.config import FAIL_REASON


def samples(registry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}


def test_histogram_buckets_are_cumulative_with_inf():
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    assert h.buckets() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]  # le: 0.1 counts 0.1 itself
    assert h.sum == 3.65


def test_store_stats_count_latency_and_failures_by_reason():
    stats = StoreStats()
    stats.proposal_done(0.0, FAIL_REASON.SUCCESS)
    stats.proposal_done(0.0, FAIL_REASON.LEADER_CHANGED)
    stats.fail("deadline")
    assert sum(stats.proposal_seconds.counts) == 1
    assert stats.failed == {"leader_changed": 1, "deadline": 1}


def request(method, target=None, query=None, content_type="application/json"):
    req = {TARGET: target} if target is not None else {}
    return SimpleNamespace(method=method, query=query or {}, content_type=content_type, get=req.get)


def target(name=None, sub=None, plural="pods"):
    return SimpleNamespace(res=SimpleNamespace(plural=plural), name=name, subresource=sub)


def test_kubernetes_verbs():
    assert verb_and_resource(request("GET", target())) == ("LIST", "pods")
    assert verb_and_resource(request("GET", target(), {"watch": "true"})) == ("WATCH", "pods")
    assert verb_and_resource(request("GET", target("p"))) == ("GET", "pods")
    assert verb_and_resource(request("PUT", target("p", "status"))) == ("PUT", "pods/status")
    assert verb_and_resource(request("PATCH", target("p"), content_type="application/apply-patch+yaml")) == \
        ("APPLY", "pods")
    assert verb_and_resource(request("DELETE", target())) == ("DELETECOLLECTION", "pods")
    assert verb_and_resource(request("GET")) == ("GET", "")  # discovery, /version, a 404: no resource label


def test_each_registry_stands_alone():
    """Two masters in one test process do not see each other's counts."""
    a, b = ApiMetrics(new_registry()), ApiMetrics(new_registry())
    a.done("POST", "pods", 201, 0.01)
    key = ("raftkube_apiserver_request_total", (("code", "201"), ("resource", "pods"), ("verb", "POST")))
    assert samples(a.registry)[key] == 1
    assert key not in samples(b.registry)
    count = ("raftkube_apiserver_request_duration_seconds_count", (("resource", "pods"), ("verb", "POST")))
    assert samples(a.registry)[count] == 1


async def test_control_plane_collector_reads_live_controllers_and_electors():
    from controllers.base import Controller
    from controllers.leader_election import LeaderElector
    from raftkube.metrics import ControlPlaneCollector

    class Scheduler(Controller):
        name = "scheduler"

    ctx = SimpleNamespace(client=None)
    sched = Scheduler(ctx)
    sched.queue.add("default/p1")
    sched.count("scheduled")
    sched.sync_seconds.observe(0.002)
    elector = LeaderElector(None, "kube-scheduler", "m1_abcd")
    elector.is_leader = True
    registry = new_registry()
    registry.register(ControlPlaneCollector())
    got = samples(registry)
    assert got[("raftkube_workqueue_depth", (("controller", "scheduler"),))] == 1
    assert got[("raftkube_scheduler_schedule_attempts_total", (("result", "scheduled"),))] == 1
    assert got[("raftkube_controller_reconcile_duration_seconds_count", (("controller", "scheduler"),))] == 1
    assert got[("raftkube_leader_election_is_leader", (("lease", "kube-system/kube-scheduler"),))] == 1
    del sched, elector
