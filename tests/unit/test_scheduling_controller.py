"""The scheduler controller's bookkeeping, with informers fed by hand and a fake API client (no processes):
pods assumed onto a node count there while their bindings are in flight, a failed binding gives the room back,
and an unschedulable pod waits instead of looping on its own status updates."""
from __future__ import annotations

import asyncio
from typing import Any

from api.client import ApiClientError
from controllers.base import Context
from controllers.informer import Informers
from controllers.scheduler import Scheduler


class FakeClient:
    """Records bindings and patches; bindings wait for `release` (set it to let them answer) or fail."""

    def __init__(self) -> None:
        self.bindings: list[tuple[str, str]] = []
        self.patches: list[tuple[str, Any]] = []
        self.release = asyncio.Event()
        self.fail_with: int | None = None

    async def post_subresource(self, kind: str, name: str, sub: str, body: dict, namespace: str | None = None):
        self.bindings.append((name, body["target"]["name"]))
        await self.release.wait()
        if self.fail_with:
            raise ApiClientError(self.fail_with, {"message": "injected"})
        return {}

    async def patch(self, kind: str, name: str, patch: Any, namespace: str | None = None, **kw: Any):
        self.patches.append((name, patch))
        return {}


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def record(self, obj: dict, type_: str, reason: str, message: str, component: str | None = None) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))


def node(name: str, cpu: str = "1") -> dict:
    return {"metadata": {"name": name, "resourceVersion": "1"}, "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "10"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, cpu: str = "1", rv: str = "1", **spec: Any) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": rv},
            "spec": {"schedulerName": "default-scheduler",
                     "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}], **spec},
            "status": {"phase": "Pending"}}


def make_scheduler(nodes: list[dict]) -> tuple[Scheduler, FakeClient, FakeRecorder]:
    client, recorder = FakeClient(), FakeRecorder()
    informers = Informers(client)  # type: ignore[arg-type]  # never started: fed through _upsert/_delete
    sched = Scheduler(Context(client, informers, recorder))  # type: ignore[arg-type]
    for n in nodes:
        informers["nodes"]._upsert(n)
    return sched, client, recorder


async def drain(sched: Scheduler) -> list[str]:
    """Run sync for every key queued now; the keys, in order."""
    keys = []
    while len(sched.queue):
        key = await sched.queue.get()
        keys.append(key)
        await sched.sync(key)
        sched.queue.done(key)
    await asyncio.sleep(0)  # let the binding tasks start
    return keys


async def test_assumed_pods_count_while_their_bindings_are_in_flight():
    """Two 1-cpu nodes, three 1-cpu pods decided before any binding answers: two nodes used once each,
    the third pod unschedulable with kube-scheduler's message and PodScheduled=False."""
    sched, client, recorder = make_scheduler([node("n1"), node("n2")])
    for name in ("a", "b", "c"):
        sched.pods._upsert(pod(name))
    assert await drain(sched) == ["default/a", "default/b", "default/c"]
    assert sorted(target for _, target in client.bindings) == ["n1", "n2"]
    message = "0/2 nodes are available: 2 Insufficient cpu."
    assert ("c", "Warning", "FailedScheduling", message) in recorder.events
    name, patch = client.patches[0]
    assert name == "c" and patch["status"]["conditions"][0] == {
        **patch["status"]["conditions"][0], "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message}
    client.release.set()
    await asyncio.gather(*sched.bind_tasks)
    assert [e[2] for e in recorder.events].count("Scheduled") == 2
    assert ("a", "Normal", "Scheduled", f"Successfully assigned default/a to {dict(client.bindings)['a']}") \
        in recorder.events


async def test_the_cache_showing_the_binding_replaces_the_assumption():
    sched, client, _ = make_scheduler([node("n1")])
    sched.pods._upsert(pod("a"))
    await drain(sched)
    assert sched.assumed == {"default/a": "n1"}
    sched.pods._upsert(pod("a", rv="2", nodeName="n1"))  # the informer catches up
    assert sched.assumed == {} and sched.placed == {"default/a": "n1"}
    assert sched.infos["n1"].requested["cpu"] == 1000  # counted once, not twice
    client.release.set()
    await asyncio.gather(*sched.bind_tasks)


async def test_a_failed_binding_gives_the_room_back_and_is_retried():
    sched, client, _ = make_scheduler([node("n1")])
    client.fail_with = 500
    sched.pods._upsert(pod("a"))
    await drain(sched)
    assert sched.infos["n1"].requested["cpu"] == 1000
    client.release.set()
    await asyncio.gather(*sched.bind_tasks)
    assert sched.assumed == {} and sched.infos["n1"].requested["cpu"] == 0
    assert sched.queue._timers.get("default/a") is not None  # back after its backoff


async def test_a_conflict_means_bound_already_and_keeps_the_assumption():
    sched, client, recorder = make_scheduler([node("n1")])
    client.fail_with = 409
    sched.pods._upsert(pod("a"))
    await drain(sched)
    client.release.set()
    await asyncio.gather(*sched.bind_tasks)
    assert sched.assumed == {"default/a": "n1"} and not recorder.events


async def test_an_unschedulable_pod_waits_for_a_change_not_its_own_status():
    """Its PodScheduled update does not requeue it; a node that could take it does (after the backoff)."""
    sched, client, recorder = make_scheduler([node("n1")])
    sched.pods._upsert(pod("big", cpu="2"))
    await drain(sched)
    updated = pod("big", cpu="2", rv="2")
    updated["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    sched.pods._upsert(updated)
    assert len(sched.queue) == 0
    heartbeat = node("n1")
    heartbeat["metadata"]["resourceVersion"] = "2"
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "later"
    sched.nodes._upsert(heartbeat)
    timer = sched.queue._timers["default/big"]
    assert timer.when() - asyncio.get_running_loop().time() > 30  # only the once-a-minute retry
    sched.nodes._upsert(node("n2", cpu="4"))
    assert sched.queue._timers["default/big"].when() - asyncio.get_running_loop().time() <= 1.0  # the backoff
    sched.queue.shutdown()


async def test_pods_for_other_schedulers_or_already_bound_are_left_alone():
    sched, client, _ = make_scheduler([node("n1")])
    sched.pods._upsert(pod("other", schedulerName="my-scheduler"))
    sched.pods._upsert(pod("bound", nodeName="n1"))
    assert await drain(sched) == []
    assert sched.infos["n1"].requested["cpu"] == 1000  # the bound one counts on its node


async def test_a_finished_pod_frees_its_node_for_a_waiting_one():
    sched, client, _ = make_scheduler([node("n1")])
    sched.pods._upsert(pod("done", nodeName="n1"))
    sched.pods._upsert(pod("next"))
    await drain(sched)
    assert "default/next" in sched.waiting
    finished = pod("done", rv="2", nodeName="n1")
    finished["status"]["phase"] = "Succeeded"
    sched.pods._upsert(finished)
    assert sched.infos["n1"].requested["cpu"] == 0 and "default/next" in sched.queue._timers
    sched.queue.shutdown()
