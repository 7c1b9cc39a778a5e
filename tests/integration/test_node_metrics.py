"""A node process's /metrics (on its kubelet port, to the API server's client certificate): pods by phase, restarts,
probe failures."""
import aiohttp

from api.client import NotFound
from tests.integration.cluster import Cluster, eventually


async def test_kubelet_metrics_count_pods_by_phase(tmp_path):
    cluster = Cluster(str(tmp_path / "c"), 1, nodes=1, runtime="fake")
    try:
        async with cluster.api() as api, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=cluster.kubelet_tls())) as http, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=cluster.kubelet_tls(None))) as anonymous:
            await api.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "p", "namespace": "default"},
                                      "spec": {"nodeName": "fake-0", "containers": [{"name": "c", "image": "x"}]}})
            async def registered():
                try:
                    node = await api.get("nodes", "fake-0")
                except NotFound:
                    return None
                return node if (node.get("status") or {}).get("daemonEndpoints") else None
            node = await eventually(registered, timeout=30, what="the node registered")
            address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
            url = f"https://{address}:{node['status']['daemonEndpoints']['kubeletEndpoint']['Port']}/metrics"

            async with anonymous.get(url) as r:
                assert r.status == 401

            async def running() -> bool:
                async with http.get(url) as r:
                    text = await r.text()
                return 'raftkube_kubelet_pods{node="fake-0",phase="Running"} 1.0' in text and \
                    'raftkube_kubelet_container_restarts{node="fake-0"} 0.0' in text
            await eventually(running, timeout=30, what="the running pod counted")
    finally:
        cluster.stop()
