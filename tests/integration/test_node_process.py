"""A process-runtime node (`raftkube node --runtime process`) on a real master, driven as a user would: pods whose
containers are `python3 -c ...` processes get their POD_IP, env and files from ConfigMaps, Secrets, the downward API
and Services; `kubectl logs` (the real kubectl, through pods/log and the kubelet) shows and follows their output;
kill -9 restarts a container; probes act; deletion ends the process within its grace period; a restarted kubelet
adopts its running containers instead of starting them twice. Pods are bound by hand (spec.nodeName)."""
from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import textwrap
import time

import aiohttp
import pytest

from api.client import ApiClient, NotFound
from raftkube import certs, cluster_file, up
from tests.integration.cluster import eventually
from tests.integration.kube import Kubectl

NODE = "n1"
NODES = {"nodes": 1, "runtime": "process",  # for conftest's node_cluster
         "node_flags": ("--lease-interval", "1", "--crashloop-base-delay", "1", "--no-proxy")}
_names = itertools.count()


@pytest.fixture
async def node_api(node_api):
    """conftest's, once the node is Ready."""
    await eventually(lambda: node_ready(node_api), timeout=20, what=f"node {NODE} Ready")
    return node_api


@pytest.fixture(scope="module")
def kubectl(node_cluster, tmp_path_factory):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    return Kubectl(tmp_path_factory.mktemp("kubectl-home"), node_cluster)


async def node_ready(api: ApiClient) -> bool:
    try:
        node = await api.get("nodes", NODE)
    except NotFound:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (node.get("status") or {}).get("conditions") or [])


def python_pod(script: str, *, restart: str = "Always", grace: int = 5, **container) -> dict:
    name = f"py{next(_names)}"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": NODE, "restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "main", "image": "python:3.11",
                                     "command": ["python3", "-c", textwrap.dedent(script)], **container}]}}


async def create(api: ApiClient, pod: dict) -> str:
    return (await api.create("pods", pod, "default"))["metadata"]["name"]


async def status_when(api: ApiClient, name: str, check) -> dict:
    async def probe():
        status = (await api.get("pods", name, "default")).get("status") or {}
        return status if check(status) else None
    return await eventually(probe, timeout=20, what=f"pod {name}: {check.__doc__ or 'condition'}")


def main_status(status: dict) -> dict:
    return (status.get("containerStatuses") or [{}])[0]


def pid_of(status: dict) -> int:
    return int(main_status(status)["containerID"].removeprefix("process://"))


def running(status: dict) -> bool:
    """Running"""
    return status.get("phase") == "Running" and "running" in main_status(status).get("state", {})


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_env_volumes_and_init_containers_reach_the_process(node_api, kubectl):
    """POD_IP, env from a ConfigMap, a Secret, fieldRef and envFrom, the Service variables, and volumes as files
    (configMap, secret, downwardAPI, an emptyDir an init container filled); `kubectl logs` shows the output."""
    await node_api.create("configmaps", {"metadata": {"name": "settings"},
                                         "data": {"greeting": "hello", "mode": "fast"}}, "default")
    await node_api.create("secrets", {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}, "default")
    svc = await node_api.create("services", {"metadata": {"name": "backend-db"},
                                        "spec": {"ports": [{"name": "sql", "port": 5432}]}}, "default")
    script = """
        import os
        e = os.environ
        print("ip", e["POD_IP"], "greeting", e["GREETING"], "password", e["PASSWORD"], "me", e["ME"])
        print("prefixed", e["CFG_mode"], "svc", e["BACKEND_DB_SERVICE_HOST"], e["BACKEND_DB_SERVICE_PORT_SQL"])
        print("files", open("etc/config/greeting").read(), open("/" + os.path.join(e["RAFTKUBE_ROOT"],
              "etc/secret/password")).read(), open("etc/podinfo/labels").read(), open("work/seed").read().strip())
    """
    pod = python_pod(script, restart="Never", env=[
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        volumeMounts=[{"name": "config", "mountPath": "/etc/config"}, {"name": "secret", "mountPath": "/etc/secret"},
                      {"name": "podinfo", "mountPath": "/etc/podinfo"}, {"name": "work", "mountPath": "/work"}])
    pod["spec"]["volumes"] = [{"name": "config", "configMap": {"name": "settings"}},
                              {"name": "secret", "secret": {"secretName": "creds"}},
                              {"name": "podinfo", "downwardAPI": {"items": [
                                  {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                              {"name": "work", "emptyDir": {}}]
    pod["spec"]["initContainers"] = [{"name": "seed", "image": "busybox", "command": ["sh", "-c", "echo seeded > work/seed"],
                                      "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]
    name = await create(node_api, pod)
    status = await status_when(node_api, name, lambda s: s.get("phase") in ("Succeeded", "Failed"))
    out = kubectl("logs", name, check=False).stdout
    assert status["phase"] == "Succeeded", out + kubectl("logs", name, "-c", "seed", check=False).stdout
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert f"ip {status['podIP']} greeting hello password s3cret me {name}" in out
    assert f"prefixed fast svc {svc['spec']['clusterIP']} 5432" in out
    assert f'files hello s3cret app="{name}" seeded' in out
    assert status["podIP"].startswith("127.") and status["podIP"] != status["hostIP"]


async def test_a_missing_configmap_keeps_the_container_waiting(node_api):
    """Kubernetes' CreateContainerConfigError, with the missing object named; the pod stays Pending."""
    name = await create(node_api, python_pod("print(1)", env=[
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nowhere", "key": "k"}}}]))
    status = await status_when(node_api, name, lambda s: "waiting" in main_status(s).get("state", {}) and
                               main_status(s)["state"]["waiting"]["reason"] == "CreateContainerConfigError")
    assert 'configmap "nowhere" not found' in main_status(status)["state"]["waiting"]["message"]
    assert status["phase"] == "Pending"


async def test_kubectl_logs_follow_and_tail(node_api, kubectl):
    """`kubectl logs -f` streams new lines as the process writes them; --tail=1 gives only the last one."""
    name = await create(node_api, python_pod("""
        import itertools, time
        for i in itertools.count():
            print("tick", i, flush=True)
            time.sleep(0.1)
    """))
    await status_when(node_api, name, running)
    follower = kubectl.popen("logs", "-f", name)
    try:
        seen = []
        deadline = time.monotonic() + 20
        while len(seen) < 15 and time.monotonic() < deadline:
            line = await asyncio.to_thread(follower.stdout.readline)
            if line.startswith("tick"):
                seen.append(int(line.split()[1]))
        assert len(seen) >= 15 and seen == list(range(seen[0], seen[0] + len(seen)))
    finally:
        follower.kill()
        follower.wait()
    tail = kubectl("logs", name, "--tail=1", check=False).stdout.splitlines()
    assert len(tail) == 1 and tail[0].startswith("tick")


async def test_kill_9_restarts_the_container(node_api, kubectl):
    """restartPolicy Always: a container killed by SIGKILL is started again; restartCount rises, lastState says
    exit code 137, and `kubectl logs --previous` shows the run before. (The containerID's pid is the container's log
    shim, node/log_shim.py; the container is its child.)"""
    name = await create(node_api, python_pod(
        "import os, time; print('started', os.getpid(), 'under', os.getppid(), flush=True); time.sleep(600)"))
    shim = pid_of(await status_when(node_api, name, running))

    async def printed(shim: int) -> int | None:
        found = re.search(rf"started (\d+) under {shim}\b",
                          (await asyncio.to_thread(kubectl, "logs", name, check=False)).stdout)
        return int(found.group(1)) if found else None

    pid = await eventually(lambda: printed(shim), what="the first run's output")
    os.kill(pid, signal.SIGKILL)

    def restarted(s: dict) -> bool:
        """restarted and running again"""
        return running(s) and main_status(s)["restartCount"] >= 1 and pid_of(s) != shim

    status = await status_when(node_api, name, restarted)
    assert main_status(status)["lastState"]["terminated"]["exitCode"] == 137
    assert f"started {pid}" in kubectl("logs", name, "--previous", check=False).stdout
    await eventually(lambda: printed(pid_of(status)), what="the second run's output")


async def test_liveness_and_readiness_probes(node_api):
    """A failing exec liveness probe restarts the container; a readiness probe holds Ready until it passes."""
    sick = await create(node_api, python_pod("import time; time.sleep(600)", livenessProbe={
        "exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}))
    slow = await create(node_api, python_pod("import time; time.sleep(1.5); open('ready', 'w'); time.sleep(600)",
                                        readinessProbe={"exec": {"command": ["test", "-f", "ready"]},
                                                        "periodSeconds": 1}))
    unready = await status_when(node_api, slow, running)
    assert not main_status(unready)["ready"]
    ready = await status_when(node_api, slow, lambda s: main_status(s).get("ready"))
    assert {c["type"]: c["status"] for c in ready["conditions"]}["Ready"] == "True"
    await status_when(node_api, sick, lambda s: main_status(s).get("restartCount", 0) >= 1)
    events, _ = await node_api.list("events", "default")
    assert any(e["involvedObject"]["name"] == sick and e["reason"] == "Unhealthy" for e in events)


async def test_a_tcp_startup_probe_holds_started_and_ready(node_api):
    """Until a startupProbe passes, the container is neither started nor ready (Kubernetes' startup probe)."""
    name = await create(node_api, python_pod("""
        import os, socket, time
        time.sleep(1)
        s = socket.create_server((os.environ["POD_IP"], 8090))
        time.sleep(600)
    """, startupProbe={"tcpSocket": {"port": "probe"}, "periodSeconds": 1, "failureThreshold": 100},
        ports=[{"name": "probe", "containerPort": 8090}]))
    early = await status_when(node_api, name, running)
    assert not main_status(early)["started"] and not main_status(early)["ready"]
    await status_when(node_api, name, lambda s: main_status(s).get("started") and main_status(s).get("ready"))


async def test_deletion_ends_the_process_within_its_grace_period(node_api, kubectl):
    """A process that ignores SIGTERM gets SIGKILL when the grace period (2 s) ends; then the object goes."""
    name = await create(node_api, python_pod("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn", flush=True)
        time.sleep(600)
    """, grace=2))
    pid = pid_of(await status_when(node_api, name, running))

    async def ignoring() -> bool:  # SIGTERM is ignored from now on
        return "stubborn" in (await asyncio.to_thread(kubectl, "logs", name, check=False)).stdout

    await eventually(ignoring, what="the process ignoring SIGTERM")
    started = time.monotonic()
    await node_api.delete("pods", name, "default")

    async def gone() -> bool:
        try:
            await node_api.get("pods", name, "default")
            return False
        except NotFound:
            return True

    await eventually(gone, timeout=15, what="the pod object removed")
    took = time.monotonic() - started
    assert not alive(pid)
    assert took >= 1.5, f"the process ignoring SIGTERM was killed after {took:.1f}s, within its 2s grace period"


async def test_a_restarted_kubelet_adopts_its_running_containers(node_api, node_cluster):
    """kill -9 of the kubelet leaves its containers running; started again, it finds them (same process, same
    restartCount) instead of starting duplicates."""
    unique = f"import time; time.sleep(600)  # adopt-me {time.time()}"
    name = await create(node_api, python_pod(unique))
    before = await status_when(node_api, name, running)
    node = next(n for n in node_cluster.info["nodes"] if n["name"] == NODE)
    os.kill(node["pid"], signal.SIGKILL)
    up.wait_gone(node["pid"])
    assert alive(pid_of(before))
    node["pid"] = up.spawn(node["argv"], os.path.join(node_cluster.state_dir, "logs", f"{NODE}.log"))
    cluster_file.write(node_cluster.state_dir, node_cluster.info)
    # a pod run to completion after the restart shows the new kubelet is at work
    probe = await create(node_api, python_pod("print('after restart')", restart="Never"))
    await status_when(node_api, probe, lambda s: s.get("phase") == "Succeeded")
    after = await node_api.get("pods", name, "default")
    assert pid_of(after["status"]) == pid_of(before) and alive(pid_of(before))
    assert main_status(after["status"])["restartCount"] == main_status(before)["restartCount"]
    copies = [p for p in os.listdir("/proc") if p.isdigit() and unique.encode() in _cmdline(int(p))]
    assert len(copies) == 2 and str(pid_of(before)) in copies  # its log shim, and the one container it runs


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


async def test_the_kubelet_serves_the_api_servers_client_certificate_only(node_api, node_cluster, tmp_path):
    """The kubelet speaks TLS with a certificate valid for the node's InternalIP (strictly verified here), and serves
    only the API server's kubelet client certificate: without a certificate, with the node's token, with another
    client certificate the cluster CA signed (an admin's), a request is a 401; the kubelet's own serving certificate
    fails the handshake as a client, and plain HTTP gets no answer."""
    node = await node_api.get("nodes", NODE)
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    url = f"https://{ip}:{port}/containerLogs/default/nothing/main"
    pki = os.path.join(node_cluster.state_dir, "pki")
    admin = certs.issue(*certs.load_ca(pki), "admin", client=True, organization="system:masters")
    certs.save(*admin, str(tmp_path / "admin.crt"), str(tmp_path / "admin.key"))
    as_admin = node_cluster.kubelet_tls(None)
    as_admin.load_cert_chain(str(tmp_path / "admin.crt"), str(tmp_path / "admin.key"))
    as_kubelet = node_cluster.kubelet_tls(None)
    serving = os.path.join(node_cluster.state_dir, "nodes", f"kubelet-{NODE}")
    as_kubelet.load_cert_chain(serving + ".crt", serving + ".key")
    node_token = {"Authorization": f"Bearer {up.token_for(node_cluster.state_dir, f'system:node:{NODE}')}"}

    async def status(tls, headers=None, address=url) -> int:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http:
            async with http.get(address, headers=headers or {}) as r:
                return r.status

    assert await status(node_cluster.kubelet_tls(None)) == 401
    assert await status(node_cluster.kubelet_tls(None), node_token) == 401
    assert await status(as_admin) == 401
    for refused in (status(as_kubelet), status(node_cluster.kubelet_tls(), address=url.replace("https:", "http:"))):
        with pytest.raises(aiohttp.ClientError):
            await refused
    assert await status(node_cluster.kubelet_tls()) == 404  # served: the pod is simply not there
