"""The StatefulSet controller on a real master, as Kubernetes documents StatefulSets: OrderedReady makes web-0, then
web-1 only after web-0 is Running and Ready, and so on; scaling down removes the highest ordinal first; a Failed pod
is replaced under the same name; a rolling update goes from the highest ordinal down to the partition; and the real
`kubectl rollout status` finishes. plays the kubelet of its one node: the scheduler binds the pods there, and the test writes their status by hand
(tests/integration/kube.py) and confirms their graceful deletion."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
from typing import Any, AsyncIterator

import pytest

from api.client import ApiClient, ApiClientError, Conflict, NotFound
from raftkube import kubeconfig
from tests.integration.cluster import Cluster, eventually
from tests.integration.kube import make_node, set_pod_phase

Obj = dict[str, Any]
_names = itertools.count()


# Quick leader election; a node grace period long enough that hand-made nodes (no kubelet) stay Ready.
CONTROL_PLANE = ("--control-plane-flags", "--leader-elect-lease-duration 3 --leader-elect-renew-deadline 2 "
                                          "--leader-elect-retry-period 0.5 --node-monitor-grace-period 3600")


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("sts")), 1, CONTROL_PLANE)
    yield c
    c.stop()


@contextlib.asynccontextmanager
async def namespace(cp: Cluster, prefix: str) -> AsyncIterator[tuple[ApiClient, str]]:
    api = cp.api()
    ns = f"{prefix}-{next(_names)}"
    await api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    with contextlib.suppress(Conflict):  # the module's one node, for the scheduler to bind every pod to
        await make_node(api, "sts-node")
    try:
        yield api, ns
    finally:
        await api.close()


class FakeKubelet:
    """Plays every kubelet for one namespace: new pods become Running (and Ready, unless told otherwise), and a
    pod marked for deletion on a node is confirmed with grace 0. Also records what it saw, in order."""

    def __init__(self, api: ApiClient, ns: str, *, auto_ready: bool = True) -> None:
        self.api, self.ns, self.auto_ready = api, ns, auto_ready
        self.seen: list[tuple[str, str, bool]] = []  # (event, pod name, ready)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "FakeKubelet":
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async for event, pod in self.api.watch("pods", self.ns):
            for p in pod if event == "RELIST" else [pod]:
                await self._handle(event, p)

    async def _handle(self, event: str, pod: Obj) -> None:
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (pod.get("status") or {}).get("conditions") or [])
        self.seen.append((event, pod["metadata"]["name"], ready))
        if event == "DELETED":
            return
        try:
            if pod["metadata"].get("deletionTimestamp") and pod["spec"].get("nodeName"):
                await self.api.delete("pods", pod["metadata"]["name"], self.ns, grace_period_seconds=0)
            elif (self.auto_ready and pod["spec"].get("nodeName")
                  and (pod.get("status") or {}).get("phase", "Pending") == "Pending"):
                await set_pod_phase(self.api, pod, "Running", ready=True)
        except ApiClientError:
            pass  # changed or gone meanwhile: the watch brings the next state


async def set_phase(api: ApiClient, ns: str, name: str, phase: str, *, ready: bool = True) -> Obj:
    """Once the pod is bound, write its status as its kubelet would (again if someone wrote in between)."""
    async def attempt() -> Obj | None:
        pod = await maybe_get(api, "pods", name, ns)
        if pod is None or not pod["spec"].get("nodeName"):
            return None
        try:
            return await set_pod_phase(api, pod, phase, ready=ready)
        except Conflict:
            return None
    return await eventually(attempt, timeout=30, what=f"{phase} status written on {name}")


async def kubectl(cp: Cluster, home: str, *args: str, timeout: float = 90) -> tuple[int, str]:
    """The real kubectl with a private HOME and the cluster's kubeconfig, without blocking the event loop."""
    config = kubeconfig.write(os.path.join(home, "kubeconfig"), cp.info["masters"][0]["api"], cp.token, cp.ca)
    proc = await asyncio.create_subprocess_exec("kubectl", *args, env={**os.environ, "HOME": home,
                                                                       "KUBECONFIG": config},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode()


def statefulset(name: str, replicas: int, *, image: str = "nginx:1.25", partition: int = 0,
                policy: str = "OrderedReady") -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": name}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


async def maybe_get(api: ApiClient, kind: str, name: str, ns: str) -> Obj | None:
    try:
        return await api.get(kind, name, ns)
    except NotFound:
        return None


async def pod_names(api: ApiClient, ns: str) -> list[str]:
    pods, _ = await api.list("pods", ns)
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


async def status_is(api: ApiClient, ns: str, name: str, kind: str = "statefulsets", **want: Any) -> Obj | None:
    """The object's status once it has observed the latest spec and has the `want` fields, else None."""
    obj = await api.get(kind, name, ns)
    status = obj.get("status") or {}
    ok = status.get("observedGeneration") == obj["metadata"]["generation"] and all(
        status.get(k) == v for k, v in want.items())
    return status if ok else None


async def test_ordered_ready_creates_each_pod_after_the_previous_is_ready(cp):
    """OrderedReady: web-1 is created only once web-0 is Running and Ready; identity and events as Kubernetes'."""
    async with namespace(cp, "sts-order") as (api, ns), FakeKubelet(api, ns, auto_ready=False) as kubelet:
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
    async with namespace(cp, "sts-down") as (api, ns), FakeKubelet(api, ns) as kubelet:
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
    async with namespace(cp, "sts-roll") as (api, ns), FakeKubelet(api, ns) as kubelet:
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
        code, out = await kubectl(cp, str(tmp_path), "rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        assert code == 0 and "partitioned roll out complete: 2 new pods have been updated" in out, out

        await api.patch("statefulsets", "web", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, ns)
        code, out = await kubectl(cp, str(tmp_path), "rollout", "status", "sts/web", "-n", ns, "--timeout=60s")
        assert code == 0 and "3 new pods have been updated" in out, out
        done = await eventually(lambda: status_is(api, ns, "web", updatedReplicas=3, currentReplicas=3),
                                timeout=30, what="rollout done")
        assert done["currentRevision"] == done["updateRevision"]
        revisions, _ = await api.list("controllerrevisions", ns)
        assert sorted(r["revision"] for r in revisions) == [1, 2]

        code, out = await kubectl(cp, str(tmp_path), "rollout", "history", "sts/web", "-n", ns)
        assert code == 0 and "REVISION" in out, out
        code, out = await kubectl(cp, str(tmp_path), "rollout", "undo", "sts/web", "-n", ns)
        assert code == 0 and "rolled back" in out, out
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
    async with namespace(cp, "sts-par") as (api, ns):
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
