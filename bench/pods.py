"""Benchmark the scheduler on a 3-master raftkube cluster: 1,000 pods over 20 nodes, time until all are Running.

    python bench/pods.py [--pods 1000] [--nodes 20] [--inflight 32]

With a Deployment controller in controllers.manager.CONTROLLERS, the pods come from a 1,000-replica Deployment:
time until every pod runs and the Deployment is Available, then a rolling update of all of them (a new image).
Without one, the bench creates the pods itself (N in flight) and only the scheduler's part is measured.
With `raftkube node --runtime fake --count N`, those nodes run the pods; without it, the bench makes the Nodes
itself and plays their kubelets (a pod bound to a node is written Running and Ready; a pod being deleted from a
node is confirmed at once). Each run says which of these it used.

Also measured: the binding rate (pods bound per second between the first and the last binding, as seen on a
watch). Prints its figures; asserts nothing. Target for the note: 1,000 pods running in under 20 s (Kubernetes'
own scheduler-throughput check asks 100 pods/s).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from api.client import ApiClient, Conflict, NotFound  # noqa: E402
from controllers.manager import CONTROLLERS  # noqa: E402
from harness import kube_masters, make_namespace  # noqa: E402

NS = "bench"
AUTH: dict = {}  # the admin token and the cluster CA, once the cluster is up
Obj = dict


def stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_controller(word: str) -> bool:
    return any(word in cls.__name__ for cls in CONTROLLERS)


def has_fake_nodes() -> bool:
    """Is there a `raftkube node` that can run many fake nodes in one process?"""
    answer = subprocess.run([sys.executable, "-m", "raftkube", "node", "--help"], capture_output=True, text=True)
    return answer.returncode == 0 and "--count" in answer.stdout and "fake" in answer.stdout


def template(image: str) -> Obj:
    return {"metadata": {"labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": image, "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


class Tracker:
    """Watches the bench's pods: when each was first seen bound and first seen Running."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.seen: dict[str, float] = {}  # pod uid -> first seen on the watch
        self.bound: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.node: dict[str, str] = {}  # pod uid -> its node
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async for kind, obj in self.client.watch("pods", NS):
            for pod in obj if kind == "RELIST" else [obj]:
                uid, at = pod["metadata"]["uid"], time.perf_counter()
                if kind == "DELETED":
                    continue
                self.seen.setdefault(uid, at)
                if pod["spec"].get("nodeName"):
                    self.bound.setdefault(uid, at)
                    self.node[uid] = pod["spec"]["nodeName"]
                if (pod.get("status") or {}).get("phase") == "Running":
                    self.running.setdefault(uid, at)
            self.changed.set()

    async def until(self, check, timeout: float, what: str) -> float:
        """Wait until check() holds; the time it first did (perf_counter)."""
        deadline = time.perf_counter() + timeout
        while not check():
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{what}: not within {timeout:.0f} s")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        return time.perf_counter()

    def binding_rate(self, since: float) -> tuple[int, float]:
        times = sorted(t for t in self.bound.values() if t >= since)
        if len(times) < 2:
            return len(times), float("nan")
        return len(times), (len(times) - 1) / (times[-1] - times[0])

    def latency(self, since: float) -> str:
        """From a pod's first appearance on the watch to its binding: the scheduler's own share."""
        waits = sorted((b - self.seen[uid]) * 1000 for uid, b in self.bound.items() if b >= since and uid in self.seen)
        if not waits:
            return "no bindings"
        return (f"create-to-bound p50 {waits[len(waits) // 2]:.0f} ms, "
                f"p99 {waits[min(len(waits) - 1, int(len(waits) * .99))]:.0f} ms")

    def spread(self) -> str:
        per_node: dict[str, int] = {}
        for node in self.node.values():
            per_node[node] = per_node.get(node, 0) + 1
        return f"{min(per_node.values())}..{max(per_node.values())} pods per node over {len(per_node)} nodes"


class HandKubelets:
    """Stands in for fake-runtime nodes: Nodes made through the API, and a kubelet's two writes per pod."""

    def __init__(self, client: ApiClient, workers: int = 16) -> None:
        self.client = client
        self.queue: asyncio.Queue[Obj] = asyncio.Queue()
        self.workers = workers

    async def make_nodes(self, count: int) -> None:
        from tests.integration.kube import make_node  # the same helper the controller tests use
        await asyncio.gather(*(make_node(self.client, f"node-{i:02d}", cpu="32", memory="64Gi")
                               for i in range(count)))

    async def run(self) -> None:
        workers = [asyncio.create_task(self.worker()) for _ in range(self.workers)]
        try:
            async for kind, obj in self.client.watch("pods", NS):
                for pod in obj if kind == "RELIST" else [obj]:
                    if kind != "DELETED" and pod["spec"].get("nodeName") and (
                            pod["metadata"].get("deletionTimestamp")
                            or (pod.get("status") or {}).get("phase") == "Pending"):
                        self.queue.put_nowait(pod)
        finally:
            for w in workers:
                w.cancel()

    async def worker(self) -> None:
        while True:
            pod = await self.queue.get()
            meta = pod["metadata"]
            try:
                if meta.get("deletionTimestamp"):
                    await self.client.delete("pods", meta["name"], NS, grace_period_seconds=0)
                else:
                    await self.start(pod)
            except (NotFound, Conflict):
                pass  # gone, or already written from a later copy

    async def start(self, pod: Obj) -> None:
        now = stamp()
        pod = {**pod, "status": {
            **(pod.get("status") or {}), "phase": "Running", "podIP": "10.0.0.1", "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0,
                                   "started": True, "state": {"running": {"startedAt": now}}}
                                  for c in pod["spec"]["containers"]]}}
        await self.client.update_status("pods", pod)


async def create_pods(client: ApiClient, count: int, inflight: int) -> float:
    names = [f"p-{i:05d}" for i in range(count)]
    body = template("busybox:1.36")

    async def worker() -> None:
        while names:
            name = names.pop()
            await client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                         "metadata": {"name": name, **body["metadata"]}, "spec": body["spec"]}, NS)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return time.perf_counter() - started


async def deployment_done(client: ApiClient, replicas: int) -> bool:
    d = await client.get("deployments", "bench", NS)
    status = d.get("status") or {}
    available = any(c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions") or [])
    return (status.get("observedGeneration", 0) >= d["metadata"]["generation"] and available
            and status.get("updatedReplicas") == replicas == status.get("availableReplicas")
            and status.get("replicas") == replicas)


async def poll(check, timeout: float, what: str) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await check():
            return time.perf_counter()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


async def run(args: argparse.Namespace, servers: list[str], state: str) -> None:
    async with ApiClient(servers, **AUTH) as client:
        await make_namespace(client, NS)
        tasks = []
        node_proc = None
        if has_fake_nodes():
            print(f"nodes: {args.nodes} fake-runtime nodes (raftkube node --runtime fake --count {args.nodes})", flush=True)
            node_proc = subprocess.Popen(
                [sys.executable, "-m", "raftkube", "node", "--runtime", "fake", "--count", str(args.nodes),
                 "--name", "node", "--no-proxy", "--state-dir", state],  # servers, the nodes' token and the CA from the state dir
                stdout=open(os.path.join(state, "logs", "nodes.log"), "w"), stderr=subprocess.STDOUT)
        else:
            print(f"nodes: {args.nodes} Nodes made by the bench, which plays their kubelets (no fake node agent yet)")
            kubelets = HandKubelets(client)
            await kubelets.make_nodes(args.nodes)
            tasks.append(asyncio.create_task(kubelets.run()))
        await poll(lambda: _ready_nodes(client, args.nodes), 60, "nodes Ready")
        tracker = Tracker(client)
        tasks.append(asyncio.create_task(tracker.run()))
        n = args.pods
        try:
            started = time.perf_counter()
            if has_controller("Deployment"):
                await client.create("deployments", {
                    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
                    "spec": {"replicas": n, "selector": {"matchLabels": {"app": "bench"}},
                             "template": template("busybox:1.36")}}, NS)
                running = await tracker.until(lambda: len(tracker.running) >= n, 300, f"{n} pods Running")
                available = await poll(lambda: deployment_done(client, n), 300, "Deployment Available")
                count, rate = tracker.binding_rate(started)
                print(f"deployment of {n}: all Running in {running - started:.1f} s, Available in "
                      f"{available - started:.1f} s; binding {rate:.0f} pods/s ({count} bindings), "
                      f"{tracker.latency(started)}; {tracker.spread()}", flush=True)
                update = time.perf_counter()
                await client.patch("deployments", "bench", {"spec": {"template": template("busybox:1.37")}}, NS,
                                   patch_type="strategic")
                await asyncio.sleep(0.5)  # let observedGeneration move past the patch before polling
                done = await poll(lambda: deployment_done(client, n), 600, "rolling update")
                count, rate = tracker.binding_rate(update)
                print(f"rolling update of {n}: {done - update:.1f} s; binding {rate:.0f} pods/s "
                      f"({count} bindings), {tracker.latency(update)}", flush=True)
            else:
                print(f"pods: created by the bench, {args.inflight} in flight (no Deployment controller yet; "
                      "no rolling update)")
                created = await create_pods(client, n, args.inflight)
                last_create = time.perf_counter()
                bound = await tracker.until(lambda: len(tracker.bound) >= n, 300, f"{n} pods bound")
                running = await tracker.until(lambda: len(tracker.running) >= n, 300, f"{n} pods Running")
                count, rate = tracker.binding_rate(started)
                print(f"{n} pods: created in {created:.1f} s ({n / created:.0f}/s), all bound in "
                      f"{bound - started:.1f} s, all Running in {running - started:.1f} s; "
                      f"binding {rate:.0f} pods/s, the last {bound - last_create:.2f} s after the last create, "
                      f"{tracker.latency(started)}; "
                      f"{tracker.spread()}", flush=True)
        finally:
            for t in tasks:
                t.cancel()
            if node_proc is not None:
                node_proc.terminate()
                node_proc.wait(10)


async def _ready_nodes(client: ApiClient, count: int) -> bool:
    nodes, _ = await client.list("nodes")
    return sum(1 for n in nodes for c in (n.get("status") or {}).get("conditions") or []
               if c["type"] == "Ready" and c["status"] == "True") >= count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--inflight", type=int, default=32, help="pod creates in flight when the bench makes pods")
    args = p.parse_args()
    with kube_masters("raftkube-bench-pods-", AUTH) as (servers, state):
        asyncio.run(run(args, servers, state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
