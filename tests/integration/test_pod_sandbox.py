"""Pods on a node running as root are isolated (node/isolation.py), driven with the real kubectl: a pod cannot reach
the state dir's tokens and keys by any path, runs as the uid, gid and groups its securityContext asks (65534 by
default, never root) with no capability, sees a ConfigMap at its absolute mountPath (the official Python client's
port-forward test runs `python -u /opt/port-server.py`), `kubectl cp` takes absolute paths, a secret of mode 0400 is
its fsGroup's to read, and hostPath works only under --allowed-host-paths. Pods are bound by hand."""
from __future__ import annotations

import json
import os
import shutil
import socket

import pytest
import yaml

from tests.integration.cluster import ACCOUNT_CONTROLLERS, Cluster
from tests.integration.kube import Kubectl, wait_until

pytestmark = [pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is needed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="a node isolates its pods only when it runs as root; "
                                                           "as another user, pods run as that user (README, Nodes)")]

PORT_SERVER = """
import os, socket
server = socket.create_server((os.environ["POD_IP"], 8080))
print("serving", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(b"hello from " + os.environ["HOSTNAME"].encode())
    conn.close()
"""


def manifests(allowed: str) -> str:
    pods = [
        {"kind": "ConfigMap", "metadata": {"name": "scripts"}, "data": {"port-server.py": PORT_SERVER}},
        {"kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}},
        _pod("plain", volumes=[{"name": "work", "emptyDir": {}}],
             mounts=[{"name": "work", "mountPath": "/work"}]),
        _pod("server", command=["python3", "-u", "/opt/port-server.py"],
             volumes=[{"name": "scripts", "configMap": {"name": "scripts"}}],
             mounts=[{"name": "scripts", "mountPath": "/opt"}]),
        _pod("chosen", security={"runAsUser": 1234, "runAsGroup": 2345, "fsGroup": 3456, "supplementalGroups": [4567]},
             volumes=[{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}],
             mounts=[{"name": "creds", "mountPath": "/etc/creds"}]),
        _pod("hosted", volumes=[{"name": "shared", "hostPath": {"path": allowed}}],
             mounts=[{"name": "shared", "mountPath": "/data"},
                     {"name": "shared", "mountPath": "/data-ro", "readOnly": True}]),
        _pod("rooted", security={"runAsUser": 0}),
        _pod("nosy", volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}],
             mounts=[{"name": "etc", "mountPath": "/host-etc"}]),
    ]
    return yaml.safe_dump_all([{"apiVersion": "v1", **p} for p in pods])


def _pod(name: str, *, command: list[str] | None = None, security: dict | None = None, volumes: list | None = None,
         mounts: list | None = None) -> dict:
    return {"kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1, "securityContext": security or {},
                     "volumes": volumes or [],
                     "containers": [{"name": "main", "image": "busybox", "command": command or ["sleep", "3600"],
                                     "volumeMounts": mounts or []}]}}


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("shared")
    (path / "note").write_text("from the node\n")
    os.chmod(path, 0o777)
    return str(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, allowed):
    c = Cluster(str(tmp_path_factory.mktemp("sandbox") / "cluster"), 1, ACCOUNT_CONTROLLERS, nodes=1, runtime="process",
                node_flags=("--no-proxy", "--allowed-host-paths", allowed))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory, allowed) -> Kubectl:
    run = Kubectl(tmp_path_factory.mktemp("kubectl-home"), cluster)
    wait_until(lambda: run("get", "nodes", "n1", check=False).returncode == 0, "node n1", timeout=60)
    run("apply", "-f", "-", stdin=manifests(allowed))
    for pod in ("plain", "server", "chosen", "hosted"):
        wait_until(lambda: phase(run, pod) == "Running", f"pod {pod} Running", timeout=60)
    return run


def phase(kubectl: Kubectl, pod: str) -> str:
    return kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}", check=False).stdout


def sh(kubectl: Kubectl, pod: str, script: str, check: bool = True):
    return kubectl("exec", pod, "--", "sh", "-c", script, check=check)


def test_a_pod_cannot_reach_the_control_planes_files(kubectl, cluster):
    """Not by absolute path, nor by the relative one that led from a pod's directory to the state dir before."""
    state = cluster.state_dir
    for path in (f"{state}/tokens.csv", f"{state}/cluster.secret", f"{state}/pki/ca.key", f"{state}/pki/server.key",
                 f"{state}/nodes/kubelet-n1.key", "../../../../../../../tokens.csv"):  # from pods/UID/containers/C/root
        out = sh(kubectl, "plain", f"cat {path}", check=False)
        assert out.returncode != 0 and "No such file or directory" in out.stderr, (path, out.stdout)
    listing = sh(kubectl, "plain", "ls /").stdout.split()
    assert set(listing) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
                            "var", "work"}, listing  # var: var/run/secrets/kubernetes.io/serviceaccount
    assert sh(kubectl, "plain", "ls /var /var/run /var/run/secrets").stdout.split() == [
        "/var:", "run", "/var/run:", "secrets", "/var/run/secrets:", "kubernetes.io"]


def test_the_default_user_keeps_only_net_bind_service_and_gains_nothing(kubectl):
    assert sh(kubectl, "plain", "id -u; id -g").stdout.split() == ["65534", "65534"]
    status = dict(line.split(":\t", 1) for line in sh(kubectl, "plain", "cat /proc/self/status").stdout.splitlines()
                  if ":\t" in line)
    # NET_BIND_SERVICE (bit 10) alone, as an image's server needs for port 80 (node/security_context.py)
    assert {status[k].strip() for k in ("CapPrm", "CapEff", "CapBnd", "CapAmb")} == {"0000000000000400"}
    bind = 'import os, socket; socket.create_server((os.environ["POD_IP"], 80)).close(); print("bound")'
    assert sh(kubectl, "plain", f"python3 -c '{bind}'").stdout.strip() == "bound"
    assert status["NoNewPrivs"].strip() == "1"
    account = "/var/run/secrets/kubernetes.io/serviceaccount"  # its service account's, at the real path, readable
    assert sh(kubectl, "plain", f"cat {account}/namespace; head -c 3 {account}/token").stdout == "defaulteyJ"
    out = sh(kubectl, "plain", "echo x > /work/mine && ls -n /work/mine && touch /etc/x", check=False)
    assert " 65534 65534 " in out.stdout and "Read-only file system" in out.stderr


def test_a_pod_runs_as_its_security_context_asks_and_reads_its_fs_groups_secret(kubectl):
    assert sh(kubectl, "chosen", "id -u; id -g").stdout.split() == ["1234", "2345"]
    assert set(sh(kubectl, "chosen", "id -G").stdout.split()) == {"2345", "3456", "4567"}
    assert sh(kubectl, "chosen", "cat /etc/creds/password").stdout == "s3cret"
    assert sh(kubectl, "chosen", "stat -c '%a %g' /etc/creds/password").stdout.split() == ["440", "3456"]


def test_root_is_refused_with_a_reason(kubectl):
    def waiting():
        status = json.loads(kubectl("get", "pod", "rooted", "-o", "json").stdout).get("status") or {}
        state = ((status.get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}
        return state if state.get("reason") == "CreateContainerConfigError" else None
    assert "runAsUser 0" in wait_until(waiting, "rooted waiting for its config", timeout=30)["message"]


def test_a_config_map_at_its_absolute_mount_path_runs_and_cp_takes_absolute_paths(kubectl, tmp_path):
    wait_until(lambda: "serving" in kubectl("logs", "server").stdout, "the port server", timeout=30)
    ip = kubectl("get", "pod", "server", "-o", "jsonpath={.status.podIP}").stdout
    with socket.create_connection((ip, 8080), timeout=10) as conn:
        assert conn.recv(100) == b"hello from server"
    assert "create_server" in sh(kubectl, "server", "cat /opt/port-server.py").stdout
    assert "Read-only file system" in sh(kubectl, "server", "echo > /opt/port-server.py", check=False).stderr
    (tmp_path / "payload").write_text("carried\n")
    kubectl("cp", str(tmp_path / "payload"), "server:/tmp/payload")
    assert sh(kubectl, "server", "cat /tmp/payload").stdout == "carried\n"
    kubectl("cp", "server:/opt/port-server.py", str(tmp_path / "back.py"))
    assert (tmp_path / "back.py").read_text() == PORT_SERVER


def test_host_paths_only_under_the_allowed_prefixes(kubectl, allowed):
    assert sh(kubectl, "hosted", "cat /data/note /data-ro/note").stdout == "from the node\n" * 2
    sh(kubectl, "hosted", "echo from the pod > /data/written")
    assert open(os.path.join(allowed, "written")).read() == "from the pod\n"
    assert os.stat(os.path.join(allowed, "written")).st_uid == 65534
    assert "Read-only file system" in sh(kubectl, "hosted", "touch /data-ro/x", check=False).stderr

    def refused():
        events = json.loads(kubectl("get", "events", "--field-selector", "involvedObject.name=nosy",
                                    "-o", "json").stdout)["items"]
        return next((e for e in events if e["reason"] == "FailedMount"), None)
    event = wait_until(refused, "the FailedMount event of pod nosy", timeout=30)
    assert f"hostPath /etc is not allowed on this node: it allows hostPath volumes under {allowed}" in \
        event["message"]
    assert phase(kubectl, "nosy") == "Pending"


def test_the_state_dirs_secrets_are_the_operators_alone(cluster):
    for path in ("tokens.csv", "cluster.secret", "pki/ca.key", "pki/server.key", "pki/apiserver-kubelet-client.key",
                 "nodes/kubelet-n1.key"):
        assert os.stat(os.path.join(cluster.state_dir, path)).st_mode & 0o077 == 0, path
    assert os.stat(cluster.state_dir).st_mode & 0o077 == 0
