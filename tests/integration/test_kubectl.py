"""The real /usr/bin/kubectl against three masters: discovery, get (Tables), create -f, apply, label,
patch, get -w, delete, and writes on one master read through another (docs/kubectl-wire.md)."""
import asyncio
import json
import shutil
import subprocess

import aiohttp
import pytest

from kvstore.client import KVClient
from tests.integration.cluster import Cluster
from tests.integration.kube import Kubectl, wait_until

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels: {{app: demo}}
data:
  greeting: "{value}"
"""


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("kubectl") / "cluster"), 3)
    try:
        run = Kubectl(tmp_path_factory.mktemp("kubectl-home"), c)  # kubectl caches discovery in ~/.kube
        _wait_for_namespaces(run)
        yield run
    finally:
        c.stop()


def _wait_for_namespaces(run: Kubectl) -> None:
    wait_until(lambda: "namespace/kube-system" in run("get", "namespaces", "-o", "name", check=False).stdout,
               "the default namespaces", timeout=30)


def test_discovery_and_default_namespaces(kube):
    resources = kube("api-resources", "-o", "name").stdout.split()
    for name in ["pods", "configmaps", "namespaces", "deployments.apps", "jobs.batch", "leases.coordination.k8s.io"]:
        assert name in resources
    table = kube("get", "namespaces").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "AGE"]
    assert {line.split()[0] for line in table[1:]} >= {"default", "kube-system", "kube-public", "kube-node-lease"}
    assert '"gitVersion": "v1.32.0+raftkube"' in kube("version", "-o", "json").stdout


def test_create_get_label_apply_delete_across_masters(kube):
    assert "created" in kube("create", "-f", "-", stdin=CONFIGMAP.format(name="web", value="hello")).stdout
    dup = kube("create", "-f", "-", stdin=CONFIGMAP.format(name="web", value="x"), check=False)
    assert dup.returncode != 0 and "AlreadyExists" in dup.stderr
    # written through m1, read through m3: every master serves the same store
    got = json.loads(kube("get", "configmap", "web", "-o", "json", master="m3").stdout)
    assert got["data"] == {"greeting": "hello"} and got["metadata"]["uid"]
    kube("label", "configmap", "web", "tier=front", master="m2")
    assert kube("get", "cm", "-l", "tier=front", "-A", "-o", "name").stdout.split() == ["configmap/web"]
    assert kube("get", "cm", "-l", "app=demo,tier!=front", "-o", "name").stdout.strip() == ""
    kube("apply", "-f", "-", stdin=CONFIGMAP.format(name="web", value="changed"))
    got = json.loads(kube("get", "cm", "web", "-o", "json", master="m2").stdout)
    assert got["data"]["greeting"] == "changed" and got["metadata"]["labels"]["tier"] == "front"
    kube("patch", "cm", "web", "--type=json", "-p", '[{"op":"add","path":"/data/extra","value":"1"}]')
    assert json.loads(kube("get", "cm", "web", "-o", "json").stdout)["data"]["extra"] == "1"
    kube("delete", "configmap", "web", master="m3")
    gone = kube("get", "configmap", "web", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_get_watch_streams_changes(kube, tmp_path):
    """kubectl lists, then watches from the list's resourceVersion: every later change arrives."""
    kube("create", "-f", "-", stdin=CONFIGMAP.format(name="before", value="0"))
    out_file = tmp_path / "watch.out"
    with open(out_file, "w") as out:
        watch = subprocess.Popen(["kubectl", "get", "configmaps", "-w", "-o", "name"], stdout=out,
                                 stderr=subprocess.STDOUT, env=kube.env("m2"))
    try:
        wait_until(lambda: "configmap/before" in out_file.read_text(), "the list before the watch")
        kube("create", "-f", "-", stdin=CONFIGMAP.format(name="watched", value="1"))
        kube("delete", "configmap", "watched")
        wait_until(lambda: out_file.read_text().count("configmap/watched") >= 2, "the create and delete events")
    finally:
        watch.terminate()
        watch.wait(timeout=10)
        kube("delete", "configmap", "before")


def test_bad_requests_are_clear_4xx(kube):
    bad = kube("create", "-f", "-", stdin=CONFIGMAP.format(name="Not_A_Name", value="x"), check=False)
    assert bad.returncode != 0 and "Invalid" in bad.stderr and "metadata.name" in bad.stderr
    missing_ns = kube("create", "-n", "nowhere", "-f", "-", stdin=CONFIGMAP.format(name="x", value="y"), check=False)
    assert missing_ns.returncode != 0 and 'namespaces "nowhere" not found' in missing_ns.stderr


def test_typed_create_commands_which_send_protobuf(kube):
    """kubectl's generators send protobuf bodies and do not fall back to JSON (api/protobuf.py)."""
    kube("create", "namespace", "typed")
    kube("create", "configmap", "cfg", "-n", "typed", "--from-literal=a=1")
    kube("create", "secret", "generic", "pw", "-n", "typed", "--from-literal=password=hunter2")
    kube("create", "deployment", "web", "-n", "typed", "--image=nginx", "--replicas=2", "--port=80")
    kube("create", "service", "clusterip", "web", "-n", "typed", "--tcp=80:8080")
    kube("create", "job", "once", "-n", "typed", "--image=busybox", "--", "echo", "hi")
    kube("create", "serviceaccount", "robot", "-n", "typed")
    kube("run", "solo", "-n", "typed", "--image=busybox", "--env=A=1", "--", "sleep", "1")
    names = kube("get", "cm,secret,deploy,svc,job,sa,pod", "-n", "typed", "-o", "name").stdout.split()
    assert set(names) >= {"configmap/cfg", "secret/pw", "deployment.apps/web", "service/web", "job.batch/once",
                          "serviceaccount/robot", "pod/solo"}
    deploy = json.loads(kube("get", "deploy", "web", "-n", "typed", "-o", "json").stdout)
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    secret = json.loads(kube("get", "secret", "pw", "-n", "typed", "-o", "json").stdout)
    assert secret["data"]["password"] == "aHVudGVyMg=="  # base64, as Kubernetes keeps []byte in JSON
    svc = json.loads(kube("get", "svc", "web", "-n", "typed", "-o", "json").stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: {selector}}}}}
  template:
    metadata: {{labels: {{app: {label}}}}}
    spec:
      containers: [{{name: main, image: "nginx:1.27"}}]
"""


def test_defaults_and_validation_as_kubernetes_does_them(kube):
    kube("apply", "-f", "-", stdin=DEPLOYMENT.format(name="defaulted", selector="a", label="a"))
    d = json.loads(kube("get", "deploy", "defaulted", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 1 and d["spec"]["revisionHistoryLimit"] == 10
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    pod_spec = d["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always" and pod_spec["terminationGracePeriodSeconds"] == 30
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert pod_spec["containers"][0]["terminationMessagePath"] == "/dev/termination-log"

    bad = kube("apply", "-f", "-", stdin=DEPLOYMENT.format(name="mismatch", selector="a", label="b"), check=False)
    assert bad.returncode != 0 and "Invalid" in bad.stderr and "spec.template.metadata.labels" in bad.stderr
    immutable = kube("apply", "-f", "-", stdin=DEPLOYMENT.format(name="defaulted", selector="z", label="z"),
                     check=False)
    assert immutable.returncode != 0 and "field is immutable" in immutable.stderr
    kube("create", "job", "j", "--image=busybox", "--", "true")
    spec = json.loads(kube("get", "job", "j", "-o", "json").stdout)["spec"]
    assert spec["backoffLimit"] == 6 and spec["completions"] == 1
    uid_label = spec["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"]
    assert spec["template"]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid_label


def test_every_service_gets_its_own_cluster_ip_from_the_range(kube):
    ips = []
    for i in range(5):
        kube("create", "service", "clusterip", f"s{i}", "--tcp=80:8080", master=f"m{i % 3 + 1}")
        spec = json.loads(kube("get", "svc", f"s{i}", "-o", "json").stdout)["spec"]
        assert spec["clusterIPs"] == [spec["clusterIP"]]
        ips.append(spec["clusterIP"])
    assert len(set(ips)) == 5 and all(ip.startswith("127.96.") for ip in ips)  # up's loopback range
    taken = f"""apiVersion: v1
kind: Service
metadata: {{name: copycat}}
spec: {{clusterIP: "{ips[0]}", ports: [{{port: 80}}]}}
"""
    clash = kube("apply", "-f", "-", stdin=taken, check=False)
    assert clash.returncode != 0 and "already allocated" in clash.stderr
    kube("delete", "svc", "s0")
    kube("apply", "-f", "-", stdin=taken)  # freed with its Service, the address can be had again
    assert json.loads(kube("get", "svc", "copycat", "-o", "json").stdout)["spec"]["clusterIP"] == ips[0]


POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  {node}containers: [{{name: c, image: busybox}}]
"""


def test_scale_subresource(kube):
    kube("create", "deployment", "scaled", "--image=nginx:1.27")
    kube("scale", "deployment", "scaled", "--replicas=4")
    scale = json.loads(kube("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/scaled/scale").stdout)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
    assert scale["status"]["selector"] == "app=scaled"


def test_binding_once_graceful_deletion_and_eviction(kube):
    kube("apply", "-f", "-", stdin=POD.format(name="unbound", node=""))
    binding = json.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "unbound"},
                          "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})
    kube("create", "--raw", "/api/v1/namespaces/default/pods/unbound/binding", "-f", "-", stdin=binding)
    pod = json.loads(kube("get", "pod", "unbound", "-o", "json").stdout)
    assert pod["spec"]["nodeName"] == "n1"
    assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"] == ["True"]
    again = kube("create", "--raw", "/api/v1/namespaces/default/pods/unbound/binding", "-f", "-", stdin=binding,
                 check=False)
    assert again.returncode != 0 and "already assigned" in again.stderr

    kube("delete", "pod", "unbound", "--wait=false")  # bound: its kubelet must stop it first
    pod = json.loads(kube("get", "pod", "unbound", "-o", "json").stdout)
    assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] == 30
    kube("delete", "pod", "unbound", "--grace-period=0", "--force")
    assert kube("get", "pod", "unbound", check=False).returncode != 0

    kube("apply", "-f", "-", stdin=POD.format(name="evicted", node=""))
    eviction = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "evicted"}})
    kube("create", "--raw", "/api/v1/namespaces/default/pods/evicted/eviction", "-f", "-", stdin=eviction)
    assert kube("get", "pod", "evicted", check=False).returncode != 0


def test_finalizers_hold_a_deletion_until_removed(kube):
    cm = CONFIGMAP.format(name="held", value="x").replace("labels: {app: demo}", "finalizers: [example.com/hold]")
    kube("apply", "-f", "-", stdin=cm)
    kube("delete", "cm", "held", "--wait=false")
    marked = json.loads(kube("get", "cm", "held", "-o", "json").stdout)
    assert marked["metadata"]["deletionTimestamp"]
    kube("patch", "cm", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    assert kube("get", "cm", "held", check=False).returncode != 0


def test_a_terminating_namespace_takes_nothing_new_and_goes_when_finalized(kube):
    kube("create", "namespace", "doomed")
    kube("delete", "namespace", "doomed", "--wait=false")
    ns = json.loads(kube("get", "namespace", "doomed", "-o", "json").stdout)
    assert ns["status"]["phase"] == "Terminating"
    refused = kube("create", "configmap", "late", "-n", "doomed", "--from-literal=a=b", check=False)
    assert refused.returncode != 0 and "being terminated" in refused.stderr
    # What the namespace controller does once the namespace is empty:
    ns["spec"]["finalizers"] = []
    kube("replace", "--raw", "/api/v1/namespaces/doomed/finalize", "-f", "-", stdin=json.dumps(ns))
    assert kube("get", "namespace", "doomed", check=False).returncode != 0


def test_paged_lists_are_consistent_at_one_revision(kube):
    kube("create", "namespace", "paged")
    for i in range(5):
        kube("create", "configmap", f"p{i}", "-n", "paged", "--from-literal=a=b")
    pages, token = [], None
    while True:
        url = "/api/v1/namespaces/paged/configmaps?limit=2" + (f"&continue={token}" if token else "")
        page = json.loads(kube("get", "--raw", url).stdout)
        pages.append(page)
        if page["metadata"].get("continue") and len(pages) == 1:
            kube("create", "configmap", "late", "-n", "paged", "--from-literal=a=b")  # not in this list
        token = page["metadata"].get("continue")
        if not token:
            break
    names = [o["metadata"]["name"] for p in pages for o in p["items"]]
    assert names == [f"p{i}" for i in range(5)] and [len(p["items"]) for p in pages] == [2, 2, 1]
    assert len({p["metadata"]["resourceVersion"] for p in pages}) == 1
    assert kube("get", "cm", "-n", "paged", "--chunk-size=2", "-o", "name").stdout.split() == \
        [f"configmap/{n}" for n in ["late", "p0", "p1", "p2", "p3", "p4"]]
    bad = kube("get", "--raw", "/api/v1/namespaces/paged/configmaps?limit=1&continue=garbage", check=False)
    assert bad.returncode != 0 and "continue" in bad.stderr


def test_field_validation_strict_and_warn(kube):
    typo = CONFIGMAP.format(name="typo", value="x") + "extra: oops\n"
    strict = kube("create", "-f", "-", stdin=typo, check=False)  # kubectl asks Strict by default
    assert strict.returncode != 0 and 'unknown field "extra"' in strict.stderr
    warned = kube("create", "--validate=warn", "-f", "-", stdin=typo)
    assert 'unknown field "extra"' in warned.stderr
    assert "extra" not in json.loads(kube("get", "cm", "typo", "-o", "json").stdout)  # and it is not stored


def test_server_side_apply_twice_changes_nothing_and_removed_fields_go(kube):
    manifest = CONFIGMAP.format(name="ssa", value="one") + "  second: two\n"
    created = kube("apply", "--server-side", "-f", "-", stdin=manifest)
    assert "serverside-applied" in created.stdout
    first = json.loads(kube("get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout)
    assert first["data"] == {"greeting": "one", "second": "two"}
    assert [m["manager"] for m in first["metadata"]["managedFields"]] == ["kubectl"]
    kube("apply", "--server-side", "-f", "-", stdin=manifest)
    again = json.loads(kube("get", "cm", "ssa", "-o", "json").stdout)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    kube("label", "cm", "ssa", "owner=someone-else")  # another manager's field survives applies
    kube("apply", "--server-side", "-f", "-", stdin=CONFIGMAP.format(name="ssa", value="changed"))
    last = json.loads(kube("get", "cm", "ssa", "-o", "json").stdout)
    assert last["data"] == {"greeting": "changed"} and last["metadata"]["labels"]["owner"] == "someone-else"


def test_the_everyday_commands(kube, tmp_path):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT.format(name="everyday", selector="e", label="e"))
    kube("apply", "-f", str(manifest))
    wide = kube("get", "deploy", "everyday", "-o", "wide").stdout
    assert "IMAGES" in wide and "nginx:1.27" in wide and "SELECTOR" in wide
    assert "kind: Deployment" in kube("get", "deploy", "everyday", "-o", "yaml").stdout
    kube("annotate", "deploy", "everyday", "team=blue")
    described = kube("describe", "deploy", "everyday").stdout
    assert "team: blue" in described and "25% max unavailable" in described
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/nginx:1.27/nginx:1.28/' \"$1\"\n")
    editor.chmod(0o755)
    env = {**kube.env(), "KUBE_EDITOR": str(editor)}
    edited = subprocess.run(["kubectl", "edit", "deploy", "everyday"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert edited.returncode == 0, edited.stderr
    d = json.loads(kube("get", "deploy", "everyday", "-o", "json").stdout)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28" and d["metadata"]["generation"] == 2
    kube("apply", "-f", "-", stdin="apiVersion: v1\nkind: Node\nmetadata: {name: n9}\n")
    kube("cordon", "n9")
    assert json.loads(kube("get", "node", "n9", "-o", "json").stdout)["spec"]["unschedulable"] is True
    kube("uncordon", "n9")
    assert not json.loads(kube("get", "node", "n9", "-o", "json").stdout).get("spec", {}).get("unschedulable")
    kube("delete", "-f", str(manifest))
    assert kube("get", "deploy", "everyday", check=False).returncode != 0


def test_get_all_lists_a_namespaces_workloads_and_services(kube):
    """`kubectl get all` is the "all" category of discovery: workloads, pods and services, not config."""
    kube("create", "namespace", "everything")
    ns = ("-n", "everything")
    kube("create", "deployment", "shop", "--image=nginx", *ns)
    kube("create", "service", "clusterip", "shop", "--tcp=80:8080", *ns)
    kube("create", "job", "once", "--image=busybox", *ns)
    kube("create", "configmap", "settings", "--from-literal=a=b", *ns)
    listed = set(kube("get", "all", "-o", "name", *ns).stdout.split())
    assert {"deployment.apps/shop", "service/shop", "job.batch/once"} <= listed
    assert not any(name.startswith("configmap/") for name in listed)
    in_all = kube("api-resources", "--categories=all", "-o", "name").stdout.split()
    assert sorted(in_all) == sorted(["pods", "services", "replicationcontrollers", "deployments.apps",
                                     "replicasets.apps", "statefulsets.apps", "daemonsets.apps", "jobs.batch"])


def test_debug_says_ephemeral_containers_are_not_served(kube):
    """kubectl debug patches pods/ephemeralcontainers, which is not served here. kubectl crashed on that 404
    until it carried the empty details kube-apiserver sends for a path it does not serve."""
    kube("run", "target", "--image=busybox")
    debug = kube("debug", "target", "--image=busybox", check=False)
    assert debug.returncode == 1 and "panic" not in debug.stderr
    assert "ephemeral containers are disabled for this cluster" in debug.stderr


SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: two-ports}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
  - {{name: https, port: {second}, targetPort: 8443}}
"""


def test_apply_changes_one_service_port_and_keeps_the_other(kube):
    """Client-side apply computes a strategic merge patch; the server merges Service ports by port (their type's
    merge key), so changing 443 to 8443 leaves 80 alone."""
    kube("apply", "-f", "-", stdin=SERVICE.format(second=443))
    kube("apply", "-f", "-", stdin=SERVICE.format(second=8443))
    ports = kube("get", "service", "two-ports", "-o", "jsonpath={.spec.ports[*].port}").stdout.split()
    assert ports == ["80", "8443"]
    kube("delete", "service", "two-ports")


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: dry, labels: {{app: dry}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: dry}}}}
  template:
    metadata: {{labels: {{app: dry}}}}
    spec: {{containers: [{{name: c, image: "nginx:{tag}"}}]}}
"""


def test_server_dry_runs_change_nothing_and_diff_shows_exactly_the_change(kube):
    """kubectl's --dry-run=server and kubectl diff (a server-side dry run of the apply): full defaulting and
    validation, the answer as the real write would be, nothing stored."""
    out = kube("apply", "--dry-run=server", "-f", "-", "-o", "jsonpath={.spec.strategy.type}",
               stdin=DEPLOY.format(replicas=2, tag="1"))
    assert out.stdout == "RollingUpdate"  # defaulted by the server
    assert kube("get", "deployment", "dry", check=False).returncode == 1  # not created
    kube("apply", "-f", "-", stdin=DEPLOY.format(replicas=2, tag="1"))
    before = kube("get", "deployment", "dry", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    diff = kube("diff", "-f", "-", stdin=DEPLOY.format(replicas=3, tag="2"), check=False)
    assert diff.returncode == 1, diff.stderr  # 1: there are differences
    changed = [line for line in diff.stdout.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert sorted(line.strip() for line in changed if "generation" not in line) == sorted(
        ["-  replicas: 2", "+  replicas: 3", "-      - image: nginx:1", "+      - image: nginx:2"]), diff.stdout
    assert kube("get", "deployment", "dry", "-o", "jsonpath={.metadata.resourceVersion}").stdout == before
    kube("delete", "deployment", "dry", "--dry-run=server")
    assert kube("get", "deployment", "dry", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    kube("delete", "deployment", "dry")


def test_diff_of_a_created_configmap_shows_only_its_data(kube):
    """kubectl diff sends `annotations: {}` (it masks the last-applied one); as kube-apiserver, an empty map is no
    field, and a ConfigMap has no generation to raise, so the diff is the data and nothing else."""
    kube("create", "configmap", "plain", "--from-literal=a=1")
    assert "generation" not in json.loads(kube("get", "cm", "plain", "-o", "json").stdout)["metadata"]
    diff = kube("diff", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: '2'}\n",
                check=False)
    changed = [line for line in diff.stdout.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ['-  a: "1"', '+  a: "2"'], diff.stdout


def test_explain_prints_the_fields_from_the_servers_schemas(kube):
    """kubectl explain reads /openapi/v3: Kubernetes 1.32's own types, descriptions and all."""
    out = kube("explain", "deployment.spec.strategy").stdout
    assert "rollingUpdate" in out and "RollingUpdate" in out and "Recreate" in out
    out = kube("explain", "pods.spec.containers.ports", "--recursive").stdout
    assert "containerPort" in out and "<integer>" in out
    assert "clusterRoleSelectors" in kube("explain", "clusterrole.aggregationRule").stdout


def test_strict_field_validation_catches_a_typo_at_any_depth(kube):
    bad = DEPLOY.format(replicas=1, tag="1").replace("containers:", "containerz:")
    out = kube("apply", "--validate=strict", "-f", "-", stdin=bad, check=False)
    assert out.returncode == 1 and 'unknown field "spec.template.spec.containerz"' in out.stderr


def test_server_side_apply_reports_a_conflict_with_another_manager_unless_forced(kube):
    kube("apply", "--server-side", "--field-manager", "team-a", "-f", "-", stdin=DEPLOY.format(replicas=2, tag="1"))
    same = kube("apply", "--server-side", "--field-manager", "team-b", "-f", "-", stdin=DEPLOY.format(replicas=2, tag="1"))
    assert same.returncode == 0  # the same values: both own them, no conflict
    out = kube("apply", "--server-side", "--field-manager", "team-b", "-f", "-",
               stdin=DEPLOY.format(replicas=5, tag="1"), check=False)
    assert out.returncode == 1 and 'conflict with "team-a"' in out.stderr and ".spec.replicas" in out.stderr
    assert kube("get", "deployment", "dry", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    kube("apply", "--server-side", "--force-conflicts", "--field-manager", "team-b", "-f", "-",
         stdin=DEPLOY.format(replicas=5, tag="1"))
    assert kube("get", "deployment", "dry", "-o", "jsonpath={.spec.replicas}").stdout == "5"
    back = kube("apply", "--server-side", "--field-manager", "team-a", "-f", "-",
                stdin=DEPLOY.format(replicas=2, tag="1"), check=False)
    assert back.returncode == 1 and 'conflict with "team-b"' in back.stderr  # replicas changed hands
    kube("delete", "deployment", "dry")


def test_server_side_apply_conflicts_with_what_other_verbs_changed(kube, tmp_path):
    """kubectl create and scale are Updates by their managers (kubectl-create, and kubectl, as scale sends no
    fieldManager): an apply that would undo a scale names that manager, as kube-apiserver does; a replace from a file without
    managedFields keeps them; and an object applied client-side moves to server-side apply without a conflict
    (kubectl rewrites the managedFields of kubectl-client-side-apply)."""
    kube("create", "deployment", "owned", "--image=nginx:1.27", "--replicas=1")
    created = json.loads(kube("get", "deploy", "owned", "-o", "json", "--show-managed-fields").stdout)
    [entry] = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl-create", "Update")
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]
    kube("scale", "deploy", "owned", "--replicas=3")
    config = (DEPLOYMENT.format(name="owned", selector="owned", label="owned")
              .replace("spec:\n  selector", "spec:\n  replicas: 1\n  selector"))
    out = kube("apply", "--server-side", "-f", "-", stdin=config, check=False)
    assert out.returncode == 1  # kubectl scale names no field manager: it is its User-Agent's "kubectl"
    assert 'conflict with "kubectl" with subresource "scale" using apps/v1 at ' in out.stderr
    assert ": .spec.replicas" in out.stderr
    kube("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=config)
    got = json.loads(kube("get", "deploy", "owned", "-o", "json", "--show-managed-fields").stdout)
    assert got["spec"]["replicas"] == 1
    managers = {(e["manager"], e["operation"]) for e in got["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers and ("kubectl", "Update") not in managers
    exported = tmp_path / "owned.json"
    exported.write_text(kube("get", "deploy", "owned", "-o", "json").stdout)  # without managedFields
    kube("replace", "-f", str(exported))
    kept = json.loads(kube("get", "deploy", "owned", "-o", "json", "--show-managed-fields").stdout)
    assert ("kubectl", "Apply") in {(e["manager"], e["operation"]) for e in kept["metadata"]["managedFields"]}
    kube("delete", "deploy", "owned")
    csa = CONFIGMAP.format(name="migrated", value="one")
    kube("apply", "-f", "-", stdin=csa)
    kube("apply", "--server-side", "-f", "-", stdin=csa.replace("one", "two"))
    assert kube("get", "cm", "migrated", "-o", "jsonpath={.data.greeting}").stdout == "two"


APISERVICE = """apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: {name}}}
spec: {{group: example.com, version: v1, groupPriorityMinimum: 1000, versionPriority: 15}}
"""


def test_a_service_is_created_with_a_status_and_apiservices_are_stored(kube):
    """A Service's create answer carries status.loadBalancer as upstream's does (the Python client reads it);
    APIService objects are stored and served (aggregation itself is not)."""
    svc = json.loads(kube("create", "service", "clusterip", "lb-status", "--tcp=80:8080", "-o", "json").stdout)
    assert svc["status"] == {"loadBalancer": {}}
    kube("apply", "-f", "-", stdin=APISERVICE.format(name="v1.example.com"))
    table = kube("get", "apiservice", "v1.example.com").stdout.split()
    assert table == ["NAME", "SERVICE", "AVAILABLE", "AGE", "v1.example.com", "Local", "True", table[-1]]
    bad = kube("apply", "-f", "-", stdin=APISERVICE.format(name="wrong"), check=False)
    assert bad.returncode != 0 and "must be `spec.version+\".\"+spec.group`" in bad.stderr
    kube("delete", "apiservice", "v1.example.com")
    kube("delete", "service", "lb-status")


async def test_a_watch_that_meets_an_object_it_cannot_read_ends_with_its_error(kube, tmp_path):
    """A stored object the API cannot decode (written past it, through the KV port) ends a watch with an ERROR
    event holding a 500 Status, as kube-apiserver's does, and kubectl prints that Status; the dashboard's watch ends
    with an ERROR line too. Both used to get the Status as a second HTTP response written into their 200 stream:
    kubectl read a broken stream ("invalid byte in chunk length")."""
    kube("create", "namespace", "unreadable")
    out_file = tmp_path / "watch.out"
    with open(out_file, "w") as out:
        watch = subprocess.Popen(["kubectl", "get", "configmaps", "-n", "unreadable", "-w", "-o", "json"],
                                 stdout=out, stderr=subprocess.STDOUT, env=kube.env("m2"))
    key = b"/registry/configmaps/unreadable/broken"
    shown = b"/registry/events/unreadable/broken"  # a kind the dashboard shows
    c = kube.cluster
    async with KVClient(c.master("m1")["kv"], tls=c.kv_tls()) as kv, aiohttp.ClientSession() as http:
        dashboard = await http.get(c.master("m3")["api"] + "/dashboard/watch", ssl=c.tls(),
                                   headers={"Authorization": f"Bearer {c.token}"})
        try:
            kube("create", "configmap", "readable", "-n", "unreadable")
            wait_until(lambda: '"name": "readable"' in out_file.read_text(), "the watch under way")
            assert b'"SYNCED"' in await dashboard.content.readuntil(b'"SYNCED"')
            await kv.put(key, b"\x00 not an object")
            await kv.put(shown, b"\x00 not an object")
            watch.wait(timeout=20)  # the watch ended
            printed = out_file.read_text()
            assert '"reason": "InternalError"' in printed and f"cannot read {key.decode()}" in printed, printed
            last = (await asyncio.wait_for(dashboard.content.read(), 20)).splitlines()[-1]
            assert json.loads(last)["type"] == "ERROR" and f"cannot read {shown.decode()}" in last.decode()
        finally:
            dashboard.close()
            if watch.poll() is None:
                watch.terminate()
                watch.wait(timeout=10)
            await kv.delete(key)
            await kv.delete(shown)
    kube("delete", "namespace", "unreadable", "--wait=false")
