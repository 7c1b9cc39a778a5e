"""The scheduler on a real master: pods without a node are bound to nodes that fit them (Kubernetes' documented
filters: resources, nodeSelector, taints and tolerations), and one that fits nowhere says why, as kube-scheduler
words it, until the cluster changes. Nodes are made by hand (tests/integration/kube.py); each test removes its own,
so the "0/N nodes" counts in messages are the test's."""
from __future__ import annotations

import asyncio

from api.client import ApiClient
from tests.integration.cluster import PATIENT_CONTROL_PLANE, eventually
from tests.integration.kube import make_node, namespace_and_nodes

CONTROL_PLANE = PATIENT_CONTROL_PLANE  # for conftest's cp: the nodes here have no kubelet


def pod(name: str, *, cpu: str | None = None, **spec: object) -> dict:
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": resources}], **spec}}


async def node_of(api: ApiClient, ns: str, name: str) -> str | None:
    return (await api.get("pods", name, ns))["spec"].get("nodeName")


async def event(api: ApiClient, ns: str, pod_name: str, reason: str) -> dict | None:
    events, _ = await api.list("events", ns)
    return next((e for e in events if e["involvedObject"]["name"] == pod_name and e["reason"] == reason), None)


async def unschedulable(api: ApiClient, ns: str, name: str, message: str) -> bool:
    """FailedScheduling with exactly `message`, and PodScheduled=False/Unschedulable saying the same."""
    p = await api.get("pods", name, ns)
    cond = next((c for c in p["status"].get("conditions") or [] if c["type"] == "PodScheduled"), {})
    failed = await event(api, ns, name, "FailedScheduling")
    return (not p["spec"].get("nodeName") and failed is not None and failed["message"] == message
            and failed["type"] == "Warning" and failed["source"]["component"] == "default-scheduler"
            and (cond.get("status"), cond.get("reason"), cond.get("message")) == ("False", "Unschedulable", message))


async def test_pods_are_bound_to_ready_nodes_with_a_scheduled_event(cp):
    """Pods land on Ready nodes only, spread by least-allocated; each gets `Scheduled` and PodScheduled=True."""
    async with namespace_and_nodes(cp, "sched") as (api, ns, nodes):
        nodes += [f"{ns}-a", f"{ns}-b", f"{ns}-down"]
        await make_node(api, nodes[0])
        await make_node(api, nodes[1])
        await make_node(api, nodes[2], ready=False)
        names = [f"p{i}" for i in range(6)]
        for name in names:
            await api.create("pods", pod(name, cpu="500m"), ns)

        async def all_bound():
            placed = [await node_of(api, ns, n) for n in names]
            return placed if all(placed) else None
        placed = await eventually(all_bound, timeout=30, what="every pod bound")
        assert set(placed) == set(nodes[:2]), placed  # both Ready nodes used, the NotReady one never
        assert placed.count(nodes[0]) == 3, placed  # least allocated: 3 and 3
        scheduled = await eventually(lambda: event(api, ns, "p0", "Scheduled"), timeout=20, what="Scheduled event")
        assert scheduled["message"] == f"Successfully assigned {ns}/p0 to {placed[0]}"
        assert scheduled["type"] == "Normal" and scheduled["source"]["component"] == "default-scheduler"
        p0 = await api.get("pods", "p0", ns)
        assert {"type": "PodScheduled", "status": "True"}.items() <= next(
            c for c in p0["status"]["conditions"] if c["type"] == "PodScheduled").items()


async def test_requests_never_exceed_allocatable_and_a_freed_node_takes_the_waiting_pod(cp):
    """3 pods of 1 cpu on a 2-cpu node: two run, the third stays Pending with FailedScheduling
    ("0/1 nodes are available: 1 Insufficient cpu.") until one of the others is deleted."""
    async with namespace_and_nodes(cp, "sched") as (api, ns, nodes):
        nodes.append(f"{ns}-small")
        await make_node(api, nodes[0], cpu="2")
        for name in ("a", "b", "c"):
            await api.create("pods", pod(name, cpu="1"), ns)

        async def two_bound_one_waiting():
            placed = {n: await node_of(api, ns, n) for n in ("a", "b", "c")}
            waiting = [n for n, node in placed.items() if not node]
            if len(waiting) == 1 and await unschedulable(api, ns, waiting[0],
                                                         "0/1 nodes are available: 1 Insufficient cpu."):
                return waiting[0]
            return None
        waiting = await eventually(two_bound_one_waiting, timeout=30, what="two pods bound and one unschedulable")
        victim = next(n for n in ("a", "b", "c") if n != waiting)
        await api.delete("pods", victim, ns, grace_period_seconds=0)  # as its kubelet would confirm
        await eventually(lambda: node_of(api, ns, waiting), timeout=30, what="the waiting pod bound once room freed")


async def test_many_pods_at_once_never_overcommit_a_node(cp):
    """40 pods of 1 cpu created together on 4 nodes of 8 cpu: bindings run concurrently, yet exactly 32 are bound,
    8 per node, and 8 wait as unschedulable."""
    async with namespace_and_nodes(cp, "sched") as (api, ns, nodes):
        nodes += [f"{ns}-{i}" for i in range(4)]
        for name in nodes:
            await make_node(api, name, cpu="8")
        await asyncio.gather(*(api.create("pods", pod(f"p{i:02d}", cpu="1"), ns) for i in range(40)))

        async def settled():
            pods, _ = await api.list("pods", ns)
            placed = [p["spec"].get("nodeName") for p in pods]
            waiting = [p for p in pods if not p["spec"].get("nodeName") and any(
                c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                for c in p["status"].get("conditions") or [])]
            return placed if len(waiting) == 8 and sum(1 for n in placed if n) == 32 else None
        placed = await eventually(settled, timeout=60, what="32 pods bound and 8 unschedulable")
        assert sorted(placed.count(n) for n in nodes) == [8, 8, 8, 8], placed


async def test_node_selector_and_taints(cp):
    """nodeSelector picks the labelled node; a NoSchedule taint keeps out pods without a toleration."""
    async with namespace_and_nodes(cp, "sched") as (api, ns, nodes):
        plain, ssd, gpu = f"{ns}-plain", f"{ns}-ssd", f"{ns}-gpu"
        nodes += [plain, ssd, gpu]
        await make_node(api, plain)
        await make_node(api, ssd, labels={"disk": "ssd"})
        await make_node(api, gpu, taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
        on_gpu = {"kubernetes.io/hostname": gpu}
        await api.create("pods", pod("wants-ssd", nodeSelector={"disk": "ssd"}), ns)
        await api.create("pods", pod("tolerant", nodeSelector=on_gpu, tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]), ns)
        await api.create("pods", pod("intolerant", nodeSelector=on_gpu), ns)
        for i in range(4):
            await api.create("pods", pod(f"any-{i}"), ns)
        await eventually(lambda: _is(node_of(api, ns, "wants-ssd"), ssd), timeout=30, what="wants-ssd on the ssd node")
        await eventually(lambda: _is(node_of(api, ns, "tolerant"), gpu), timeout=30, what="tolerant on the gpu node")
        for i in range(4):
            assert await eventually(lambda: node_of(api, ns, f"any-{i}"), timeout=30) in (plain, ssd)
        await eventually(lambda: unschedulable(
            api, ns, "intolerant", "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                                   "2 node(s) didn't match Pod's node affinity/selector."),
            timeout=30, what="intolerant unschedulable with the taint named")


async def test_a_pending_pod_is_scheduled_when_a_fitting_node_joins(cp):
    """A pod that fits nowhere waits (FailedScheduling) and is bound as soon as a node it fits is added."""
    async with namespace_and_nodes(cp, "sched") as (api, ns, nodes):
        nodes.append(f"{ns}-old")
        await make_node(api, nodes[0])
        await api.create("pods", pod("picky", nodeSelector={"pool": ns}), ns)
        await eventually(lambda: unschedulable(
            api, ns, "picky", "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
            timeout=30, what="picky unschedulable")
        nodes.append(f"{ns}-new")
        await make_node(api, nodes[1], labels={"pool": ns})
        await eventually(lambda: _is(node_of(api, ns, "picky"), nodes[1]), timeout=30, what="picky on the new node")


async def _is(value, expected) -> bool:
    return await value == expected
