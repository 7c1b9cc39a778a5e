"""kube-proxy (run by the first process node, as `raftkube up` does) on a real master: a Service's ClusterIP forwards
to two `python3 -m http.server` pods round-robin, following Endpoints as they change; a NodePort works on the node's
address; a deleted Service stops listening; a port that cannot be bound becomes a Warning Event on the Service.
Endpoints are written by hand here (the Endpoints controller is not needed), pods are bound by hand."""
from __future__ import annotations

import asyncio
import random
import socket
import urllib.request


from api.client import ApiClient, NotFound
from tests.integration.cluster import eventually

NODE = "n1"
PORT = 8000  # unprivileged: kube-proxy needs no root


NODES = {"nodes": 1, "runtime": "process", "node_flags": ("--lease-interval", "1")}  # for conftest's node_cluster


def web_pod(name: str) -> dict:
    """An http.server on the pod's IP, answering /whoami with the pod's name; ready once it serves."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": [{
                "name": "web", "image": "python:3.11",
                "command": ["sh", "-c", "echo $HOSTNAME > whoami && exec python3 -m http.server 8080 --bind $POD_IP"],
                "readinessProbe": {"httpGet": {"path": "/whoami", "port": 8080}, "periodSeconds": 1}}]}}


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as r:  # a new connection each time
        return r.read().decode().strip()


async def ready_ips(api: ApiClient, names: list[str]) -> list[str] | None:
    ips = []
    for name in names:
        status = (await api.get("pods", name, "default")).get("status") or {}
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []):
            return None
        ips.append(status["podIP"])
    return ips


async def set_endpoints(api: ApiClient, name: str, ips: list[str]) -> None:
    body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 8080, "protocol": "TCP"}]}]}
    try:
        current = await api.get("endpoints", name, "default")
        await api.update("endpoints", {**body, "metadata": current["metadata"]})
    except NotFound:
        await api.create("endpoints", body, "default")


async def test_cluster_ip_round_robin_endpoints_live_and_deletion(node_api):
    """Successive connections to ClusterIP:port alternate between the ready endpoints; a changed Endpoints object
    takes effect without restarting anything; deleting the Service closes its listener."""
    for name in ("web-a", "web-b"):
        await node_api.create("pods", web_pod(name), "default")
    ips = await eventually(lambda: ready_ips(node_api, ["web-a", "web-b"]), timeout=30, what="both web pods ready")
    svc = await node_api.create("services", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": PORT, "targetPort": 8080}]}}, "default")
    url = f"http://{svc['spec']['clusterIP']}:{PORT}/whoami"
    await set_endpoints(node_api, "web", ips)

    async def answers(expected: set[str]) -> list[str] | None:
        got = [await asyncio.to_thread(get, url) for _ in range(4)]
        return got if set(got) == expected else None

    got = await eventually(lambda: answers({"web-a", "web-b"}), what="both pods answering through the ClusterIP")
    assert got[0] != got[1] and got[1] != got[2], f"not round-robin: {got}"
    await set_endpoints(node_api, "web", ips[:1])
    await eventually(lambda: answers({"web-a"}), what="only web-a after the Endpoints changed")
    open_conn = socket.create_connection((svc["spec"]["clusterIP"], PORT), timeout=5)
    open_conn.sendall(b"GET /whoami HTTP/1.0\r\n")  # half a request: the connection stays open
    await set_endpoints(node_api, "web", [])

    async def refused() -> bool:
        try:
            await asyncio.to_thread(get, url)
            return False
        except OSError:
            return True

    await eventually(refused, what="new connections refused without endpoints")
    open_conn.sendall(b"\r\n")
    answer = await asyncio.to_thread(open_conn.recv, 65536)
    open_conn.close()
    assert answer.startswith(b"HTTP/1.0 200"), "an open connection survived the Endpoints change"
    await set_endpoints(node_api, "web", ips)
    await eventually(lambda: answers({"web-a", "web-b"}), what="both pods again")
    await node_api.delete("services", "web", "default")
    await eventually(refused, what="the deleted Service's listener closed")


async def test_node_port_on_the_node_address(node_api):
    """type NodePort: the proxy also listens on the node's InternalIP at spec.ports[].nodePort."""
    await node_api.create("pods", web_pod("web-np"), "default")
    ips = await eventually(lambda: ready_ips(node_api, ["web-np"]), timeout=30, what="the web pod ready")
    node_port = random.randrange(30000, 32768)
    await node_api.create("services", {"metadata": {"name": "web-np"}, "spec": {
        "type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": PORT, "targetPort": 8080,
                                                                    "nodePort": node_port}]}}, "default")
    await set_endpoints(node_api, "web-np", ips)
    node = await node_api.get("nodes", NODE)
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")

    async def answers() -> bool:
        return await asyncio.to_thread(get, f"http://{address}:{node_port}/whoami") == "web-np"

    await eventually(answers, what="the NodePort answering")


async def test_a_port_it_cannot_bind_is_an_event_on_the_service(node_api):
    """Something else holds ClusterIP:port: kube-proxy reports it on the Service and keeps running."""
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ip = f"127.96.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    blocker.bind((ip, PORT))
    blocker.listen()
    try:
        await node_api.create("services", {"metadata": {"name": "blocked"}, "spec": {
            "clusterIP": ip, "ports": [{"port": PORT}]}}, "default")

        async def event() -> dict | None:
            events, _ = await node_api.list("events", "default")
            return next((e for e in events if e["involvedObject"]["name"] == "blocked"
                         and e["reason"] == "FailedToListen"), None)

        found = await eventually(event, what="a FailedToListen event on the Service")
        assert found["type"] == "Warning" and f"{ip}:{PORT}" in found["message"]
    finally:
        blocker.close()
    node = await node_api.get("nodes", NODE)  # the node (and its proxy) still runs
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


async def test_an_image_only_nginx_pod_serves_its_welcome_page(node_api):
    """`kubectl create deployment web --image=nginx` as a tutorial has it: no command, and the pod still serves
    HTTP (node/images.py's stand-in) on its declared port."""
    await node_api.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
                                   "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": [{
                                       "name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 8080}],
                                       "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                          "periodSeconds": 1}}]}}, "default")
    ip = (await eventually(lambda: ready_ips(node_api, ["nginx"]), timeout=30, what="nginx ready"))[0]
    assert "Welcome to nginx!" in await asyncio.to_thread(get, f"http://{ip}:8080/index.html")
    await node_api.delete("pods", "nginx", "default")
