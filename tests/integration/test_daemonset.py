"""The DaemonSet controller on a real master, as Kubernetes documents DaemonSets: one pod on every eligible node,
added when a node joins, removed when it leaves or stops matching the nodeSelector, kept off a node with a taint it
does not tolerate; a rolling update replaces the pods and the real `kubectl rollout status` finishes. Nodes are made
by hand (tests/integration/kube.py) and deleted by each test; the test plays their kubelets (FakeKubelet)."""
from __future__ import annotations

import contextlib
import shutil
from typing import Any, AsyncIterator

import pytest

from api.client import ApiClient
from tests.integration import kube
from tests.integration.cluster import PATIENT_CONTROL_PLANE, Cluster, eventually
from tests.integration.kube import FakeKubelet, Kubectl, make_node, status_is

Obj = dict[str, Any]
CONTROL_PLANE = PATIENT_CONTROL_PLANE  # for conftest's cp: the nodes here have no kubelet


@contextlib.asynccontextmanager
async def namespace_and_nodes(cp: Cluster) -> AsyncIterator[tuple[ApiClient, str, list[str]]]:
    """kube.namespace_and_nodes, and the test's DaemonSets deleted before its nodes."""
    async with kube.namespace_and_nodes(cp, "ds") as (api, ns, nodes):
        try:
            yield api, ns, nodes
        finally:
            for ds in (await api.list("daemonsets", ns))[0]:
                await api.delete("daemonsets", ds["metadata"]["name"], ns)


def daemonset(name: str, *, image: str = "agent:1", node_selector: dict | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": image}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


async def pods_by_node(api: ApiClient, ns: str) -> dict[str, str]:
    """node -> pod name, for the pods not on their way out (one per node, or the test fails)."""
    pods, _ = await api.list("pods", ns)
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    out = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in live}
    assert len(out) == len(live), f"two daemon pods on one node: {[p['metadata']['name'] for p in live]}"
    return out


async def on_nodes(api: ApiClient, ns: str, want: set[str]) -> dict[str, str] | None:
    got = await pods_by_node(api, ns)
    return got if set(got) == want else None


async def test_daemon_pods_follow_nodes_joining_and_leaving_and_taints(cp):
    """A pod per node, bound with the node affinity Kubernetes gives daemon pods; a joining node gets one, a
    deleted node's goes, a node with an untolerated NoSchedule taint gets none."""
    async with namespace_and_nodes(cp) as (api, ns, nodes), FakeKubelet(api, ns):
        for name in ("dsa", "dsb"):
            await make_node(api, name)
            nodes.append(name)
        await api.create("daemonsets", daemonset("agent"), ns)
        placed = await eventually(lambda: on_nodes(api, ns, {"dsa", "dsb"}), timeout=30, what="a pod on each node")
        pod = await api.get("pods", placed["dsa"], ns)
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchFields"] == [
            {"key": "metadata.name", "operator": "In", "values": ["dsa"]}]
        assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} in \
            pod["spec"]["tolerations"]
        await eventually(lambda: status_is(api, ns, "agent", "daemonsets", desiredNumberScheduled=2, currentNumberScheduled=2,
                                           numberReady=2, numberAvailable=2, updatedNumberScheduled=2,
                                           numberMisscheduled=0), timeout=30, what="status of 2 ready")

        await make_node(api, "dsc")
        nodes.append("dsc")
        await make_node(api, "dst", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
        nodes.append("dst")
        await eventually(lambda: on_nodes(api, ns, {"dsa", "dsb", "dsc"}), timeout=30, what="a pod on the new node")

        await api.delete("nodes", "dsb")
        await eventually(lambda: on_nodes(api, ns, {"dsa", "dsc"}), timeout=30, what="the deleted node's pod gone")
        await eventually(lambda: status_is(api, ns, "agent", "daemonsets", desiredNumberScheduled=2, numberReady=2),
                         timeout=30, what="status of 2 after a node left")
        events, _ = await api.list("events", ns)
        assert any(e["reason"] == "SuccessfulCreate" and e["message"].startswith("Created pod: agent-")
                   for e in events)


async def test_node_selector_follows_node_labels(cp):
    """With a nodeSelector, only matching nodes run the pod; labelling a node adds one, unlabelling removes it."""
    async with namespace_and_nodes(cp) as (api, ns, nodes), FakeKubelet(api, ns):
        await make_node(api, "edge1", labels={"role": "edge"})
        await make_node(api, "core1")
        nodes += ["edge1", "core1"]
        await api.create("daemonsets", daemonset("edge", node_selector={"role": "edge"}), ns)
        await eventually(lambda: on_nodes(api, ns, {"edge1"}), timeout=30, what="a pod on the edge node only")

        await api.patch("nodes", "core1", {"metadata": {"labels": {"role": "edge"}}})
        await eventually(lambda: on_nodes(api, ns, {"edge1", "core1"}), timeout=30, what="a pod on the labelled node")
        await api.patch("nodes", "edge1", {"metadata": {"labels": {"role": None}}})
        await eventually(lambda: on_nodes(api, ns, {"core1"}), timeout=30, what="the unlabelled node's pod gone")
        await eventually(lambda: status_is(api, ns, "edge", "daemonsets", desiredNumberScheduled=1, currentNumberScheduled=1,
                                           numberMisscheduled=0, numberReady=1), timeout=30, what="status of 1")


async def test_rolling_update_and_rollout_status(cp, tmp_path):
    """A new image replaces every pod (maxUnavailable 1) and `kubectl rollout status ds/...` finishes."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubectl = Kubectl(tmp_path, cp)
    async with namespace_and_nodes(cp) as (api, ns, nodes), FakeKubelet(api, ns):
        for name in ("roll1", "roll2", "roll3"):
            await make_node(api, name)
            nodes.append(name)
        await api.create("daemonsets", daemonset("agent"), ns)
        _, out, _ = await kubectl.run("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s")
        assert 'daemon set "agent" successfully rolled out' in out, out
        before = await pods_by_node(api, ns)

        await api.patch("daemonsets", "agent", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "agent:2"}]}}}}, ns, patch_type="strategic")
        _, out, _ = await kubectl.run("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s")
        assert 'daemon set "agent" successfully rolled out' in out, out

        after = await pods_by_node(api, ns)
        assert set(after) == set(before) and not set(after.values()) & set(before.values())
        pods, _ = await api.list("pods", ns)
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:2"}
        revisions, _ = await api.list("controllerrevisions", ns)
        assert sorted(r["revision"] for r in revisions) == [1, 2]
        newest = max(revisions, key=lambda r: r["revision"])
        assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == {
            newest["metadata"]["labels"]["controller-revision-hash"]}

        _, out, _ = await kubectl.run("rollout", "undo", "ds/agent", "-n", ns)
        assert "rolled back" in out, out
        await kubectl.run("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s")
        pods, _ = await api.list("pods", ns)
        assert {p["spec"]["containers"][0]["image"] for p in pods if not p["metadata"].get("deletionTimestamp")} \
            == {"agent:1"}
