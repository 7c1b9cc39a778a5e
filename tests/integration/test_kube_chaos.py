"""Kubernetes-level faults (issue 8): while the Raft leader master is killed again and again, a Deployment being
scaled and a StatefulSet being rolled still converge, no StatefulSet ordinal ever has two pods at once (checked on
every pod event a failing-over watch sees), and no two Services ever share a ClusterIP."""
import asyncio
import random

import pytest

from api.client import ApiClient, ApiClientError, Conflict
from raftkube import up
from tests.integration.cluster import FAST_CONTROL_PLANE, Cluster, eventually

NS = "chaos"
ROUNDS = 5


def deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}


def statefulset() -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
            "spec": {"serviceName": "db", "replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "c", "image": "postgres:16"}]}}}}


async def retried(call, what: str):
    """A client that keeps trying through a failover, as kubectl's user would."""
    async def attempt():
        try:
            return await call() or True
        except Conflict as exc:
            if exc.reason == "AlreadyExists":
                return True  # an earlier try whose answer was lost did it
            return None
        except ApiClientError as exc:
            if exc.status >= 500:
                return None
            raise
    return await eventually(attempt, timeout=40, what=what)


class OrdinalWatch:
    """Follows every pod event of the namespace; an ordinal name held by two live pods (uids) is a violation."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.live: dict[str, set[str]] = {}
        self.violations: list[str] = []
        self.events = 0

    async def run(self) -> None:
        async for event, obj in self.api.watch("pods", NS):
            if event == "RELIST":
                fresh: dict[str, set[str]] = {}
                for pod in obj:
                    fresh.setdefault(pod["metadata"]["name"], set()).add(pod["metadata"]["uid"])
                self.live = fresh
                self._check()
                continue
            self.events += 1
            name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
            if event == "DELETED":
                self.live.get(name, set()).discard(uid)
            else:
                self.live.setdefault(name, set()).add(uid)
            self._check()

    def _check(self) -> None:
        for name, uids in self.live.items():
            if name.startswith("db-") and len(uids) > 1:
                self.violations.append(f"{name} held by {sorted(uids)}")


@pytest.fixture
async def cluster(tmp_path):
    c = Cluster(str(tmp_path / "c"), 3, FAST_CONTROL_PLANE, nodes=3, runtime="fake")
    yield c
    await c.close_clients()
    c.stop()


async def test_workloads_converge_while_the_leader_master_is_killed_again_and_again(cluster):
    rng = random.Random(4)
    async with cluster.api(timeout=3) as api, cluster.api(timeout=3) as watch_api:
        await retried(lambda: api.create("namespaces", {"metadata": {"name": NS}}), "the namespace")
        await retried(lambda: api.create("deployments", deployment(3)), "the Deployment")
        await retried(lambda: api.create("statefulsets", statefulset()), "the StatefulSet")
        watcher = OrdinalWatch(watch_api)
        watching = asyncio.create_task(watcher.run())
        await eventually(lambda: _sts_done(api, None), timeout=60, what="the StatefulSet up")
        replicas = 3
        try:
            for round_ in range(ROUNDS):
                victim = await cluster.leader()
                cluster.kill(victim)
                replicas = rng.randint(1, 6)
                await retried(lambda: api.patch("deployments", "web", {"spec": {"replicas": replicas}}, NS),
                              "scaling the Deployment")
                roll = {"spec": {"template": {"metadata": {"annotations": {"round": str(round_)}}}}}
                await retried(lambda: api.patch("statefulsets", "db", roll, NS), "rolling the StatefulSet")
                for i in range(4):
                    svc = {"metadata": {"name": f"s{round_}-{i}", "namespace": NS},
                           "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}
                    await retried(lambda: api.create("services", svc), "a Service")
                up.restart_master(cluster.info, victim)
                await eventually(lambda: asyncio.to_thread(up.is_ready, cluster.master(victim)["api"], cluster.ca),
                                 timeout=30, what=f"{victim} back")
            await eventually(lambda: _deployment_done(api, replicas), timeout=90,
                             what=f"the Deployment at {replicas} available replicas")
            await eventually(lambda: _sts_done(api, str(ROUNDS - 1)), timeout=90, what="the StatefulSet rolled")
        finally:
            watching.cancel()
        services, _ = await api.list("services")
        ips = [s["spec"]["clusterIP"] for s in services if s["spec"].get("clusterIP") not in (None, "None")]
        assert len(ips) == len(set(ips)) and len(ips) >= 4 * ROUNDS, sorted(ips)
        assert watcher.events > 0 and watcher.violations == [], watcher.violations[:5]


async def _deployment_done(api, replicas):
    d = await api.get("deployments", "web", NS)
    s = d.get("status") or {}
    pods, _ = await api.list("pods", NS, label_selector="app=web")
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return (s.get("observedGeneration") == d["metadata"]["generation"] and s.get("updatedReplicas") == replicas
            and s.get("availableReplicas") == replicas and s.get("replicas") == replicas and len(live) == replicas)


async def _sts_done(api, round_):
    sts = await api.get("statefulsets", "db", NS)
    s = sts.get("status") or {}
    annotations = sts["spec"]["template"]["metadata"].get("annotations") or {}
    pods, _ = await api.list("pods", NS, label_selector="app=db")
    return (annotations.get("round") == round_ and s.get("observedGeneration") == sts["metadata"]["generation"]
            and s.get("readyReplicas") == 3 and s.get("updatedReplicas") == 3
            and s.get("currentRevision") == s.get("updateRevision")
            and sorted(p["metadata"]["labels"].get("controller-revision-hash") for p in pods) == [s["updateRevision"]] * 3)
