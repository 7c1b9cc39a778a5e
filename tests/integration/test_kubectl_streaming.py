"""The kubelet-side verbs with the real kubectl 1.32 against three masters, a process node and a fake one: exec (output,
exit code, stdin, a TTY and its size), attach, cp both ways, port-forward to a pod, a Service and a Deployment with two
connections at once, pods/proxy and services/proxy (get --raw, kubectl proxy), top pods/nodes/--containers, and logs with --timestamps, --since, --since-time, --limit-bytes,
--tail, --all-containers, -l --prefix, --previous and -f (which follows a restarted container's next run). Bad input
(an unknown channel, a text message, garbage SPDY, no command, a missing pod, a container not running, a fake pod) is
a clear error and leaves everything serving. Pods are bound by hand: these masters run no scheduler."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time

import aiohttp
import pytest

from raftkube import up
from tests.integration.cluster import ACCOUNT_CONTROLLERS, FAST_NODES, Cluster
from tests.integration.kube import Kubectl, wait_until

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None or shutil.which("script") is None,
                                reason="kubectl (and script, for a TTY) are needed")

PODS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: box, labels: {tier: demo}}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  volumes: [{name: config, configMap: {name: settings}}, {name: work, emptyDir: {}}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo started; exec sleep 3600"]
    env: [{name: GREETING, value: hi}]
    volumeMounts: [{name: config, mountPath: /etc/config}, {name: work, mountPath: /work}]
  - name: side
    image: busybox
    command: [sh, -c, "echo side says hi; exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: python
    command: [python3, -m, http.server, "8080", --bind, $(POD_IP)]
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: python}]}
---
apiVersion: v1
kind: Pod
metadata: {name: echo}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: python
    stdin: true
    command: [python3, -c, "import sys\\nfor line in sys.stdin:\\n    print('got', line.strip(), flush=True)"]
---
apiVersion: v1
kind: Pod
metadata: {name: talker, labels: {tier: demo}}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: setup, image: busybox, command: [sh, -c, "echo init done"]}
  containers:
  - name: main
    image: python
    volumeMounts: [{name: work, mountPath: /work}]
    command:
    - python3
    - -c
    - |
      import os, sys, time
      for i in range(5):
          print("line", i, flush=True)
      print("oops", file=sys.stderr, flush=True)
      while not os.path.exists("work/stop"):
          time.sleep(0.1)
      os.remove("work/stop")
      print("bye", flush=True)
      sys.exit(1)
---
apiVersion: v1
kind: Pod
metadata: {name: burner}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: burn
    image: python
    command:
    - python3
    - -c
    - |
      import time
      while True:  # a tenth of a core: 10 ms busy, 90 ms asleep
          end = time.time() + 0.01
          while time.time() < end:
              pass
          time.sleep(0.09)
---
apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  initContainers: [{name: wait, image: busybox, command: [sleep, "3600"]}]
  containers: [{name: main, image: busybox, command: ["true"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  nodeName: n1
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: phantom}
spec:
  nodeName: fake-0
  containers: [{name: main, image: nginx}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("streaming") / "cluster"), 3, ACCOUNT_CONTROLLERS, nodes=1,
                runtime="process", node_flags=("--no-proxy", "--crashloop-base-delay", "1"))
    try:
        up.start_nodes(c.info, 1, "fake", FAST_NODES)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory) -> Kubectl:
    run = Kubectl(tmp_path_factory.mktemp("kubectl-home"), cluster)
    wait_until(lambda: run("get", "nodes", "n1", "fake-0", check=False).returncode == 0, "both nodes", timeout=60)
    run("apply", "-f", "-", stdin=PODS)
    for pod in ("box", "web", "echo", "talker", "burner", "phantom"):
        wait_until(lambda: phase(run, pod) == "Running", f"pod {pod} Running", timeout=60)
    wait_until(lambda: "Serving HTTP" in run("logs", "web", check=False).stdout, "the web server", timeout=30)
    return run


def phase(kubectl: Kubectl, pod: str) -> str:
    return kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}", check=False).stdout


# -- exec and cp ----------------------------------------------------------------------------


def test_exec_runs_in_the_pods_environment_and_passes_the_exit_code(kubectl):
    """The command sees the container's env (POD_IP, its own variables), starts in its root, where the volumes are
    ($RAFTKUBE_ROOT: / on a node running as root); `sh -c 'exit 3'` makes kubectl exit 3 (the error channel's
    NonZeroExitCode status), through any master."""
    out = kubectl("exec", "box", "-c", "main", "--", "sh", "-c",
                  'echo "$POD_IP $GREETING"; pwd; echo "$RAFTKUBE_ROOT"; cat etc/config/greeting; echo; '
                  'echo to-stderr >&2; exit 3', master="m2", check=False)
    assert out.returncode == 3, out.stderr
    ip = kubectl("get", "pod", "box", "-o", "jsonpath={.status.podIP}").stdout
    lines = out.stdout.splitlines()
    assert lines[0] == f"{ip} hi" and lines[1] == lines[2] and lines[3] == "hello"
    assert lines[1] == "/" if os.geteuid() == 0 else lines[1].endswith("/containers/main/root")
    assert "to-stderr" in out.stderr
    assert kubectl("exec", "box", "--", "true", master="m3").returncode == 0  # the first container by default


def test_exec_stdin_reaches_the_command_and_its_end_ends_it(kubectl):
    """`exec -i` sends stdin in 32 KiB pieces; v5's close signal gives the command its end of file."""
    data = "".join(f"{i:07d}\n" for i in range(40_000))  # 320 KB
    out = kubectl("exec", "-i", "box", "-c", "main", "--", "sh", "-c", "wc -c; echo done", stdin=data)
    assert out.stdout.split() == [str(len(data)), "done"]


def test_exec_with_a_tty_gets_a_terminal_of_the_callers_size(kubectl):
    """`exec -it` under a pseudo-terminal (script(1)): the command's stdin is a terminal, whose size kubectl sent on
    the resize channel."""
    command = "stty cols 91 rows 27; kubectl exec -it box -c main -- sh -c 'tty; stty size'"
    out = subprocess.run(["script", "-qec", command, "/dev/null"], env=kubectl.env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "/dev/pts/" in out.stdout and "27 91" in out.stdout


def test_cp_both_ways(kubectl, tmp_path):
    """kubectl cp is tar over exec: into the pod (tar reading stdin to its end) and back (tar on stdout)."""
    source = tmp_path / "bundle"
    (source / "sub").mkdir(parents=True)
    payload = os.urandom(200_000)
    (source / "data.bin").write_bytes(payload)
    (source / "sub" / "note.txt").write_text("a note\n")
    kubectl("cp", str(source), "box:work/bundle", "-c", "main")
    listing = kubectl("exec", "box", "-c", "main", "--", "sh", "-c", "cat work/bundle/sub/note.txt; "
                      "wc -c < work/bundle/data.bin").stdout.split()
    assert listing == ["a", "note", "200000"]
    back = tmp_path / "back"
    kubectl("cp", "box:work/bundle", str(back), "-c", "main")
    assert (back / "data.bin").read_bytes() == payload and (back / "sub" / "note.txt").read_text() == "a note\n"


# -- attach ---------------------------------------------------------------------------------


def test_attach_writes_to_stdin_and_reads_the_output(kubectl):
    """A container with `stdin: true` reads what `kubectl attach -i` sends, and attach shows what it prints."""
    proc = subprocess.Popen(kubectl.argv(("attach", "-i", "echo")), env=kubectl.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        proc.stdin.write("ping\n")
        proc.stdin.flush()
        seen = ""
        while "got ping" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert "got ping" in seen
    finally:
        proc.kill()
        proc.wait()
    assert "got ping" in kubectl("logs", "echo").stdout  # attach read the container's own output


# -- port-forward ---------------------------------------------------------------------------


def forwarded_port(proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"kubectl port-forward did not start: {proc.stderr.read() if proc.poll() is not None else ''}")


def two_requests_at_once(port: int) -> list[bytes]:
    """Two connections open together, each request sent before either answer is read."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
    try:
        for i, conn in enumerate(conns):
            conn.sendall(f"GET /?conn={i} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        answers = []
        for conn in reversed(conns):
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            answers.append(data)
        return answers
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.parametrize("target,remote", [("pod/web", "8080"), ("svc/web", "80"), ("deploy/web", "8080")])
def test_port_forward_carries_two_connections_at_once(kubectl, target, remote):
    """pod, Service (port 80 -> targetPort 8080) and Deployment (its pods by selector): each connection is a pair of
    SPDY streams inside kubectl's one WebSocket."""
    proc = subprocess.Popen(kubectl.argv(("port-forward", target, f":{remote}")), env=kubectl.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = forwarded_port(proc)
        for answer in two_requests_at_once(port) + two_requests_at_once(port):
            assert answer.startswith(b"HTTP/1.0 200") and b"Directory listing" in answer
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_port_forward_to_a_closed_port_is_reported(kubectl):
    """Nothing listens on 9: the kubelet says so on the connection's error stream; kubectl prints it and stops."""
    proc = subprocess.Popen(kubectl.argv(("port-forward", "pod/web", ":9")), env=kubectl.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = forwarded_port(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
            assert conn.recv(100) == b""
        proc.wait(timeout=30)
        assert "error forwarding port 9 to pod web" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


# -- the proxy subresources ----------------------------------------------------------------


def test_pods_and_services_proxy_relay_http_to_the_pod(kubectl):
    """pods/NAME:PORT/proxy/ and services/NAME:PORT/proxy/, with kubectl get --raw and through kubectl proxy, as the
    Kubernetes Basics tutorial uses them: the pod's server answers, the path and query reach it as sent, its own
    errors come back as they are, and the proxy path without its slash is redirected to it."""
    pods = "/api/v1/namespaces/default/pods"
    assert "Directory listing for /" in kubectl("get", "--raw", f"{pods}/web:8080/proxy/").stdout
    assert "Directory listing for /" in kubectl("get", "--raw", f"{pods}/web/proxy/").stdout  # its container port
    # these masters run no endpoints controller: the Service's endpoints are written here, as it would
    ip = kubectl("get", "pod", "web", "-o", "jsonpath={.status.podIP}").stdout
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                                                   "subsets": [{"addresses": [{"ip": ip, "targetRef": {
                                                       "kind": "Pod", "namespace": "default", "name": "web"}}],
                                                                "ports": [{"port": 8080}]}]}))
    services = "/api/v1/namespaces/default/services"
    for name in ("web", "web:80", "http:web:80"):
        assert "Directory listing for /" in kubectl("get", "--raw", f"{services}/{name}/proxy/").stdout
    assert "no service port 81" in kubectl("get", "--raw", f"{services}/web:81/proxy/", check=False).stderr
    proc = kubectl.popen("proxy", "--port=0")
    try:
        port = int(re.search(r"Starting to serve on 127.0.0.1:(\d+)", proc.stdout.readline()).group(1))
        missing = raw_get(port, f"{pods}/web:8080/proxy/no%20such/file?x=1&y=%2F")
        assert missing.startswith(b"HTTP/1.1 404")
        wait_until(lambda: '"GET /no%20such/file?x=1&y=%2F HTTP/1.1" 404' in kubectl("logs", "web").stdout,
                   "the request line in the web server's log")
        moved = raw_get(port, f"{services}/web/proxy?a=%2F")
        assert moved.startswith(b"HTTP/1.1 301") and f"Location: {services}/web/proxy/?a=%2F".encode() in moved
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    refused = kubectl("get", "--raw", f"{pods}/web:9/proxy/", check=False)
    assert refused.returncode == 1 and 'error trying to reach pod "web"' in refused.stderr
    assert 'pods "nothing" not found' in kubectl("get", "--raw", f"{pods}/nothing/proxy/", check=False).stderr


def raw_get(port: int, path: str) -> bytes:
    """The answer to a GET of `path` on 127.0.0.1:`port` as it came, headers and body (no redirect followed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


# -- top ------------------------------------------------------------------------------------


def test_top_pods_containers_and_nodes(kubectl):
    """metrics.k8s.io from the kubelets: CPU over the sampling window (the burner uses about a tenth of a core),
    memory now; the fake node's pods report their small fixed usage."""
    def top_pods() -> dict[str, tuple[int, int]]:
        out = kubectl("top", "pods", "--no-headers", check=False).stdout
        return {f[0]: (int(f[1].rstrip("m")), int(f[2].rstrip("Mi"))) for f in map(str.split, out.splitlines())}

    def sampled() -> dict[str, tuple[int, int]] | None:  # each kubelet's first sample comes in its own time
        usage = top_pods()
        return usage if usage.get("burner", (0, 0))[0] > 0 and "phantom" in usage else None

    usage = wait_until(sampled, "the burner's CPU and the fake node's pod in kubectl top pods", timeout=60)
    assert usage["web"][1] > 0 and usage["phantom"] == (1, 4)
    containers = kubectl("top", "pods", "box", "--containers", "--no-headers").stdout.split("\n")
    assert sorted(line.split()[1] for line in containers if line) == ["main", "side"]
    nodes = {line.split()[0]: line.split() for line in kubectl("top", "nodes", "--no-headers").stdout.splitlines()}
    assert set(nodes) == {"n1", "fake-0"} and int(nodes["n1"][3].rstrip("Mi")) > 0


# -- logs -----------------------------------------------------------------------------------

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (line \d|oops)$")


def test_logs_flags(kubectl):
    """--timestamps (the time the shim read each line), --since, --since-time, --limit-bytes, --tail,
    --all-containers (init containers too) and -l with --prefix (one request per pod, made by kubectl)."""
    wait_until(lambda: "oops" in kubectl("logs", "talker", "-c", "main", check=False).stdout, "talker's output")
    stamped = kubectl("logs", "talker", "-c", "main", "--timestamps").stdout.splitlines()
    assert len(stamped) == 6 and all(STAMPED.match(line) for line in stamped), stamped
    plain = kubectl("logs", "talker", "-c", "main").stdout
    assert plain.splitlines() == [f"line {i}" for i in range(5)] + ["oops"]
    assert kubectl("logs", "talker", "-c", "main", "--since=1h").stdout == plain
    assert kubectl("logs", "talker", "-c", "main", "--since-time=2099-01-01T00:00:00Z").stdout == ""
    assert kubectl("logs", "talker", "-c", "main", "--since-time=2001-01-01T00:00:00Z").stdout == plain
    assert kubectl("logs", "talker", "-c", "main", "--limit-bytes=8").stdout == "line 0\nl"
    assert kubectl("logs", "talker", "-c", "main", "--tail=2").stdout == "line 4\noops\n"
    everything = kubectl("logs", "talker", "--all-containers").stdout
    assert "init done" in everything and "line 4" in everything
    prefixed = kubectl("logs", "-l", "tier=demo", "--prefix", "-c", "main").stdout.splitlines()
    assert "[pod/box/main] started" in prefixed and "[pod/talker/main] line 0" in prefixed
    box = kubectl("logs", "box", "--all-containers", "--prefix").stdout.splitlines()
    assert "[pod/box/main] started" in box and "[pod/box/side] side says hi" in box


def test_logs_follow_goes_on_across_a_restart_and_previous_shows_the_run_before(kubectl):
    """`logs -f` of a container that crashes shows the crash and, once restartPolicy restarts it, the next run
    (upstream's kubelet ends the stream with the run); --previous shows the run that ended."""
    follower = subprocess.Popen(kubectl.argv(("logs", "-f", "talker", "-c", "main")), env=kubectl.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline() == "line 0\n"
        kubectl("exec", "talker", "-c", "main", "--", "touch", "work/stop")
        assert "bye\n" in iter(follower.stdout.readline, ""), "the end of the first run"
        assert follower.stdout.readline() == "line 0\n", "the next run, in the same stream"
        assert follower.poll() is None, "still following"
    finally:
        follower.kill()
        follower.wait()

    def restarted() -> bool:
        return kubectl("get", "pod", "talker", "-o", "jsonpath={.status.containerStatuses[0].restartCount}",
                       check=False).stdout not in ("", "0") and phase(kubectl, "talker") == "Running"

    wait_until(restarted, "talker's second run", timeout=30)
    assert kubectl("logs", "talker", "-c", "main", "--previous").stdout.splitlines()[-1] == "bye"
    kubectl("exec", "talker", "-c", "main", "--", "touch", "work/stop")  # leave it running its next runs


# -- bad input ------------------------------------------------------------------------------


def test_streams_that_cannot_be_had_are_clear_errors(kubectl):
    """No such pod, a container not running, a completed pod, a pod on the fake runtime: a 4xx with a sentence."""
    cases = [(("exec", "nowhere", "--", "ls"), 'pods "nowhere" not found'),
             (("exec", "box", "-c", "nope", "--", "ls"), "container nope is not valid for pod box"),
             (("exec", "stuck", "-c", "main", "--", "ls"), 'container "main" in pod "stuck" is not running'),
             (("exec", "phantom", "--", "ls"), "runs on a fake runtime"),
             (("port-forward", "pod/phantom", ":80"), "runs on a fake runtime"),
             (("exec", "box", "--", "no-such-command"), "failed to exec in container"),
             (("attach", "phantom"), "runs on a fake runtime")]
    wait_until(lambda: phase(kubectl, "done") == "Succeeded", "pod done Succeeded", timeout=30)
    cases.append((("exec", "done", "--", "ls"), "cannot exec into a container in a completed pod"))
    for args, says in cases:
        out = kubectl(*args, check=False)
        assert out.returncode != 0 and says in out.stderr, (args, out.stderr)


async def raw_exec(cluster: Cluster, query: str, messages: list[bytes | str]) -> list[bytes]:
    """Speak v5.channel.k8s.io to pods/box/exec by hand: send `messages`, collect what comes back until the close."""
    url = f"{cluster.master('m1')['api']}/api/v1/namespaces/default/pods/box/exec?{query}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token}"}) as session:
        async with session.ws_connect(url, protocols=["v5.channel.k8s.io"], ssl=cluster.tls()) as ws:
            for message in messages:
                await (ws.send_str(message) if isinstance(message, str) else ws.send_bytes(message))
            return [msg.data async for msg in ws if msg.type == aiohttp.WSMsgType.BINARY]


async def test_protocol_errors_end_the_session_with_a_status(cluster, kubectl):
    """An unknown channel (a text message's first character is its channel, as upstream reads it), stdout written by
    the client, a bad resize: the error channel says what was wrong, the command is killed, the socket closes; the
    next session works, its stdin a text message. The first message, empty on stdout, says the session is open."""
    query = "command=cat&stdin=true&stdout=true&container=main"
    for bad, says in ((b"\x07hello", "unknown channel 7"), ("text", "unknown channel 116"),
                      (b"\x01x", "stdout channel"), (b"\x04{}", "resize message")):
        got = await asyncio.wait_for(raw_exec(cluster, query, [bad]), 30)
        status = json.loads(got[-1][1:])
        assert got[-1][0] == 3 and status["status"] == "Failure" and says in status["message"], status
    ok = await raw_exec(cluster, query, ["\x00fine\n", b"\xff\x00"])
    assert ok[:2] == [b"\x01", b"\x01fine\n"] and json.loads(ok[-1][1:])["status"] == "Success"


async def test_a_malformed_websocket_frame_closes_the_session(cluster, kubectl):
    """A frame with a reserved opcode (inside TLS, after the upgrade): the API server closes that WebSocket with a
    protocol error and the command ends; the master serves on."""
    url = (f"{cluster.master('m1')['api']}/api/v1/namespaces/default/pods/box/exec"
           "?command=cat&stdin=true&stdout=true&container=main")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token}"}) as session:
        async with session.ws_connect(url, protocols=["v5.channel.k8s.io"], ssl=cluster.tls()) as ws:
            ws._conn.transport.write(b"\x83\x84\x00\x00\x00\x00oops")  # opcode 3 is reserved (RFC 6455 5.2)
            while (closing := await asyncio.wait_for(ws.receive(), 20)).type == aiohttp.WSMsgType.BINARY:
                pass  # the session's opening message, on stdout
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    ok = await raw_exec(cluster, "command=echo&command=still&command=here&stdout=true&container=main", [])
    assert ok[:2] == [b"\x01", b"\x01still here\n"]


async def test_a_request_without_a_command_is_a_400(cluster, kubectl):
    url = f"{cluster.master('m2')['api']}/api/v1/namespaces/default/pods/box/exec?stdout=true&container=main"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token}"}) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, protocols=["v5.channel.k8s.io"], ssl=cluster.tls())
        assert refused.value.status == 400
        async with session.post(url, ssl=cluster.tls()) as plain:  # as kubectl's SPDY fallback asks it
            assert plain.status == 400 and "at least 1 command" in (await plain.json())["message"]


async def test_garbage_in_the_port_forward_session_ends_it(cluster, kubectl):
    """Bytes that are no SPDY frame: the kubelet answers GOAWAY and closes; a real port-forward works afterwards."""
    url = f"{cluster.master('m3')['api']}/api/v1/namespaces/default/pods/web/portforward"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token}"}) as session:
        async with session.ws_connect(url, protocols=["SPDY/3.1+portforward.k8s.io"], ssl=cluster.tls()) as ws:
            await ws.send_bytes(b"\x80\x02\x00\x01" + b"\xff" * 40)  # SPDY/2, and nonsense
            got = await asyncio.wait_for(_collect(ws), 20)
    assert got and got[0][:4] == b"\x80\x03\x00\x07"  # GOAWAY
    await asyncio.to_thread(test_port_forward_carries_two_connections_at_once, kubectl, "pod/web", "8080")


async def _collect(ws: aiohttp.ClientWebSocketResponse) -> list[bytes]:
    return [msg.data async for msg in ws if msg.type == aiohttp.WSMsgType.BINARY]
