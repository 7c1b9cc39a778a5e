"""Fake nodes (`raftkube node --runtime fake --count 2`, as `raftkube up --runtime fake` runs them) on a real master:
registration, Node status the official Python client accepts, Lease renewal in kube-node-lease, and pods that
become Running and Ready, succeed, fail on request (raftkube.io/fake-exit-code) and are deleted gracefully.
Pods are bound by hand (spec.nodeName): these tests need no scheduler."""
from __future__ import annotations

import itertools

import msgpack
from kubernetes.client import ApiClient as PythonClient

from api.client import ApiClient, NotFound
from kvstore.client import unb64
from tests.integration.cluster import eventually

NODES = {"nodes": 2, "runtime": "fake",  # for conftest's node_cluster
         "node_flags": ("--lease-interval", "0.5", "--fake-start-delay", "0.2", "--fake-run-time", "0.5")}
_names = itertools.count()


def pod(node: str, restart: str = "Always", annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{next(_names)}", "annotations": annotations or {}},
            "spec": {"nodeName": node, "restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}}


async def phase_of(api: ApiClient, name: str, wanted: str) -> dict | None:
    obj = await api.get("pods", name, "default")
    return obj if (obj.get("status") or {}).get("phase") == wanted else None


async def ready_node(api: ApiClient, name: str) -> dict | None:
    try:
        node = await api.get("nodes", name)
    except NotFound:
        return None
    ready = [c for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
    return node if ready and ready[0]["status"] == "True" and ready[0]["reason"] == "KubeletReady" else None


async def test_fake_nodes_register_ready_with_a_complete_status(node_api):
    """A kubelet registers its Node with capacity, addresses, nodeInfo and daemonEndpoints; the official Python
    client's typed model accepts it (it rejects a NodeSystemInfo missing any of its ten required fields)."""
    for name in ("fake-0", "fake-1"):
        node = await eventually(lambda: ready_node(node_api, name), timeout=20, what=f"node {name} Ready")
        status = node["status"]
        assert status["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110"} == status["allocatable"]
        assert {a["type"] for a in status["addresses"]} == {"InternalIP", "Hostname"}
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
        typed = PythonClient()._ApiClient__deserialize(node, "V1Node")
        assert typed.status.node_info.kubelet_version == "v1.32.0+raftkube"


async def test_a_node_is_created_with_its_status(node_cluster, node_api):
    """The kubelet creates its Node with status, as Kubernetes' does: the first version stored already has Ready, so
    a client listing nodes between the create and a status write never meets a Node without status."""
    await eventually(lambda: ready_node(node_api, "fake-0"), timeout=20, what="node fake-0 Ready")
    kv = node_cluster.kv("m1")
    (now,) = (await kv.range(b"/registry/nodes/fake-0"))["kvs"]
    (first,) = (await kv.range(b"/registry/nodes/fake-0", revision=int(now["create_revision"])))["kvs"]
    conditions = msgpack.unpackb(unb64(first["value"]))["status"]["conditions"]
    assert {"type": "Ready", "status": "True"}.items() <= next(c for c in conditions if c["type"] == "Ready").items()


async def test_lease_is_renewed(node_api):
    """The kubelet renews Lease kube-node-lease/NAME (holder: the node), as Kubernetes' kubelet does."""
    first = await eventually(lambda: node_api.get("leases", "fake-0", "kube-node-lease"), what="the node's Lease")
    assert first["spec"]["holderIdentity"] == "fake-0"

    async def renewed():
        lease = await node_api.get("leases", "fake-0", "kube-node-lease")
        return lease["spec"]["renewTime"] > first["spec"]["renewTime"]

    await eventually(renewed, timeout=10, what="a Lease renewal")


async def test_pod_becomes_running_and_ready(node_api):
    """Kubernetes' pod status: phase Running, the four conditions True, podIP, complete containerStatuses."""
    created = await node_api.create("pods", pod("fake-1"), "default")
    name = created["metadata"]["name"]
    running = await eventually(lambda: phase_of(node_api, name, "Running"), what="pod Running")
    status = running["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    assert status["podIP"] and status["hostIP"] and status["startTime"]
    (container,) = status["containerStatuses"]
    assert container["ready"] and container["started"] and "running" in container["state"]
    assert container["containerID"].startswith("fake://") and container["restartCount"] == 0
    typed = PythonClient()._ApiClient__deserialize(running, "V1Pod")
    assert typed.status.container_statuses[0].image == "registry.k8s.io/pause:3.9"


async def test_run_to_completion_and_failure_on_request(node_api):
    """restartPolicy Never: the fake container exits 0 after its run time (Succeeded), or with the code the
    raftkube.io/fake-exit-code annotation asks for (Failed), so Jobs can be tested without processes."""
    ok = (await node_api.create("pods", pod("fake-0", "Never"), "default"))["metadata"]["name"]
    bad = (await node_api.create("pods", pod("fake-0", "Never", {"raftkube.io/fake-exit-code": "3"}),
                            "default"))["metadata"]["name"]
    done = await eventually(lambda: phase_of(node_api, ok, "Succeeded"), what="pod Succeeded")
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    failed = await eventually(lambda: phase_of(node_api, bad, "Failed"), what="pod Failed")
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"


async def test_graceful_deletion_removes_the_pod(node_api):
    """DELETE marks the bound pod (deletionTimestamp); the kubelet stops it and confirms with grace 0."""
    name = (await node_api.create("pods", pod("fake-1"), "default"))["metadata"]["name"]
    await eventually(lambda: phase_of(node_api, name, "Running"), what="pod Running")
    marked = await node_api.delete("pods", name, "default")
    assert marked["metadata"].get("deletionTimestamp")

    async def gone():
        try:
            await node_api.get("pods", name, "default")
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=10, what="the pod removed by its kubelet")
