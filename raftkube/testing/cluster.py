"""A whole raftkube cluster for a test: started as `raftkube up` starts one, broken on purpose, torn down.

    from raftkube.testing import Cluster

    with Cluster(masters=3) as cluster:
        cluster.kv.put(b"k", b"v")
        old = cluster.leader()
        cluster.kill(old)
        new = cluster.wait_for_leader()
        cluster.restart(old)

`AsyncCluster` is the same for async tests (`async with AsyncCluster() as cluster:`, then `await` its verbs).
Masters and nodes are OS processes on 127.0.0.1 (their logs under `state_dir/logs`); the kube API is reached
through a load balancer on this process (as `raftkube up` serves it), so kubectl with `cluster.kubeconfig` keeps
working while masters die. On exit every process the cluster started is stopped, also when the test failed; the
state dir is removed when the cluster made it and the block ended without an exception (else its path is printed,
for the logs).
"""
from __future__ import annotations

import asyncio
import os
from collections import Counter
import shutil
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from api.client import ApiClient, ApiClientError
from raftkube import cluster_file, kv_access, up
from raftkube.balancer import Balancer
from raftkube.failpoints import FailpointError, failpoint
from raftkube.local_cluster import LocalCluster
from raftkube.testing.history import History
from raftkube.testing.kv import KV, AsyncKV
from raftkube.testing.loop import BackgroundLoop

READY_TIMEOUT = 60.0


class ClusterError(Exception):
    """The cluster did not do what was asked (no leader in time, a master that would not start, ...)."""


async def agreed_leader(info: dict[str, Any], timeout: float = 2.0) -> str:
    """The master that a majority of all the cluster's masters (itself among them) name as leader; ClusterError
    when no majority agrees. A partitioned minority's opinion does not count, as it does not in Raft."""
    masters = info["masters"]
    names: dict[str, str] = {}  # member id -> name
    votes: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(ssl=kv_access.context(info.get("kv_tls")) or True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), connector=connector) as session:
        for m in masters:
            try:
                async with session.post(m["kv"] + "/v3/maintenance/status", data="{}") as r:
                    status = await r.json()
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                continue
            names[status["header"]["member_id"]] = m["name"]
            if status.get("leader"):
                votes[status["leader"]] += 1
    leader, count = votes.most_common(1)[0] if votes else (None, 0)
    if leader is None or count <= len(masters) // 2 or leader not in names:
        raise ClusterError(f"no leader that a majority of the {len(masters)} masters agree on "
                           f"({len(names)} answered)")
    return names[leader]


class _Processes:
    """What both Cluster and AsyncCluster do with processes: start, break, stop (blocking calls)."""

    def __init__(self, masters: int, nodes: int, runtime: str, failpoints: bool, state_dir: str | None,
                 control_plane: bool, master_flags: tuple[str, ...], node_flags: tuple[str, ...]) -> None:
        if masters not in (1, 3, 5, 7):
            raise ValueError(f"masters must be 1, 3, 5 or 7, not {masters}")
        self.count, self.node_count, self.runtime = masters, nodes, runtime
        self.failpoints, self.control_plane = failpoints, control_plane
        self.master_flags, self.node_flags = master_flags, node_flags
        self.made_dir = state_dir is None
        self.state_dir = os.path.abspath(state_dir or tempfile.mkdtemp(prefix="raftkube-test-"))
        self.local = LocalCluster(self.state_dir)

    def start(self) -> dict[str, Any]:
        flags = (*(("--enable-failpoints",) if self.failpoints else ()),
                 *(() if self.control_plane else ("--no-control-plane",)), *self.master_flags)
        info = up.start(self.state_dir, self.count, 0, flags, balanced=True)
        if not up.wait_ready(info, READY_TIMEOUT):
            self.stop(keep=True)
            raise ClusterError(f"the masters did not become ready within {READY_TIMEOUT:.0f}s; logs in "
                               f"{self.state_dir}/logs")
        if self.node_count:
            up.start_nodes(info, self.node_count, self.runtime, self.node_flags)
            with ThreadPoolExecutor(1) as thread:  # its own loop: the caller's may be running
                thread.submit(asyncio.run, self._nodes_ready(info)).result()
        return info

    async def _nodes_ready(self, info: dict[str, Any]) -> None:
        names = {n["name"] for n in info["nodes"]}
        async with ApiClient([m["api"] for m in info["masters"]], token=up.admin_token(self.state_dir),
                             ca_file=info["ca"]) as client:
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline:
                try:
                    nodes, _ = await client.list("nodes")
                except (ApiClientError, OSError, asyncio.TimeoutError):
                    nodes = []
                ready = {n["metadata"]["name"] for n in nodes
                         if any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (n.get("status") or {}).get("conditions") or [])}
                if names <= ready:
                    return
                await asyncio.sleep(0.2)
        self.stop(keep=True)
        raise ClusterError(f"nodes {', '.join(sorted(names))} were not all Ready within {READY_TIMEOUT:.0f}s; logs "
                           f"in {self.state_dir}/logs")

    def restart(self, name: str) -> None:
        """Start a master again with its command line (killed first if it still runs); wait until it is ready."""
        self.local.restart(name)
        if not up.wait_ready({**self.info, "masters": [self.master(name)]}, READY_TIMEOUT):
            raise ClusterError(f"master {name} did not become ready after its restart; see {self.state_dir}/logs")

    @property
    def info(self) -> dict[str, Any]:
        return self.local.info()

    def master(self, name: str) -> dict[str, Any]:
        return cluster_file.find(self.info, name)

    def failpoint(self, name: str, changes: dict[str, Any]) -> None:
        if not self.failpoints:
            raise ClusterError("failpoints are off: start the cluster with failpoints=True")
        try:
            failpoint(self.master(name), changes, kv_access.context(self.info.get("kv_tls")))
        except FailpointError as exc:
            raise ClusterError(str(exc)) from None

    def partition(self, name: str, clients: bool) -> None:
        if not self.failpoints:
            raise ClusterError("partitions are failpoints: start the cluster with failpoints=True")
        try:
            self.local.partition(name, clients)
        except (SystemExit, FailpointError) as exc:
            raise ClusterError(str(exc)) from None

    def heal(self, name: str) -> None:
        try:
            self.local.heal(name)
        except (SystemExit, FailpointError) as exc:
            raise ClusterError(str(exc)) from None

    def stop(self, keep: bool) -> None:
        """Stop every process; remove the state dir if ours and not `keep`."""
        if os.path.exists(cluster_file.path(self.state_dir)):
            up.stop(self.state_dir)
        if self.made_dir and not keep:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        elif keep:
            print(f"raftkube.testing: the cluster's state and logs are kept in {self.state_dir}", file=sys.stderr)


class _Common:
    """Attributes both facades share."""

    _p: _Processes
    _info: dict[str, Any]
    _lb: Balancer  # the load balancer in front of the masters' kube APIs

    @property
    def state_dir(self) -> str:
        return self._p.state_dir

    @property
    def masters(self) -> list[str]:
        return [m["name"] for m in self._info["masters"]]

    @property
    def kubeconfig(self) -> str:
        return self._info["kubeconfig"]

    @property
    def kv_endpoints(self) -> list[str]:
        return [m["kv"] for m in self._info["masters"]]

    @property
    def kv_tls(self) -> dict[str, str]:
        """The files a client of the KV ports needs: "ca" (checks the masters), "cert" and "key" (the operator's
        client certificate, without which the ports refuse the connection), as etcdctl's --cacert, --cert, --key."""
        return dict(self._info["kv_tls"])

    def kv_ssl_context(self) -> ssl.SSLContext:
        """The same as an ssl context, for urllib, aiohttp, http.client."""
        return kv_access.context(self._info.get("kv_tls"))

    @property
    def api_endpoints(self) -> list[str]:
        """Each master's kube API (the load balancer in front of them is `api_url`)."""
        return [m["api"] for m in self._info["masters"]]

    @property
    def api_url(self) -> str:
        return self._info["api"]

    def kube_client(self, user: str = "admin", timeout: float = 10.0) -> ApiClient:
        """The project's async kube API client, on every master (it moves on from one that fails), as `user` (a
        name in the cluster's token file: admin, or a component's)."""
        return ApiClient(self.api_endpoints, token=up.token_for(self.state_dir, user), ca_file=self._info["ca"],
                         timeout=timeout)

    @staticmethod
    def history() -> History:
        return History()

    def _balancer(self) -> Balancer:
        self._lb = Balancer(self.api_endpoints, self._info["ca"])
        return self._lb

    async def _drop_connections(self, name: str) -> None:
        """The load balancer closes the connections it pipes to a killed master (run on the balancer's loop)."""
        self._lb.drop(self._p.master(name)["api"])

    def _balancer_address(self) -> tuple[str, int]:
        host, _, port = self._info["api"].split("://", 1)[1].rpartition(":")
        return host, int(port)


class Cluster(_Common):
    """A cluster for a synchronous test: a context manager whose verbs block until done."""

    def __init__(self, masters: int = 3, nodes: int = 0, runtime: str = "fake", failpoints: bool = True,
                 state_dir: str | None = None, *, control_plane: bool = True, master_flags: tuple[str, ...] = (),
                 node_flags: tuple[str, ...] = ()) -> None:
        self._p = _Processes(masters, nodes, runtime, failpoints, state_dir, control_plane, master_flags, node_flags)
        self._loop: BackgroundLoop | None = None
        self._kv: KV | None = None
        self._extra_kvs: list[KV] = []

    def __enter__(self) -> "Cluster":
        self._info = self._p.start()
        self._loop = BackgroundLoop()
        host, port = self._balancer_address()
        self._loop.spawn(self._balancer().serve(host, port))
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            for kv in ([self._kv] if self._kv is not None else []) + self._extra_kvs:
                kv.close()
            if self._loop is not None:
                self._loop.close()
        finally:
            self._p.stop(keep=exc_type is not None)

    @property
    def kv(self) -> KV:
        """A blocking etcd v3 client on every master's KV endpoint."""
        if self._kv is None:
            self._kv = KV(AsyncKV(self.kv_endpoints, tls=self.kv_ssl_context()), self._loop)
        return self._kv

    def kv_of(self, name: str) -> KV:
        """A blocking etcd v3 client on this master only (close it with `close()` when done, or leave it to the
        cluster's end)."""
        kv = KV(AsyncKV([self._p.master(name)["kv"]], tls=self.kv_ssl_context()), self._loop)
        self._extra_kvs.append(kv)
        return kv

    def failpoint(self, name: str, **changes: Any) -> None:
        """Change a master's failpoints: clients=True (its client ports drop every request), clock_step=SECONDS
        (its wall clock jumps), ... (raftkube/master.py `failpoints` lists them)."""
        self._p.failpoint(name, changes)

    def leader(self) -> str:
        """The master every answering master names as leader (ClusterError if they do not agree)."""
        self._info = self._p.info
        return self._loop.run(agreed_leader(self._info))

    def wait_for_leader(self, timeout: float = 15.0, other_than: str | None = None) -> str:
        """The leader, once a majority agrees on one (that is not `other_than`, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                leader = self.leader()
                if leader != other_than:
                    return leader
            except ClusterError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"no leader{f' other than {other_than}' if other_than else ''} within {timeout}s")
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        """kill -9 the master (its controller-manager and scheduler die with it)."""
        self._p.local.kill(name)

    def restart(self, name: str) -> None:
        """Start a master again with its command line (killed first if it still runs); wait until it is ready."""
        self._p.restart(name)

    def pause(self, name: str) -> None:
        """SIGSTOP: the master holds its sockets and says nothing (a GC pause, a frozen VM)."""
        self._p.local.pause(name)

    def resume(self, name: str) -> None:
        self._p.local.resume(name)

    def partition(self, name: str, clients: bool = False) -> None:
        """Cut the master's Raft links both ways (failpoints); with `clients`, its client ports too."""
        self._p.partition(name, clients)

    def heal(self, name: str) -> None:
        self._p.heal(name)


class AsyncCluster(_Common):
    """A cluster for an async test: `async with AsyncCluster() as cluster:`; every verb is awaited."""

    def __init__(self, masters: int = 3, nodes: int = 0, runtime: str = "fake", failpoints: bool = True,
                 state_dir: str | None = None, *, control_plane: bool = True, master_flags: tuple[str, ...] = (),
                 node_flags: tuple[str, ...] = ()) -> None:
        self._p = _Processes(masters, nodes, runtime, failpoints, state_dir, control_plane, master_flags, node_flags)
        self._tasks: list[asyncio.Task] = []
        self._kv: AsyncKV | None = None
        self._extra_kvs: list[AsyncKV] = []

    async def __aenter__(self) -> "AsyncCluster":
        self._info = await asyncio.to_thread(self._p.start)
        host, port = self._balancer_address()
        self._tasks.append(asyncio.create_task(self._balancer().serve(host, port)))
        return self

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for kv in ([self._kv] if self._kv is not None else []) + self._extra_kvs:
                await kv.close()
        finally:
            await asyncio.to_thread(self._p.stop, exc_type is not None)

    @property
    def kv(self) -> AsyncKV:
        if self._kv is None:
            self._kv = AsyncKV(self.kv_endpoints, tls=self.kv_ssl_context())
        return self._kv

    def kv_of(self, name: str) -> AsyncKV:
        kv = AsyncKV([self._p.master(name)["kv"]], tls=self.kv_ssl_context())
        self._extra_kvs.append(kv)
        return kv

    async def failpoint(self, name: str, **changes: Any) -> None:
        await asyncio.to_thread(self._p.failpoint, name, changes)

    async def leader(self) -> str:
        self._info = self._p.info
        return await agreed_leader(self._info)

    async def wait_for_leader(self, timeout: float = 15.0, other_than: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                leader = await self.leader()
                if leader != other_than:
                    return leader
            except ClusterError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"no leader{f' other than {other_than}' if other_than else ''} within {timeout}s")
            await asyncio.sleep(0.05)

    async def kill(self, name: str) -> None:
        await asyncio.to_thread(self._p.local.kill, name)
        await self._drop_connections(name)

    async def restart(self, name: str) -> None:
        await asyncio.to_thread(self._p.restart, name)

    async def pause(self, name: str) -> None:
        self._p.local.pause(name)

    async def resume(self, name: str) -> None:
        self._p.local.resume(name)

    async def partition(self, name: str, clients: bool = False) -> None:
        await asyncio.to_thread(self._p.partition, name, clients)

    async def heal(self, name: str) -> None:
        await asyncio.to_thread(self._p.heal, name)
