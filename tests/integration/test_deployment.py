"""The Deployment controller on a real master, driven by the real kubectl as Kubernetes documents it: a rolling
update from image A to B never has more than replicas + maxSurge pods nor fewer than replicas - maxUnavailable
ready ones; `rollout status`, `history`, `undo` (kubectl copies the old ReplicaSet's template back), `restart` and
`scale` work; old ReplicaSets are cleaned to revisionHistoryLimit; Recreate stops every old pod before starting
new ones; a paused Deployment does not roll; a stuck rollout fails at progressDeadlineSeconds.
The scheduler binds pods to a hand-made node and the test plays its kubelet (kube.FakeKubelet)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from typing import AsyncIterator

import pytest

from api.client import ApiClient
from tests.integration import kube
from tests.integration.cluster import PATIENT_CONTROL_PLANE, Cluster, eventually
from tests.integration.kube import FakeKubelet, Kubectl

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
CONTROL_PLANE = PATIENT_CONTROL_PLANE  # for conftest's cp: the node here has no kubelet
HASH = "pod-template-hash"


@contextlib.asynccontextmanager
async def namespace(cp: Cluster, tmp_path, *, ready: bool = True) -> AsyncIterator[tuple[ApiClient, Kubectl]]:
    """A fresh namespace, a node, a kubelet for it (its pods Running, Ready or not), and kubectl pointed at it."""
    async with kube.namespace(cp, "deploy", node="deploy-node") as (api, ns), FakeKubelet(api, ns, ready=ready):
        yield api, Kubectl(tmp_path, cp, namespace=ns)


def deployment(name: str, replicas: int, image: str, *, strategy: dict | None = None, **spec: object) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


class PodCounter:
    """Watches the namespace's pods: the most active (not terminating) pods and the fewest ready ones seen, and
    whether pods of two templates were ever active together."""

    def __init__(self, api: ApiClient, ns: str) -> None:
        self.live: dict[str, dict] = {}
        self.most_active, self.fewest_ready, self.mixed = 0, 10 ** 6, False
        self.task = asyncio.create_task(self.run(api, ns))

    async def run(self, api: ApiClient, ns: str) -> None:
        async for kind, obj in api.watch("pods", ns):
            for pod in obj if kind == "RELIST" else [obj]:
                name = pod["metadata"]["name"]
                if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                    self.live.pop(name, None)
                else:
                    self.live[name] = pod
            ready = [p for p in self.live.values() if any(c["type"] == "Ready" and c["status"] == "True"
                                                         for c in (p.get("status") or {}).get("conditions") or [])]
            self.most_active = max(self.most_active, len(self.live))
            self.fewest_ready = min(self.fewest_ready, len(ready))
            self.mixed |= len({p["metadata"]["labels"].get(HASH) for p in self.live.values()}) > 1

    def stop(self) -> None:
        self.task.cancel()


async def replicasets(api: ApiClient, ns: str) -> dict[str, dict]:
    items, _ = await api.list("replicasets", ns)
    return {rs["metadata"]["name"]: rs for rs in items if not rs["metadata"].get("deletionTimestamp")}


def revision(rs: dict) -> str:
    return rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]


async def test_rolling_update_history_undo_restart_and_scale(cp, tmp_path):
    """maxSurge 1, maxUnavailable 0 on 4 replicas: at most 5 pods, never fewer than 4 ready, at every event seen."""
    async with namespace(cp, tmp_path) as (api, kubectl):
        ns = kubectl.namespace
        await api.create("deployments", deployment("web", 4, "busybox:1.35", revisionHistoryLimit=1), ns)
        _, out, _ = await kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
        assert 'deployment "web" successfully rolled out' in out
        first = next(iter((await replicasets(api, ns)).values()))
        assert first["metadata"]["name"] == f"web-{first['metadata']['labels'][HASH]}" and revision(first) == "1"

        counter = PodCounter(api, ns)
        await kubectl.run("set", "image", "deployment/web", "c=busybox:1.36")
        await kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
        counter.stop()
        assert counter.most_active <= 5 and counter.fewest_ready >= 4, (counter.most_active, counter.fewest_ready)
        rss = await replicasets(api, ns)
        assert {n: (rs["spec"]["replicas"], revision(rs)) for n, rs in rss.items()} == {
            first["metadata"]["name"]: (0, "1"), **{n: (4, "2") for n in rss if n != first["metadata"]["name"]}}
        _, history, _ = await kubectl.run("rollout", "history", "deployment/web")
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
        d = await api.get("deployments", "web", ns)
        st = d["status"]
        assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"],
                st.get("unavailableReplicas", 0), st["observedGeneration"]) == (4, 4, 4, 4, 0, d["metadata"]["generation"])
        conds = {c["type"]: c["reason"] for c in st["conditions"]}
        assert conds == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
        events, _ = await api.list("events", ns)
        assert any(e["reason"] == "ScalingReplicaSet" and e["message"] == f"Scaled up replica set {n} to 1"
                   for e in events for n in rss if n != first["metadata"]["name"])

        _, out, _ = await kubectl.run("rollout", "undo", "deployment/web")
        assert "rolled back" in out
        await kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
        d = await api.get("deployments", "web", ns)
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.35"
        back = (await replicasets(api, ns))[first["metadata"]["name"]]
        assert back["spec"]["replicas"] == 4 and revision(back) == "3"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

        await kubectl.run("rollout", "restart", "deployment/web")
        await kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")

        async def cleaned() -> dict | None:
            rss = await replicasets(api, ns)  # the new one and revisionHistoryLimit=1 old one
            return rss if sorted(revision(rs) for rs in rss.values()) == ["3", "4"] else None
        await eventually(cleaned, timeout=30, what="old ReplicaSets cleaned to revisionHistoryLimit")

        await kubectl.run("scale", "deployment/web", "--replicas=2")

        async def scaled() -> bool:
            st = (await api.get("deployments", "web", ns))["status"]
            return (st["replicas"], st["availableReplicas"], st["updatedReplicas"]) == (2, 2, 2)
        await eventually(scaled, timeout=30, what="scaled to 2")


async def test_recreate_stops_old_pods_before_new_ones_start(cp, tmp_path):
    async with namespace(cp, tmp_path) as (api, kubectl):
        ns = kubectl.namespace
        await api.create("deployments", deployment("job", 3, "busybox:1.35", strategy={"type": "Recreate"}), ns)
        await kubectl.run("rollout", "status", "deployment/job", "--timeout=60s")
        counter = PodCounter(api, ns)
        await kubectl.run("set", "image", "deployment/job", "c=busybox:1.36")
        await kubectl.run("rollout", "status", "deployment/job", "--timeout=60s")
        counter.stop()
        assert not counter.mixed and counter.most_active == 3
        assert sorted(rs["spec"]["replicas"] for rs in (await replicasets(api, ns)).values()) == [0, 3]


async def test_paused_deployment_does_not_roll_until_resumed(cp, tmp_path):
    async with namespace(cp, tmp_path) as (api, kubectl):
        ns = kubectl.namespace
        await api.create("deployments", deployment("web", 2, "busybox:1.35"), ns)
        await kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
        await kubectl.run("rollout", "pause", "deployment/web")

        async def paused() -> bool:
            d = await api.get("deployments", "web", ns)
            return any(c["type"] == "Progressing" and c["reason"] == "DeploymentPaused"
                       for c in d["status"]["conditions"])
        await eventually(paused, timeout=30, what="Progressing=Unknown DeploymentPaused")
        await kubectl.run("set", "image", "deployment/web", "c=busybox:1.36")
        await kubectl.run("scale", "deployment/web", "--replicas=3")

        async def resized() -> bool:
            rss = await replicasets(api, ns)
            return len(rss) == 1 and next(iter(rss.values()))["spec"]["replicas"] == 3
        await eventually(resized, timeout=30, what="a paused Deployment scaled in place, no new ReplicaSet")
        await kubectl.run("rollout", "resume", "deployment/web")
        await kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
        assert sorted(rs["spec"]["replicas"] for rs in (await replicasets(api, ns)).values()) == [0, 3]


async def test_a_stuck_rollout_exceeds_its_progress_deadline(cp, tmp_path):
    """Pods that never become ready: Progressing=False ProgressDeadlineExceeded, and `rollout status` fails."""
    async with namespace(cp, tmp_path, ready=False) as (api, kubectl):
        ns = kubectl.namespace
        await api.create("deployments", deployment("stuck", 2, "busybox:1.35", progressDeadlineSeconds=3), ns)

        async def exceeded() -> dict | None:
            d = await api.get("deployments", "stuck", ns)
            cond = next((c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == "Progressing"), {})
            return cond if cond.get("reason") == "ProgressDeadlineExceeded" else None
        cond = await eventually(exceeded, timeout=30, what="ProgressDeadlineExceeded")
        assert cond["status"] == "False" and cond["message"].endswith("has timed out progressing.")
        rc, _, err = await kubectl.run("rollout", "status", "deployment/stuck", "--timeout=20s", check=False)
        assert rc != 0 and "exceeded its progress deadline" in err
        d = json.loads((await kubectl.run("get", "deployment", "stuck", "-o", "json"))[1])
        assert {c["type"]: c["status"] for c in d["status"]["conditions"]}["Available"] == "False"
