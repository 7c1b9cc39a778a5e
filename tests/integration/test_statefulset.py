"""The StatefulSet controller on a real master, as Kubernetes documents StatefulSets: OrderedReady makes web-0, then
web-1 only after web-0 is Running and Ready, and so on; scaling down removes the highest ordinal first; a Failed pod
is replaced under the same name; a rolling update goes from the highest ordinal down to the partition; and the real
`kubectl rollout status` finishes. The test plays the kubelet of its one node: the scheduler binds the pods there,
and the test writes their status by hand or has kube.FakeKubelet do it, and confirms their graceful deletion."""
from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest

from api.client import ApiClient
from tests.integration.cluster import PATIENT_CONTROL_PLANE, eventually
from tests.integration.kube import FakeKubelet, Kubectl, maybe_get, namespace, set_phase, status_is

Obj = dict[str, Any]
CONTROL_PLANE = PATIENT_CONTROL_PLANE  # for conftest's cp: the node here has no kubelet


def statefulset(name: str, replicas: int, *, image: str = "nginx:1.25", partition: int = 0,
                policy: str = "OrderedReady") -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": name}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


async def pod_names(api: ApiClient, ns: str) -> list[str]:
    pods, _ = await api.list("pods", ns)
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


async def test_ordered_ready_creates_each_pod_after_the_previous_is_ready(cp):
    """OrderedReady: web-1 is created only once web-0 is Running and Ready; identity and events as Kubernetes'."""
    async with (namespace(cp, "sts-order", node="sts-node") as (api, ns),
                FakeKubelet(api, ns, start=False) as kubelet):
        await api.create("statefulsets", statefulset("web", 3), ns)
        await set_phase(api, ns, "web-0", "Running", ready=False)
        await eventually(lambda: status_is(api, ns, "web", replicas=1, readyReplicas=0), timeout=30,
                         what="status of a running, unready web-0")
        await asyncio.sleep(1.0)  # give a wrong controller the chance to make web-1 early
        assert await pod_names(api, ns) == ["web-0"]

        for ordinal in range(3):
            await set_phase(api, ns, f"web-{ordinal}", "Running")
        status = await eventually(lambda: status_is(api, ns, "web", replicas=3, readyReplicas=3), timeout=30,
                                  what="3 ready replicas")
        assert status["currentRevision"] == status["updateRevision"] and status["currentReplicas"] == 3

        # in the order the API saw it: each pod was added after its predecessor had been Ready
        added = [i for i, (event, _, _) in enumerate(kubelet.seen) if event == "ADDED"]
        for k in (1, 2):
            at = next(i for i in added if kubelet.seen[i][1] == f"web-{k}")
            assert any(name == f"web-{k - 1}" and ready for _, name, ready in kubelet.seen[:at]), kubelet.seen

        pod = await api.get("pods", "web-1", ns)
        assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "web"
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
        assert pod["metadata"]["labels"]["controller-revision-hash"] == status["updateRevision"]
        revisions, _ = await api.list("controllerrevisions", ns)
        assert [r["metadata"]["name"] for r in revisions] == [status["updateRevision"]]
        events, _ = await api.list("events", ns)
        messages = {e["message"] for e in events if e["reason"] == "SuccessfulCreate"}
        assert "create Pod web-0 in StatefulSet web successful" in messages


async def test_scale_down_in_reverse_and_failed_pod_replaced(cp):
    """Scaling 3 -> 1 deletes web-2, then web-1; a Failed pod is deleted and made again under its name."""
    async with namespace(cp, "sts-down", node="sts-node") as (api, ns), FakeKubelet(api, ns) as kubelet:
        await api.create("statefulsets", statefulset("db", 3), ns)
        await eventually(lambda: status_is(api, ns, "db", replicas=3, readyReplicas=3), timeout=40, what="3 ready")

        failed = await set_phase(api, ns, "db-1", "Failed")

        async def replaced() -> bool:
            pod = await maybe_get(api, "pods", "db-1", ns)
            return pod is not None and pod["metadata"]["uid"] != failed["metadata"]["uid"] and pod["status"].get("phase") == "Running"
        await eventually(replaced, timeout=30, what="db-1 made again")

        await api.patch("statefulsets", "db", {"spec": {"replicas": 1}}, ns)
        await eventually(lambda: status_is(api, ns, "db", replicas=1, readyReplicas=1), timeout=30, what="1 left")
        assert await pod_names(api, ns) == ["db-0"]
        order = [name for event, name, _ in kubelet.seen if event == "DELETED"]
        assert order == ["db-1", "db-2", "db-1"], order  # the Failed one, then the scale down


async def test_rolling_update_with_partition_then_rollout_status(cp, tmp_path):
    """An image change with partition 1 replaces db-2 then db-1 and keeps db-0 at the old revision; with the
    partition at 0 the rollout completes and `kubectl rollout status` finishes."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubectl = Kubectl(tmp_path, cp)
    async with namespace(cp, "sts-roll", node="sts-node") as (api, ns), FakeKubelet(api, ns) as kubelet:
        await api.create("statefulsets", statefulset("web", 3, partition=1), ns)
        first = await eventually(lambda: status_is(api, ns, "web", readyReplicas=3), timeout=40, what="3 ready")
        old = first["updateRevision"]
        kubelet.seen.clear()

        await api.patch("statefulsets", "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:1.26"}]}}}}, ns, patch_type="strategic")
        status = await eventually(lambda: status_is(api, ns, "web", updatedReplicas=2, readyReplicas=3),
                                  timeout=40, what="2 pods updated")
        assert status["currentRevision"] == old != status["updateRevision"]
        revision = {}
        for name in ("web-0", "web-1", "web-2"):
            pod = await api.get("pods", name, ns)
            revision[name] = pod["metadata"]["labels"]["controller-revision-hash"]
            assert pod["spec"]["containers"][0]["image"] == ("nginx:1.25" if name == "web-0" else "nginx:1.26")
        assert revision == {"web-0": old, "web-1": status["updateRevision"], "web-2": status["updateRevision"]}
        order = [name for event, name, _ in kubelet.seen if event == "DELETED"]
        assert order == ["web-2", "web-1"]
        after = kubelet.seen[kubelet.seen.index(("DELETED", "web-2", True)) + 1:]
        touched_web1 = next(i for i, (_, name, _) in enumerate(after) if name == "web-1")
        assert ("MODIFIED", "web-2", True) in after[:touched_web1], kubelet.seen  # web-1 went after web-2 was Ready
        _, out, _ = await kubectl.run("rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        assert "partitioned roll out complete: 2 new pods have been updated" in out, out

        await api.patch("statefulsets", "web", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, ns)
        _, out, _ = await kubectl.run("rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        assert "3 new pods have been updated" in out, out
        done = await eventually(lambda: status_is(api, ns, "web", updatedReplicas=3, currentReplicas=3),
                                timeout=30, what="rollout done")
        assert done["currentRevision"] == done["updateRevision"]
        revisions, _ = await api.list("controllerrevisions", ns)
        assert sorted(r["revision"] for r in revisions) == [1, 2]

        _, out, _ = await kubectl.run("rollout", "history", "sts/web", "-n", ns)
        assert "REVISION" in out, out
        _, out, _ = await kubectl.run("rollout", "undo", "sts/web", "-n", ns)
        assert "rolled back" in out, out
        back = await eventually(lambda: status_is(api, ns, "web", updatedReplicas=3, currentRevision=old,
                                                  updateRevision=old, readyReplicas=3),
                                timeout=40, what="rolled back to the first revision")
        pods, _ = await api.list("pods", ns)
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.25"}, back
        revisions, _ = await api.list("controllerrevisions", ns)
        assert {r["metadata"]["name"]: r["revision"] for r in revisions}[old] == 3  # renumbered, not made again


async def test_parallel_creates_all_at_once_and_adopts_an_orphan(cp):
    """podManagementPolicy Parallel: every pod is created without waiting for the others to be Ready; a pod that
    has no owner, is named as a member and matches the selector is adopted rather than made again."""
    async with namespace(cp, "sts-par", node="sts-node") as (api, ns):
        orphan = await api.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "par-1", "labels": {"app": "par"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, ns)
        sts = await api.create("statefulsets", statefulset("par", 3, policy="Parallel"), ns)
        await eventually(lambda: _equal(pod_names(api, ns), ["par-0", "par-1", "par-2"]), timeout=30,
                         what="3 pods, none ready")

        async def adopted() -> bool:
            pod = await api.get("pods", "par-1", ns)
            return [r["uid"] for r in pod["metadata"].get("ownerReferences") or []] == [sts["metadata"]["uid"]]
        await eventually(adopted, timeout=30, what="par-1 adopted")
        assert (await api.get("pods", "par-1", ns))["metadata"]["uid"] == orphan["metadata"]["uid"]


async def _equal(awaitable: Any, want: Any) -> bool:
    return await awaitable == want
