"""Issue 4's acceptance, tried as a new user would with the real kubectl: three masters, each running a
controller-manager and a scheduler (one of each acting), three fake-runtime nodes. Deployments roll and roll back,
StatefulSets come up in order, DaemonSets follow nodes, Jobs complete or stop at their backoffLimit, Services get
Endpoints, deletions cascade; and killing the master whose process holds the controller-manager Lease hands the
work to another master while a scaled Deployment still converges."""
import json
import shutil
import subprocess
import sys

import pytest

from raftkube import up
from tests.integration.cluster import FAST_CONTROL_PLANE, FAST_NODES, Cluster
from tests.integration.kube import Kubectl, wait_until

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{rollingUpdate: {{maxSurge: 2, maxUnavailable: 1}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: "nginx:1.25", ports: [{{name: http, containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http}}]
"""

STATEFULSET = """apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: c, image: "postgres:16"}]
"""

DAEMONSET = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: c, image: "agent:1"}]
"""

JOBS = """apiVersion: batch/v1
kind: Job
metadata: {name: ok}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "exit 0"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: broken}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {raftkube.io/fake-exit-code: "1"}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "exit 1"]}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("acceptance")), 3, FAST_CONTROL_PLANE, nodes=3, runtime="fake")
    yield c
    c.stop()


@pytest.fixture
def kubectl(cluster, tmp_path):
    run = Kubectl(tmp_path, cluster)
    wait_until(lambda: run("get", "nodes", "-o", "name", check=False).stdout.count("node/") == 3,
               "three nodes registered", timeout=30)
    return run


def get(kubectl, *args, master="m1"):
    return json.loads(kubectl("get", *args, "-o", "json", master=master).stdout)


def pods(kubectl, ns, selector, master="m1"):
    items = get(kubectl, "pods", "-n", ns, "-l", selector, master=master)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def images(kubectl, ns):
    return sorted({p["spec"]["containers"][0]["image"] for p in pods(kubectl, ns, "app=web")})


def test_workloads_roll_scale_cascade_as_kubectl_expects(kubectl):
    ns = "shop"
    kubectl("create", "namespace", ns)
    kubectl("apply", "-n", ns, "-f", "-", stdin=DEPLOYMENT.format(replicas=5))
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
    assert len(pods(kubectl, ns, "app=web")) == 5
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] for p in pods(kubectl, ns, "app=web"))
    sources = {(e["reason"], e["source"]["component"]) for e in get(kubectl, "events", "-n", ns)["items"]}
    assert {("ScalingReplicaSet", "deployment-controller"), ("SuccessfulCreate", "replicaset-controller"),
            ("Scheduled", "default-scheduler")} <= sources, sources

    # The Service's Endpoints follow its ready pods, the named port resolved.
    def endpoints(count):
        ep = get(kubectl, "endpoints", "-n", ns, "web")
        subsets = ep.get("subsets") or []
        addresses = [a for s in subsets for a in s.get("addresses") or []]
        return len(addresses) == count and all(s["ports"][0]["port"] == 8080 for s in subsets)
    wait_until(lambda: endpoints(5), "5 endpoints", timeout=30)

    kubectl("scale", "-n", ns, "deployment/web", "--replicas=2")
    wait_until(lambda: len(pods(kubectl, ns, "app=web")) == 2 and endpoints(2), "scaled to 2", timeout=30)
    kubectl("scale", "-n", ns, "deployment/web", "--replicas=4")
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")

    kubectl("set", "image", "-n", ns, "deployment/web", "c=nginx:1.26")
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
    wait_until(lambda: images(kubectl, ns) == ["nginx:1.26"], "every pod on the new image", timeout=30)
    kubectl("rollout", "undo", "-n", ns, "deployment/web")
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
    wait_until(lambda: images(kubectl, ns) == ["nginx:1.25"], "every pod back on the old image", timeout=30)
    assert "3" in kubectl("rollout", "history", "-n", ns, "deployment/web").stdout

    kubectl("apply", "-n", ns, "-f", "-", stdin=STATEFULSET)
    kubectl("rollout", "status", "-n", ns, "statefulset/db", "--timeout=60s")
    assert sorted(p["metadata"]["name"] for p in pods(kubectl, ns, "app=db")) == ["db-0", "db-1", "db-2"]

    kubectl("apply", "-n", ns, "-f", "-", stdin=JOBS)
    kubectl("wait", "-n", ns, "--for=condition=complete", "job/ok", "--timeout=60s")
    kubectl("wait", "-n", ns, "--for=condition=failed", "job/broken", "--timeout=60s")
    broken = get(kubectl, "job", "-n", ns, "broken")
    assert [c["reason"] for c in broken["status"]["conditions"] if c["type"] == "Failed"] == ["BackoffLimitExceeded"]
    assert get(kubectl, "job", "-n", ns, "ok")["status"]["succeeded"] == 3

    # Deleting the Deployment takes its ReplicaSets and pods with it; deleting the namespace empties it.
    kubectl("delete", "-n", ns, "deployment/web")
    wait_until(lambda: not get(kubectl, "replicasets", "-n", ns, "-l", "app=web")["items"]
               and not pods(kubectl, ns, "app=web"), "the Deployment's ReplicaSets and pods gone", timeout=30)
    kubectl("delete", "namespace", ns, "--timeout=60s")
    assert kubectl("get", "namespace", ns, check=False).returncode != 0


def test_a_daemonset_follows_nodes_joining_and_leaving(kubectl, cluster):
    kubectl("apply", "-n", "default", "-f", "-", stdin=DAEMONSET)
    kubectl("rollout", "status", "-n", "default", "daemonset/agent", "--timeout=60s")
    assert len(pods(kubectl, "default", "app=agent")) == 3
    argv = [sys.executable, "-m", "raftkube", "node", "--name", "late", "--runtime", "fake",
            "--state-dir", cluster.state_dir, *FAST_NODES]
    node = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(p["spec"]["nodeName"] == "late" for p in pods(kubectl, "default", "app=agent")),
                   "a daemon pod on the node that joined", timeout=30)
    finally:
        node.terminate()
        node.wait(timeout=15)
    kubectl("delete", "node", "late")
    wait_until(lambda: len(pods(kubectl, "default", "app=agent")) == 3
               and all(p["spec"]["nodeName"] != "late" for p in pods(kubectl, "default", "app=agent")),
               "the daemon pod gone with its node", timeout=30)
    kubectl("delete", "-n", "default", "daemonset/agent")


def test_killing_the_controller_manager_leader_hands_over_and_a_scale_converges(kubectl, cluster):
    ns = "failover"
    kubectl("create", "namespace", ns)
    kubectl("apply", "-n", ns, "-f", "-", stdin=DEPLOYMENT.format(replicas=2))
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
    holder = get(kubectl, "lease", "-n", "kube-system", "kube-controller-manager")["spec"]["holderIdentity"]
    victim = holder.rpartition("_")[0]
    survivor = next(n for n in cluster.names if n != victim)
    cluster.kill(victim)  # kill -9: its control-plane child dies with it and releases nothing
    kubectl("scale", "-n", ns, "deployment/web", "--replicas=5", master=survivor)

    def taken_over():
        spec = get(kubectl, "lease", "-n", "kube-system", "kube-controller-manager", master=survivor)["spec"]
        return spec["holderIdentity"].rpartition("_")[0] not in ("", victim)
    wait_until(taken_over, "another master's controller-manager holding the lease", timeout=30)
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s", master=survivor)
    assert len(pods(kubectl, ns, "app=web", master=survivor)) == 5
    up.restart_master(cluster.info, victim)


def test_a_killed_node_goes_not_ready_and_its_pods_move_elsewhere(kubectl, cluster):
    """The node lifecycle controller: a node whose kubelet died is Ready=Unknown, tainted, its pods evicted and
    replaced on the others (FAST_CONTROL_PLANE: 6 s grace, 4 s default toleration)."""
    ns = "lonely"
    kubectl("create", "namespace", ns)
    argv = [sys.executable, "-m", "raftkube", "node", "--name", "lone", "--runtime", "fake",
            "--state-dir", cluster.state_dir, *FAST_NODES]
    node = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "node/lone" in kubectl("get", "nodes", "-o", "name").stdout, "lone registered", timeout=30)
        kubectl("apply", "-n", ns, "-f", "-", stdin=DEPLOYMENT.format(replicas=4))
        kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
        assert any(p["spec"]["nodeName"] == "lone" for p in pods(kubectl, ns, "app=web")), \
            "the scheduler spreads a Deployment's pods over the four nodes"
    finally:
        node.kill()  # kill -9: the kubelet says nothing more
        node.wait(timeout=15)

    def unknown():
        ready = next(c for c in get(kubectl, "node", "lone")["status"]["conditions"] if c["type"] == "Ready")
        taints = get(kubectl, "node", "lone")["spec"].get("taints") or []
        return ready["status"] == "Unknown" and any(t["key"] == "node.kubernetes.io/unreachable" for t in taints)
    wait_until(unknown, "lone Ready=Unknown with the unreachable taint", timeout=40)
    wait_until(lambda: len(pods(kubectl, ns, "app=web")) == 4
               and all(p["spec"].get("nodeName") not in (None, "lone") and p["status"].get("phase") == "Running"
                       for p in pods(kubectl, ns, "app=web")), "the pods replaced on the other nodes", timeout=40)
    kubectl("delete", "node", "lone")
    kubectl("delete", "namespace", ns, "--timeout=60s")


REPLICATION_CONTROLLER = """apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: c, image: "nginx:1.25"}]
"""


def test_a_replication_controller_keeps_its_replicas(kubectl):
    """core/v1 ReplicationController: its selector defaults to the template's labels; scale and delete cascade."""
    ns = "legacy"
    kubectl("create", "namespace", ns)
    kubectl("create", "-n", ns, "-f", "-", stdin=REPLICATION_CONTROLLER)
    assert get(kubectl, "rc", "legacy", "-n", ns)["spec"]["selector"] == {"app": "legacy"}
    running = lambda n: len([p for p in pods(kubectl, ns, "app=legacy") if p["status"].get("phase") == "Running"]) == n  # noqa: E731
    wait_until(lambda: running(2), "two pods running", timeout=30)
    kubectl("scale", "-n", ns, "rc/legacy", "--replicas=3")
    wait_until(lambda: running(3) and get(kubectl, "rc", "legacy", "-n", ns)["status"].get("readyReplicas") == 3,
               "three pods ready", timeout=30)
    assert kubectl("get", "rc", "-n", ns).stdout.split()[:8] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE",
                                                                  "legacy", "3", "3"]
    kubectl("delete", "-n", ns, "rc/legacy")
    wait_until(lambda: not pods(kubectl, ns, "app=legacy"), "the pods gone with their controller", timeout=30)
    kubectl("delete", "namespace", ns, "--timeout=60s")


def test_drain_evicts_within_the_disruption_budget(kubectl):
    """kubectl drain: DaemonSet pods stop it unless --ignore-daemonsets; each other pod is evicted through
    pods/eviction, which a PodDisruptionBudget with no disruption left refuses (429: drain retries until its
    timeout)."""
    ns = "drain"
    kubectl("create", "namespace", ns)
    kubectl("apply", "-n", ns, "-f", "-", stdin=DEPLOYMENT.format(replicas=3) + "---\n" + DAEMONSET)
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
    kubectl("rollout", "status", "-n", ns, "daemonset/agent", "--timeout=60s")
    kubectl("create", "pdb", "web", "-n", ns, "--selector=app=web", "--min-available=2")

    def allowed(count):
        pdb = get(kubectl, "pdb", "web", "-n", ns)
        status = pdb.get("status") or {}
        return status.get("observedGeneration") == pdb["metadata"]["generation"] \
            and status.get("disruptionsAllowed") == count and status.get("currentHealthy") == 3
    wait_until(lambda: allowed(1), "the budget counts 3 healthy pods, 1 disruption allowed", timeout=30)
    assert kubectl("get", "pdb", "-n", ns).stdout.split()[:10] == [
        "NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE", "web", "2"]

    node = pods(kubectl, ns, "app=web")[0]["spec"]["nodeName"]
    refused = kubectl("drain", node, "--timeout=20s", check=False)
    assert refused.returncode != 0 and "cannot delete DaemonSet-managed Pods" in refused.stderr
    drained = kubectl("drain", node, "--ignore-daemonsets", "--timeout=60s")
    assert f"node/{node} drained" in drained.stdout
    assert not [p for p in pods(kubectl, ns, "app=web") if p["spec"]["nodeName"] == node]
    assert [p for p in pods(kubectl, ns, "app=agent") if p["spec"]["nodeName"] == node], "daemon pods stay"
    kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")

    kubectl("patch", "pdb", "web", "-n", ns, "--type=merge", "-p", '{"spec":{"minAvailable":3}}')
    wait_until(lambda: allowed(0), "no disruption left under minAvailable 3", timeout=30)
    other = next(p["spec"]["nodeName"] for p in pods(kubectl, ns, "app=web") if p["spec"]["nodeName"] != node)
    held = kubectl("drain", other, "--ignore-daemonsets", "--timeout=8s", check=False)
    assert held.returncode != 0 and "Cannot evict pod as it would violate the pod's disruption budget" in held.stderr
    assert len(pods(kubectl, ns, "app=web")) == 3
    kubectl("uncordon", node)
    kubectl("uncordon", other)
    kubectl("delete", "namespace", ns, "--timeout=60s")


def test_the_everyday_rollout_verbs(kubectl, tmp_path):
    """events --for, rollout restart, set image, wait --for=condition and get -w -o json, as a user runs them."""
    ns = "verbs"
    kubectl("create", "namespace", ns)
    kubectl("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=2")
    kubectl("wait", "-n", ns, "--for=condition=Available", "deployment/web", "--timeout=60s")
    events = kubectl("events", "-n", ns, "--for", "deployment/web").stdout
    assert "ScalingReplicaSet" in events and "Scaled up replica set web-" in events

    out_file = tmp_path / "watch.json"
    with open(out_file, "w") as out:
        watch = subprocess.Popen(kubectl.argv(("get", "deployment", "web", "-n", ns, "-w", "-o", "json")),
                                 stdout=out, stderr=subprocess.STDOUT, env=kubectl.env("m1"))
    try:
        kubectl("rollout", "restart", "-n", ns, "deployment/web")
        kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
        template = get(kubectl, "deployment", "web", "-n", ns)["spec"]["template"]
        assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
        kubectl("set", "image", "-n", ns, "deployment/web", "nginx=nginx:1.26")
        kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
        kubectl("wait", "-n", ns, "--for=jsonpath={.status.updatedReplicas}=2", "deployment/web", "--timeout=60s")
        assert {p["spec"]["containers"][0]["image"] for p in pods(kubectl, ns, "app=web")} == {"nginx:1.26"}
        wait_until(lambda: '"image": "nginx:1.26"' in out_file.read_text(), "the watch shows the new image")
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    streamed = out_file.read_text()
    assert streamed.count('"kind": "Deployment"') >= 3, "one JSON document per change"
    assert '"kubectl.kubernetes.io/restartedAt"' in streamed
    kubectl("delete", "namespace", ns, "--timeout=60s")
