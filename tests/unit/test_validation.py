"""422 causes for the objects controllers depend on, and the service IP range."""
import random

from api import defaults, validation
from api.cluster_ips import ClusterIPRange


def deployment(selector, labels, containers=({"name": "c", "image": "i"},)):
    return {"spec": {"selector": {"matchLabels": selector}, "template": {"metadata": {"labels": labels},
                                                                          "spec": {"containers": list(containers)}}}}


def test_a_workload_needs_a_selector_that_matches_and_named_containers_with_images():
    assert validation.check("Deployment", deployment({"a": "1"}, {"a": "1", "b": "2"})) == []
    fields = [f for f, _ in validation.check("Deployment", deployment({"a": "1"}, {"a": "2"}, [{"name": "Bad_Name"}]))]
    assert fields == ["spec.template.spec.containers[0].name", "spec.template.spec.containers[0].image",
                      "spec.template.metadata.labels"]


def test_a_job_pod_may_not_restart_always():
    """As in Kubernetes: the pod default (Always) makes a Job without a restartPolicy invalid."""
    job = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    defaults.apply("Job", job)
    assert [f for f, _ in validation.check("Job", job)] == ["spec.template.spec.restartPolicy"]
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert validation.check("Job", job) == []


def test_service_ips_come_from_the_range_and_skip_what_is_taken():
    ips = ClusterIPRange("10.0.0.0/29")  # 8 addresses: .2 to .6 can be given out
    rng = random.Random(1)
    taken = set()
    for _ in range(5):
        taken.add(ips.pick(taken, rng))
    assert taken == {f"10.0.0.{i}" for i in range(2, 7)}
    assert ips.contains("10.0.0.3") and not ips.contains("10.0.0.7") and not ips.contains("nope")
