"""What controller and node tests share: playing a kubelet by hand (Node objects, pod status, a FakeKubelet that
starts and confirms the deletion of a namespace's pods), a fresh namespace per test, small reads, and the real
kubectl. Fixtures built on these live in conftest.py."""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import os
import subprocess
import time
from typing import Any, AsyncIterator, Callable

from api.client import ApiClient, ApiClientError, Conflict, NotFound
from raftkube import kubeconfig
from tests.integration.cluster import Cluster, eventually

Obj = dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def make_node(client: ApiClient, name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
                    labels: dict[str, str] | None = None, taints: list[Obj] | None = None, ready: bool = True) -> Obj:
    """A Node as a kubelet registers it, Ready (or not)."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    node = await client.create("nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints} if taints else {}})
    node["status"] = {"capacity": resources, "allocatable": resources,
                      "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                      "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                      "reason": "KubeletReady" if ready else "KubeletNotReady",
                                      "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}]}
    return await client.update_status("nodes", node)


async def set_pod_phase(client: ApiClient, pod: Obj, phase: str = "Running", *, ready: bool = True,
                        ip: str = "127.0.0.1", exit_code: int | None = None, retries: int = 0) -> Obj:
    """Write the status a kubelet would: phase, Ready condition, podIP, container states. With `retries`, tried that
    many times while someone else (the scheduler, finding no node) writes the pod between our read and our write."""
    for _ in range(retries):
        with contextlib.suppress(Conflict):
            return await _write_pod_status(client, pod, phase, ready=ready, ip=ip, exit_code=exit_code)
    if retries:
        raise AssertionError(f"could not write the phase of {pod['metadata']['name']}: its status kept changing")
    return await _write_pod_status(client, pod, phase, ready=ready, ip=ip, exit_code=exit_code)


async def _write_pod_status(client: ApiClient, pod: Obj, phase: str, *, ready: bool, ip: str,
                            exit_code: int | None) -> Obj:
    pod = await client.get("pods", pod["metadata"]["name"], pod["metadata"]["namespace"])
    ready = ready and phase == "Running"
    flag = "True" if ready else "False"
    state: Obj = {"running": {"startedAt": _now()}} if phase == "Running" else {
        "terminated": {"exitCode": exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1),
                       "reason": "Completed" if phase == "Succeeded" else "Error", "finishedAt": _now()}}
    pod["status"] = {**(pod.get("status") or {}), "phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
                     "hostIP": "127.0.0.1", "startTime": _now(),
                     "conditions": [{"type": t, "status": flag if t in ("Ready", "ContainersReady") else "True",
                                     "lastTransitionTime": _now()}
                                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                     "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "ready": ready,
                                            "restartCount": 0, "state": state, "started": phase == "Running"}
                                           for c in pod["spec"].get("containers") or []]}
    return await client.update_status("pods", pod)


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


class FakeKubelet:
    """Plays every kubelet for one namespace: a bound Pending pod starts Running (Ready unless `ready` is False;
    left alone if `start` is False), and a pod marked for deletion on a node is confirmed with grace 0. Also
    records what it saw, in order, in `seen`."""

    def __init__(self, api: ApiClient, ns: str, *, start: bool = True, ready: bool = True) -> None:
        self.api, self.ns, self.start, self.ready = api, ns, start, ready
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
            elif (self.start and pod["spec"].get("nodeName")
                  and (pod.get("status") or {}).get("phase", "Pending") == "Pending"):
                await set_pod_phase(self.api, pod, "Running", ready=self.ready)
        except ApiClientError:
            pass  # changed or gone meanwhile: the watch brings the next state


_serial = itertools.count()


@contextlib.asynccontextmanager
async def namespace(cluster: Cluster, prefix: str, *, node: str | None = None) -> AsyncIterator[tuple[ApiClient, str]]:
    """A fresh namespace `prefix-N` and an admin client, closed afterwards. With `node`, that hand-made Node too,
    made by the module's first test and kept (the scheduler binds every pod to it)."""
    api = cluster.api()
    ns = f"{prefix}-{next(_serial)}"
    await api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if node:
        with contextlib.suppress(ApiClientError):  # made already
            await make_node(api, node)
    try:
        yield api, ns
    finally:
        await api.close()


@contextlib.asynccontextmanager
async def namespace_and_nodes(cluster: Cluster, prefix: str) -> AsyncIterator[tuple[ApiClient, str, list[str]]]:
    """A fresh namespace; the nodes the test makes (names appended to the list) are deleted afterwards."""
    async with namespace(cluster, prefix) as (api, ns):
        nodes: list[str] = []
        try:
            yield api, ns, nodes
        finally:
            for name in nodes:
                with contextlib.suppress(NotFound):
                    await api.delete("nodes", name)


async def maybe_get(api: ApiClient, kind: str, name: str, ns: str | None = None) -> Obj | None:
    """The object, or None if there is none."""
    try:
        return await api.get(kind, name, ns)
    except NotFound:
        return None


async def status_is(api: ApiClient, ns: str, name: str, kind: str = "statefulsets", **want: Any) -> Obj | None:
    """The object's status once it has observed the latest spec and has the `want` fields, else None."""
    obj = await api.get(kind, name, ns)
    status = obj.get("status") or {}
    ok = status.get("observedGeneration") == obj["metadata"]["generation"] and all(
        status.get(k) == v for k, v in want.items())
    return status if ok else None


class Kubectl:
    """The real kubectl with a private HOME (it caches discovery under ~/.kube) and a kubeconfig per master; with
    `namespace`, every command runs in it. Called, it blocks; `run` awaits it without blocking the event loop (a
    test's FakeKubelet runs on it); `popen` leaves it running (`logs -f`)."""

    def __init__(self, home: Any, cluster: Cluster, namespace: str | None = None) -> None:
        self.home = str(home)
        self.namespace = namespace
        self.cluster = cluster
        self.configs = {n: kubeconfig.write(f"{home}/{n}.kubeconfig", cluster.master(n)["api"], cluster.token,
                                            cluster.ca) for n in cluster.names}

    def env(self, master: str = "m1") -> dict:
        return {**os.environ, "HOME": self.home, "KUBECONFIG": self.configs[master]}

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return ["kubectl", *(("-n", self.namespace) if self.namespace else ()), *args]

    def __call__(self, *args: str, master: str = "m1", stdin: str | None = None,
                 check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(self.argv(args), env=self.env(master), input=stdin, capture_output=True,
                             text=True, timeout=60)
        if check:
            assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out

    async def run(self, *args: str, master: str = "m1", check: bool = True,
                  timeout: float = 90) -> tuple[int, str, str]:
        """(exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(*self.argv(args), env=self.env(master),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        rc = proc.returncode if proc.returncode is not None else -1
        if check:
            assert rc == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return rc, out.decode(), err.decode()

    def popen(self, *args: str, master: str = "m1") -> subprocess.Popen:
        return subprocess.Popen(self.argv(args), env=self.env(master), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll `condition` (a blocking one, for the blocking kubectl) until it is truthy, or fail after `timeout`;
    its truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not seen within {timeout}s")
