"""The ReplicaSet controller on a real master (Kubernetes' documented ReplicaSet behaviour): it keeps exactly
spec.replicas active pods through quick scale changes (expectations guard the lagging cache), replaces a deleted
pod, deletes not-ready pods first when scaling down, adopts a matching orphan and releases a pod whose labels stop
matching. Pods are bound by the scheduler to a hand-made node; the test plays the kubelet (kube.set_pod_phase)."""
from __future__ import annotations

import asyncio
import contextlib

from api.client import ApiClient, NotFound
from tests.integration.cluster import PATIENT_CONTROL_PLANE, eventually
from tests.integration.kube import namespace, set_pod_phase

CONTROL_PLANE = PATIENT_CONTROL_PLANE  # for conftest's cp: the node here has no kubelet


def replicaset(name: str, replicas: int, **labels: str) -> dict:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}


async def active_pods(api: ApiClient, ns: str) -> list[dict]:
    pods, _ = await api.list("pods", ns)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


async def settled(api: ApiClient, ns: str, name: str, n: int) -> list[dict] | None:
    """The active pods once the ReplicaSet has observed its spec and has exactly n of them."""
    rs = await api.get("replicasets", name, ns)
    pods = await active_pods(api, ns)
    status = rs.get("status") or {}
    ok = (status.get("observedGeneration") == rs["metadata"]["generation"] and status.get("replicas") == n
          and len(pods) == n)
    return pods if ok else None


async def test_exactly_n_pods_through_quick_scale_changes(cp):
    """Scaling 3 -> 7 -> 2 -> 5 in quick succession ends with 5 pods and never has more than 7 at once."""
    async with namespace(cp, "rs", node="rs-node") as (api, ns):
        most = 0

        async def watch() -> None:
            nonlocal most
            live: set[str] = set()
            async for kind, obj in api.watch("pods", ns):
                for p in (obj if kind == "RELIST" else [obj]):
                    name = p["metadata"]["name"]
                    if kind == "DELETED" or p["metadata"].get("deletionTimestamp"):
                        live.discard(name)
                    else:
                        live.add(name)
                most = max(most, len(live))
        watcher = asyncio.create_task(watch())
        await api.create("replicasets", replicaset("web", 3), ns)
        for n in (7, 2, 5):
            await api.patch("replicasets", "web", {"spec": {"replicas": n}}, ns, subresource="scale")
        pods = await eventually(lambda: settled(api, ns, "web", 5), timeout=30, what="5 pods")
        assert all(p["metadata"]["generateName"] == "web-" for p in pods)
        assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)
        watcher.cancel()
        assert most <= 7
        events, _ = await api.list("events", ns)
        assert any(e["reason"] == "SuccessfulCreate" and e["message"].startswith("Created pod: web-") for e in events)


async def test_a_deleted_pod_is_replaced_and_status_counts_ready_pods(cp):
    async with namespace(cp, "rs", node="rs-node") as (api, ns):
        await api.create("replicasets", replicaset("web", 2), ns)
        pods = await eventually(lambda: settled(api, ns, "web", 2), timeout=30, what="2 pods")
        for p in pods:
            await eventually(lambda: node_of(api, ns, p["metadata"]["name"]), timeout=30, what="bound")
            await set_pod_phase(api, p, "Running", ready=True)

        async def counted() -> bool:
            st = (await api.get("replicasets", "web", ns)).get("status") or {}
            return (st.get("readyReplicas"), st.get("availableReplicas"), st.get("fullyLabeledReplicas")) == (2, 2, 2)
        await eventually(counted, timeout=30, what="2 ready and available")
        victim = pods[0]["metadata"]["name"]
        await api.delete("pods", victim, ns)
        fresh = await eventually(lambda: settled(api, ns, "web", 2), timeout=30, what="a replacement")
        assert victim not in {p["metadata"]["name"] for p in fresh}


async def node_of(api: ApiClient, ns: str, name: str) -> str | None:
    return (await api.get("pods", name, ns))["spec"].get("nodeName")


async def test_scale_down_deletes_not_ready_pods_first(cp):
    async with namespace(cp, "rs", node="rs-node") as (api, ns):
        await api.create("replicasets", replicaset("web", 4), ns)
        pods = await eventually(lambda: settled(api, ns, "web", 4), timeout=30, what="4 pods")
        ready = sorted(p["metadata"]["name"] for p in pods[:2])
        for i, p in enumerate(pods):
            await eventually(lambda: node_of(api, ns, p["metadata"]["name"]), timeout=30, what="bound")
            await set_pod_phase(api, p, "Running", ready=i < 2)
        await api.patch("replicasets", "web", {"spec": {"replicas": 2}}, ns, subresource="scale")
        left = await eventually(lambda: settled(api, ns, "web", 2), timeout=30, what="2 pods")
        assert sorted(p["metadata"]["name"] for p in left) == ready


async def test_orphans_are_adopted_and_pods_that_stop_matching_are_released(cp):
    async with namespace(cp, "rs", node="rs-node") as (api, ns):
        orphan = await api.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                           "metadata": {"name": "orphan", "labels": {"app": "web"}},
                                           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}, ns)
        # A ReplicaSet made before the controller's informer has the pod rightly makes two of its own (as upstream's
        # would). Bound means the scheduler's informer has it; the controller-manager's, on the same kind of watch,
        # then all but surely has it too (the full suite once lost that race when the ReplicaSet came at once).
        await eventually(lambda: node_of(api, ns, "orphan"), timeout=30, what="the orphan bound")
        rs = await api.create("replicasets", replicaset("web", 2), ns)
        pods = await eventually(lambda: settled(api, ns, "web", 2), timeout=30, what="2 pods")
        assert "orphan" in {p["metadata"]["name"] for p in pods}
        adopted = await api.get("pods", "orphan", ns)
        assert adopted["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
        await api.patch("pods", "orphan", {"metadata": {"labels": {"app": "other"}}}, ns)

        async def released() -> bool:
            p = await api.get("pods", "orphan", ns)
            owned = [q for q in await active_pods(api, ns) if q["metadata"].get("ownerReferences")]
            return not p["metadata"].get("ownerReferences") and len(owned) == 2
        await eventually(released, timeout=30, what="released and replaced")
        with contextlib.suppress(NotFound):
            await api.delete("replicasets", "web", ns)
