"""The node lifecycle controller on a real master (Kubernetes' documented node heartbeats and taint-based
evictions), with FAST_CONTROL_PLANE's 6 s grace period and 4 s default eviction timeout: two hand-made nodes whose
Leases the test renews (as kubelets do); when one stops renewing it becomes Ready=Unknown (NodeStatusUnknown) with
the node.kubernetes.io/unreachable:NoExecute taint, its pods are marked not Ready, its ReplicaSet pod is deleted after the default toleration
and replaced on the other node, a pod tolerating the taint forever stays; when its kubelet reports Ready again the
taint goes."""
from __future__ import annotations

import asyncio
import contextlib
import datetime
from typing import AsyncIterator

from api.client import ApiClient, Conflict, NotFound
from tests.integration.cluster import eventually
from tests.integration.kube import make_node, set_pod_phase

UNREACHABLE = "node.kubernetes.io/unreachable"


def _micro_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def renew(api: ApiClient, node: str) -> None:
    """A kubelet's Lease in kube-node-lease, renewed every second until cancelled."""
    lease = await api.create("leases", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                        "metadata": {"name": node, "namespace": "kube-node-lease"},
                                        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                                                 "renewTime": _micro_now()}}, "kube-node-lease")
    while True:
        await asyncio.sleep(1.0)
        lease["spec"]["renewTime"] = _micro_now()
        lease = await api.update("leases", lease)


@contextlib.asynccontextmanager
async def kubelet(api: ApiClient, node: str) -> AsyncIterator[asyncio.Task]:
    await make_node(api, node)
    task = asyncio.create_task(renew(api, node))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def ready_of(node: dict) -> dict:
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


async def running(api: ApiClient, ns: str, node: str) -> list[dict]:
    """Play the kubelet of `node`: its pods Running and Ready; the active ones returned."""
    pods, _ = await api.list("pods", ns)
    mine = [p for p in pods if p["spec"].get("nodeName") == node and not p["metadata"].get("deletionTimestamp")]
    for p in mine:
        if p["status"].get("phase") != "Running":
            with contextlib.suppress(Conflict, NotFound):
                await set_pod_phase(api, p, "Running", ready=True)
    return mine


async def test_a_node_that_stops_renewing_its_lease_is_tainted_and_its_pods_replaced(cp):
    async with cp.api() as api, kubelet(api, "good"), kubelet(api, "bad") as bad_kubelet:
        ns = "nlc"
        await api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        template = {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        await api.create("replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
                                         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                                  "template": template}}, ns)
        forever = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
        await api.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stays"},
                                  "spec": {"nodeName": "bad", "tolerations": [forever],
                                           "containers": [{"name": "c", "image": "nginx"}]}}, ns)

        async def spread() -> bool:  # the scheduler spreads the ReplicaSet's pods over both nodes
            return len(await running(api, ns, "good")) == 1 and len(await running(api, ns, "bad")) == 2
        await eventually(spread, timeout=30, what="one pod per node, and the tolerating pod")

        bad_kubelet.cancel()  # the kubelet of "bad" dies: no more Lease renewals

        async def unknown() -> dict | None:
            node = await api.get("nodes", "bad")
            taints = [t["key"] for t in node["spec"].get("taints") or [] if t["effect"] == "NoExecute"]
            return node if ready_of(node)["status"] == "Unknown" and taints == [UNREACHABLE] else None
        node = await eventually(unknown, timeout=30, what="bad Ready=Unknown with the unreachable taint")
        assert ready_of(node)["reason"] == "NodeStatusUnknown"
        assert ready_of(node)["message"] == "Kubelet stopped posting node status."
        assert ready_of(await api.get("nodes", "good"))["status"] == "True"

        async def stays_not_ready() -> bool:  # out of its Services' Endpoints now, not when evicted
            pod = await api.get("pods", "stays", ns)
            return next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"
        await eventually(stays_not_ready, timeout=30, what="the pods of bad marked not Ready")

        async def replaced() -> bool:
            on_bad = [p["metadata"]["name"] for p in (await api.list("pods", ns))[0] if p["spec"].get("nodeName") == "bad"]
            return on_bad == ["stays"] and len(await running(api, ns, "good")) == 2
        await eventually(replaced, timeout=40, what="the ReplicaSet pod on bad deleted and made again on good")
        events, _ = await api.list("events", ns)
        assert any(e["reason"] == "TaintManagerEviction" and e["message"].startswith("Marking for deletion Pod")
                   for e in events)

        revived = await api.get("nodes", "bad")  # the kubelet is back and posts Ready
        revived["status"]["conditions"] = [{**ready_of(revived), "status": "True", "reason": "KubeletReady",
                                            "message": "kubelet is posting ready status",
                                            "lastHeartbeatTime": _micro_now()[:19] + "Z"}]
        await api.update_status("nodes", revived)
        back = asyncio.create_task(renew_existing(api, "bad"))
        try:
            async def untainted() -> bool:
                node = await api.get("nodes", "bad")
                return not [t for t in node["spec"].get("taints") or [] if t["key"] == UNREACHABLE]
            await eventually(untainted, timeout=30, what="the taint removed")
        finally:
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await back


async def renew_existing(api: ApiClient, node: str) -> None:
    while True:
        lease = await api.get("leases", node, "kube-node-lease")
        lease["spec"]["renewTime"] = _micro_now()
        with contextlib.suppress(Conflict):
            await api.update("leases", lease)
        await asyncio.sleep(1.0)
