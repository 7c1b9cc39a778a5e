"""The compose cluster as a user runs it (issue 12): `make compose-up` from nothing, then the real kubectl through
haproxy, `docker kill` of the Raft leader, two masters of three paused, and `make compose-down`.

One cluster for the whole module, one check after another, in order: each test function is a chapter of the same
story and leaves the cluster as the next one expects it. Timings are printed as they are measured. This runs in
`make test` where a Docker engine answers, and in CI, where no engine is a failure (.ci/run starts one).
"""
from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator

import pytest

from raftkube import compose, up
from tests.integration.kube import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRETS = os.path.join(ROOT, compose.SECRETS_DIR)
API = f"https://127.0.0.1:{compose.API_PORT}"
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: python:3.11-slim
        command: ["sh", "-c", "echo $HOSTNAME > whoami && exec python3 -m http.server 8080 --bind $POD_IP"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
FETCH = """
import sys, urllib.request
seen = set()
for _ in range(8):
    try:
        seen.add(urllib.request.urlopen(f"http://{sys.argv[1]}/whoami", timeout=2).read().decode().strip())
    except OSError:
        pass
print(" ".join(sorted(seen)))
"""


def run(*argv: str, timeout: float = 600, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert out.returncode == 0, f"{' '.join(argv)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def raftkube(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "raftkube", *args, "--compose", timeout=120, check=check)


def docker_usable() -> str | None:
    """Why the test cannot run here, or None."""
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
            return "no Docker engine answers (docker info)"
    except (OSError, subprocess.TimeoutExpired):
        return "docker is not installed"
    if run("docker", "compose", "ps", "-q", check=False).stdout.strip():
        return "a compose cluster from this directory is running: `make compose-down` first"
    return None


class Clock:
    """Prints each step's time as it is measured, past pytest's capture, so a run reports its own numbers."""

    def __init__(self, capture: Any) -> None:
        self.capture = capture
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        with self.capture.global_and_fixture_disabled():
            print(f"\n  compose t={time.monotonic() - self.started:6.1f}s  {text}", end="", flush=True)

    def timed(self, what: str, condition: Callable[[], Any], timeout: float) -> tuple[Any, float]:
        """Wait for `condition` (a deadline, never a bare sleep) and say how long it took."""
        started = time.monotonic()
        value = wait_until(condition, what, timeout=timeout)
        took = time.monotonic() - started
        self.say(f"{what}: {took:.2f}s")
        return value, took


class Kubectl:
    """The real /usr/bin/kubectl through haproxy, with compose/secrets/kubeconfig and a private HOME."""

    def __init__(self, home: str) -> None:
        self.env = {**os.environ, "HOME": home, "KUBECONFIG": os.path.join(SECRETS, "kubeconfig")}

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return run("kubectl", "--request-timeout=5s", *args, env=self.env, input=stdin, timeout=30, check=check)

    def ok(self, *args: str) -> bool:
        return self(*args, check=False).returncode == 0

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def clock(pytestconfig) -> Clock:
    return Clock(pytestconfig.pluginmanager.getplugin("capturemanager"))


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory) -> Kubectl:
    return Kubectl(str(tmp_path_factory.mktemp("kubectl-home")))


@pytest.fixture(scope="module", autouse=True)
def compose_cluster(clock) -> Iterator[None]:
    why = docker_usable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the compose end-to-end test must run in CI, but {why}: .ci/run starts dockerd")
        pytest.skip(why)
    started = time.monotonic()
    out = run("make", "compose-up", timeout=900).stdout
    built = next((line.split("building ", 1)[1].rstrip(" .") for line in out.splitlines() if "building " in line), "")
    clock.say(f"make compose-up: {time.monotonic() - started:.1f}s ({built})")
    try:
        yield
    finally:
        run("make", "compose-down", timeout=300, check=False)  # the last test checks it; this is for failures


def ready_nodes(kubectl: Kubectl) -> set[str]:
    nodes = kubectl.json("get", "nodes")["items"]
    return {n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions") or [])}


def running_web_pods(kubectl: Kubectl) -> dict[str, str]:
    """pod name -> node, for the web pods Running and Ready."""
    pods = kubectl.json("get", "pods", "-l", "app=web")["items"]
    return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods if (status := p.get("status") or {})
            and status.get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])}


def answers_from(node: str, cluster_ip: str) -> set[str]:
    """The pod names the Service's ClusterIP answers with, asked from inside a node container (where its pods are)."""
    out = run("docker", "compose", "exec", "-T", node, "python3", "-c", FETCH, cluster_ip, timeout=60, check=False)
    return set(out.stdout.split())


def test_both_nodes_register_and_go_ready(kubectl, clock):
    clock.timed("nodes n1 and n2 Ready", lambda: ready_nodes(kubectl) == set(compose.NODES), timeout=90)


def test_a_deployment_spreads_over_both_nodes_and_its_service_answers_from_each(kubectl, clock):
    """The host-gw pod network: from either node the ClusterIP reaches the pods of both (node/pod_network.py)."""
    kubectl("apply", "-f", "-", stdin=WEB)
    pods, _ = clock.timed("2 web pods Running, one on each node",
                          lambda: (p := running_web_pods(kubectl)) and set(p.values()) == set(compose.NODES) and p,
                          timeout=120)
    ip = kubectl.json("get", "service", "web")["spec"]["clusterIP"]
    for node in compose.NODES:
        clock.timed(f"ClusterIP {ip} from {node} reaches the pods on both nodes",
                    lambda: answers_from(node, ip) == set(pods), timeout=60)


def test_killing_the_leaders_container_kubectl_works_again_within_5s_and_a_scale_converges(kubectl, clock):
    leader = raftkube("chaos", "leader").stdout.strip().splitlines()[-1]
    container = run("docker", "compose", "ps", "-q", leader).stdout.strip()
    run("docker", "kill", container)
    clock.say(f"docker kill {leader} (the Raft leader's container)")
    _, took = clock.timed("kubectl through haproxy works again", lambda: kubectl.ok("get", "deployment", "web"),
                          timeout=60)
    assert took <= 5.0, f"kubectl needed {took:.2f}s after the leader's death (at most 5 s)"
    kubectl("scale", "deployment", "web", "--replicas=3")
    clock.timed("the scale to 3 replicas converged", lambda: len(running_web_pods(kubectl)) == 3, timeout=120)
    raftkube("chaos", "restart", leader)
    clock.timed(f"{leader} back: `raftkube status --compose` exits 0 (one leader, every master reachable)",
                lambda: raftkube("status", check=False).returncode == 0, timeout=60)


def test_two_of_three_masters_paused_writes_fail_fast_with_no_quorum_and_local_reads_answer(kubectl, clock):
    names = compose.names(3)
    paused = names[:2]
    for name in paused:
        raftkube("chaos", "pause", name)
    clock.say(f"paused {' and '.join(paused)}")
    status = raftkube("status", "-o", "json", check=False)
    assert status.returncode == 1 and json.loads(status.stdout)["leader"] in (None, names[2])
    answer, took = clock.timed("a write answered 503 (haproxy found the live master)", no_quorum_write, timeout=60)
    code, message, seconds = answer
    assert code == 503 and "no quorum" in message, message
    clock.say(f"that write's answer took {seconds:.2f}s: {message[:90]}...")
    assert seconds <= 2.5, f"the no-quorum answer took {seconds:.2f}s (at most 2.5 s)"
    clock.timed("a read with resourceVersion=0 answered",
                lambda: kubectl.ok("get", "--raw", "/api/v1/namespaces/default/configmaps?resourceVersion=0"),
                timeout=30)
    for name in paused:
        raftkube("chaos", "resume", name)
    clock.timed("writes resume after unpause",
                lambda: kubectl.ok("create", "configmap", "after-pause", "--from-literal=quorum=back"), timeout=60)


def no_quorum_write() -> tuple[int, str, float] | None:
    """One write (a ConfigMap) through haproxy: (HTTP code, message, seconds), or None if no master answered."""
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "during-pause"}}).encode()
    req = urllib.request.Request(f"{API}/api/v1/namespaces/default/configmaps", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {up.admin_token(SECRETS)}"})
    context = ssl.create_default_context(cafile=os.path.join(SECRETS, "ca.crt"))
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=4, context=context) as r:
            return r.status, r.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}").get("message", ""), time.monotonic() - started
    except OSError:  # a paused master's silence: haproxy has not marked it down yet
        return None


def test_compose_down_leaves_no_container_network_or_volume(clock):
    started = time.monotonic()
    run("make", "compose-down", timeout=300)
    clock.say(f"make compose-down: {time.monotonic() - started:.1f}s")
    label = f"label=com.docker.compose.project={compose.PROJECT}"
    for kind in (("ps", "-a"), ("network", "ls"), ("volume", "ls")):
        left = run("docker", *kind, "-q", "--filter", label).stdout.split()
        assert not left, f"docker {' '.join(kind)} still shows {left}"
    assert not re.search(r"\braftkube_", run("docker", "network", "ls").stdout)
