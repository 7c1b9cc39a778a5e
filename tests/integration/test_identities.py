"""Every component is someone, and may do its job and no more (issue 14), with real processes and real clients: a
master run as `raftkube up` runs it (--authorization-mode Node,RBAC, its control plane), two process nodes, the real
kubectl, and the official Python client inside a pod.

- A node is system:node:NAME: it reads its own Node, may not delete another's nor read a Secret none of its pods use,
  and NodeRestriction keeps it from labelling itself into privileged workloads.
- Each controller is its kube-system service account: the ReplicaSet controller creates pods as
  system:serviceaccount:kube-system:replicaset-controller (without its binding it cannot), and cannot read Secrets.
- A pod gets its service account's token, the CA and its namespace under /var/run/secrets/kubernetes.io/
  serviceaccount and KUBERNETES_SERVICE_HOST/PORT: the Python client's in-cluster configuration lists pods once a
  Role allows it, and gets 403 before. On a node running as root the pod has a root of its own (node/isolation.py),
  where those files are at that very path and load_incluster_config() finds them; the client comes in as an image
  would carry it, from the node's installation of it, a hostPath the nodes allow.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import textwrap

import pytest

from api.bootstrap_policy import CONTROLLER_ROLES
from raftkube import up
from tests.integration.cluster import FAST_CONTROL_PLANE, Cluster
from tests.integration.kube import Kubectl, wait_until

NS = "team"


CONTROL_PLANE = FAST_CONTROL_PLANE  # for conftest's node_cluster: every controller and the scheduler
_CLIENT = importlib.util.find_spec("kubernetes")
CLIENT_LIBS = os.path.dirname(os.path.dirname(_CLIENT.origin)) if _CLIENT and _CLIENT.origin else None
NODES = {"nodes": 2, "runtime": "process",
         "node_flags": ("--allowed-host-paths", CLIENT_LIBS) if CLIENT_LIBS else ()}


@pytest.fixture(scope="module")
def cluster(node_cluster):
    return node_cluster


@pytest.fixture(scope="module")
def kube(cluster, tmp_path_factory):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    k = Kubectl(tmp_path_factory.mktemp("home"), cluster)
    wait_until(lambda: k("get", "nodes", "n1", "n2", check=False).returncode == 0, "both nodes registered", 60)
    k("create", "namespace", NS)
    k("-n", NS, "create", "secret", "generic", "unused", "--from-literal", "k=v")
    k("-n", NS, "create", "secret", "generic", "used", "--from-literal", "k=v")
    return k


def as_node(kube: Kubectl, cluster: Cluster, node: str, *args: str):
    return kube("--token", up.token_for(cluster.state_dir, f"system:node:{node}"), *args, check=False)


def forbidden(out, user: str) -> bool:
    return out.returncode != 0 and "Forbidden" in out.stderr and f'User "{user}"' in out.stderr


def test_a_node_reads_its_own_node_but_deletes_no_other_and_reads_only_the_secrets_its_pods_use(cluster, kube):
    assert as_node(kube, cluster, "n1", "get", "node", "n1", "-o", "name").stdout.strip() == "node/n1"
    assert forbidden(as_node(kube, cluster, "n1", "delete", "node", "n2"), "system:node:n1")
    assert forbidden(as_node(kube, cluster, "n1", "-n", NS, "get", "secret", "unused"), "system:node:n1")
    assert forbidden(as_node(kube, cluster, "n1", "get", "secrets", "-A"), "system:node:n1")
    kube("-n", NS, "create", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reads-used"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "command": ["sleep", "600"],
                                                   "envFrom": [{"secretRef": {"name": "used"}}]}]}}))
    assert as_node(kube, cluster, "n1", "-n", NS, "get", "secret", "used", "-o", "name").stdout.strip() == \
        "secret/used"
    assert forbidden(as_node(kube, cluster, "n2", "-n", NS, "get", "secret", "used"), "system:node:n2")


def test_node_restriction_keeps_a_node_to_its_own_objects(cluster, kube):
    refused = as_node(kube, cluster, "n1", "label", "node", "n1", "node-restriction.kubernetes.io/role=db")
    assert refused.returncode != 0 and "is not allowed to set the following labels" in refused.stderr
    assert as_node(kube, cluster, "n1", "label", "node", "n1", "disk=ssd").returncode == 0  # its own, harmless
    assert forbidden(as_node(kube, cluster, "n1", "label", "node", "n2", "disk=ssd"), "system:node:n1")
    stolen = kube("--token", up.token_for(cluster.state_dir, "system:node:n1"), "-n", "kube-node-lease", "create",
                  "-f", "-", check=False, stdin=json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                           "metadata": {"name": "n2-impostor"}}))
    assert "can only access its own lease" in stolen.stderr
    token = as_node(kube, cluster, "n1", "-n", NS, "create", "token", "default")  # bound to no pod of its own
    assert token.returncode != 0 and "may only request tokens bound to a pod" in token.stderr


def test_each_controller_is_its_own_service_account(cluster, kube):
    accounts = set(kube("-n", "kube-system", "get", "serviceaccounts", "-o", "name").stdout.split())
    assert {f"serviceaccount/{name}" for name in CONTROLLER_ROLES} <= accounts
    token = kube("-n", "kube-system", "create", "token", "replicaset-controller").stdout.strip()
    who = kube("--token", token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert who == "system:serviceaccount:kube-system:replicaset-controller"
    assert kube("--token", token, "auth", "can-i", "create", "pods", "-n", NS).stdout.strip() == "yes"
    assert forbidden(kube("--token", token, "-n", NS, "get", "secrets", check=False), who)
    assert kube("--token", token, "auth", "can-i", "delete", "nodes", check=False).stdout.strip() == "no"
    scheduler = kube("--token", up.token_for(cluster.state_dir, "system:kube-scheduler"), "auth", "can-i", "get",
                     "secrets", "-A", check=False)
    assert scheduler.stdout.strip() == "no"


def test_the_replicaset_controller_creates_pods_as_itself_and_only_as_its_role_allows(cluster, kube):
    """Take `create pods` out of its role: the refusal (which it reports as an Event, still allowed) names it."""
    role = "system:controller:replicaset-controller"

    def with_rules(change) -> None:
        current = json.loads(kube("get", "clusterrole", role, "-o", "json").stdout)
        kube("replace", "-f", "-", stdin=json.dumps({**current, "rules": change(current["rules"])}))

    saved = json.loads(kube("get", "clusterrole", role, "-o", "json").stdout)["rules"]
    with_rules(lambda rules: [{**r, "verbs": [v for v in r["verbs"] if v != "create"]} if "pods" in r["resources"]
                              else r for r in rules])
    try:
        kube("-n", NS, "create", "deployment", "web", "--image", "i", "--", "sleep", "600")
        refused = ('User \\"system:serviceaccount:kube-system:replicaset-controller\\" '
                   'cannot create resource \\"pods\\"')  # as JSON writes it

        def refusal() -> bool:
            events = kube("-n", NS, "get", "events", "--field-selector", "reason=FailedCreate", "-o", "json").stdout
            return refused in events
        wait_until(refusal, "a FailedCreate event naming the ReplicaSet controller's own identity", 60)
    finally:
        with_rules(lambda rules: saved)
    wait_until(lambda: kube("-n", NS, "get", "pods", "-l", "app=web", "-o", "name").stdout.strip(),
               "the pod, once the controller's role allows it again", 60)


def incluster_pod(name: str, *, automount: bool = True) -> str:
    """A pod that runs the official Python client's in-cluster configuration and lists its namespace's pods, with the
    client's installation mounted at /opt/client-libs. As root the files are at their absolute paths in the pod's own
    root; else at the same paths relative to its working directory (a pod is a process whose volumeMounts are
    symlinks there: node/volumes.py), where the client is pointed."""
    if CLIENT_LIBS is None:
        pytest.skip("the kubernetes Python client is not installed")
    script = textwrap.dedent("""
        import os, sys
        rooted = os.path.isdir("/opt/client-libs")
        sys.path.insert(0, "/opt/client-libs" if rooted else "opt/client-libs")
        from kubernetes import client, config
        from kubernetes.config.incluster_config import InClusterConfigLoader
        base = "/var/run/secrets/kubernetes.io/serviceaccount/"
        print("env", os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT_HTTPS"])
        print("uid", os.getuid(), "rooted" if rooted else "relative")
        if rooted:
            config.load_incluster_config()
        else:
            base = base.lstrip("/")
            InClusterConfigLoader(token_filename=base + "token", cert_filename=base + "ca.crt").load_and_set()
        try:
            pods = client.CoreV1Api().list_namespaced_pod(open(base + "namespace").read())
            print("listed", " ".join(p.metadata.name for p in pods.items))
        except client.ApiException as exc:
            print("refused", exc.status)
    """)
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"restartPolicy": "Never", "automountServiceAccountToken": automount,
                                "volumes": [{"name": "client-libs", "hostPath": {"path": CLIENT_LIBS}}],
                                "containers": [{"name": "client", "image": "python",
                                                "command": ["python3", "-c", script],
                                                "volumeMounts": [{"name": "client-libs", "readOnly": True,
                                                                  "mountPath": "/opt/client-libs"}]}]}})


def finished_log(kube: Kubectl, name: str) -> str:
    def done() -> str:
        phase = kube("-n", NS, "get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
        return kube("-n", NS, "logs", name).stdout if phase in ("Succeeded", "Failed") else ""
    return wait_until(done, f"pod {name} finished", 90)


def test_a_pod_uses_its_service_account_in_cluster_with_the_rights_it_is_bound_to(cluster, kube):
    kube("-n", NS, "create", "-f", "-", stdin=incluster_pod("before"))
    before = finished_log(kube, "before")
    assert "env 127.96.0.1 6443" in before and "refused 403" in before
    if os.geteuid() == 0:  # its own root, as an unprivileged user: the files at their real path
        assert "uid 65534 rooted" in before
    kube("-n", NS, "create", "role", "pod-reader", "--verb", "list", "--resource", "pods")
    kube("-n", NS, "create", "rolebinding", "default-reads-pods", "--role", "pod-reader",
         "--serviceaccount", f"{NS}:default")
    kube("-n", NS, "create", "-f", "-", stdin=incluster_pod("after"))
    after = finished_log(kube, "after")
    assert "listed" in after and "after" in after.split()
    volumes = json.loads(kube("-n", NS, "get", "pod", "after", "-o", "jsonpath={.spec.volumes}").stdout)
    sources = [s for v in volumes if v["name"].startswith("kube-api-access-") for s in v["projected"]["sources"]]
    assert sources[0]["serviceAccountToken"]["path"] == "token"


def test_a_pod_that_opts_out_gets_no_token(cluster, kube):
    kube("-n", NS, "create", "-f", "-", stdin=incluster_pod("without", automount=False))
    volumes = kube("-n", NS, "get", "pod", "without", "-o", "jsonpath={.spec.volumes}").stdout
    assert "kube-api-access" not in volumes
    assert "Service token file does not exist" in finished_log(kube, "without")
