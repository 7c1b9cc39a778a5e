"""What every workload needs from a running cluster, whichever system it is.

`Cluster` is the little interface both `RaftkubeCluster` and `EtcdCluster` offer (start, kill -9,
restart, stop); `Harness` wraps one with the clients all workloads use, over one transport for the
whole run (the etcd-JSON `KVClient`s on a single aiohttp session, or `GrpcKVClient`s on the etcd v3
gRPC API), plus the two questions asked of either system the same way: who leads, and is everyone
healthy again. The kube API benches (api.py, pods.py) start their masters with
`kube_masters`.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from typing import Iterator, Protocol

# `python bench/X.py` puts bench/ first on sys.path, where api.py would shadow the `api` package that raftkube
# imports: the repository's packages go first.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiohttp  # noqa: E402
import grpc  # noqa: E402

from grpc_client import GrpcKVClient  # noqa: E402
from kvstore.client import EtcdError, KVClient  # noqa: E402
from raftkube import kv_access, up  # noqa: E402

# What a client may meet while members die: an error answer, a dropped connection, a timeout.
TRANSIENT = (EtcdError, grpc.aio.AioRpcError, aiohttp.ClientError, OSError, asyncio.TimeoutError)

HEALTH_KEY = b"bench/health"


class Cluster(Protocol):
    label: str            # "raftkube" or "etcd": the column of the final table
    names: list[str]      # member names, in a fixed order
    keep_logs: bool       # set on trouble: `stop` then keeps the logs (not the data) for a look

    def start(self) -> None: ...
    def endpoint(self, name: str) -> str: ...   # the member's etcd v3 JSON gateway URL
    def grpc_endpoint(self, name: str) -> str: ...  # the member's etcd v3 gRPC endpoint
    kv_tls: dict[str, str] | None  # {"ca", "cert", "key"}: its client port's CA and a client certificate
    def kill(self, name: str) -> None: ...      # kill -9, and reap
    def restart(self, name: str) -> None: ...   # same command line, same data dir
    def stop(self) -> None: ...                 # every process it started, and its temp dirs
    def logs(self) -> str: ...                  # where to look when something went wrong


@contextlib.contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    """Start the cluster and stop it on the way out, whatever happens (Ctrl-C included)."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def kube_masters(prefix: str, auth: dict) -> Iterator[tuple[list[str], str]]:
    """Three raftkube masters in a fresh state dir (named with `prefix`), stopped on the way out. `auth` gets the
    admin token and the cluster CA (ApiClient's token= and ca_file=); yields the kube API URLs and the state dir."""
    state = tempfile.mkdtemp(prefix=prefix)
    info = up.start(state, 3, 0)
    auth.update(token=up.admin_token(state), ca_file=info["ca"])
    try:
        up.wait_ready(info)
        yield [m["api"] for m in info["masters"]], state
    finally:
        up.stop(state)


async def make_namespace(client, name: str) -> None:
    """Create namespace `name` with an ApiClient on kube_masters' URLs, once the kube API answers."""
    while True:
        try:
            await client.get("namespaces", "default")
            break
        except Exception:  # noqa: BLE001 - masters still starting
            await asyncio.sleep(0.2)
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def describe(exc: BaseException) -> str:
    """A short, stable description of a failed request, for counting and printing."""
    if isinstance(exc, EtcdError):
        message = exc.body.get("message") or exc.body.get("error") or exc.body
        return f"HTTP {exc.status} (code {exc.code}): {message}"
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"gRPC {exc.code().name}: {exc.details()}"
    if isinstance(exc, asyncio.TimeoutError):
        return "client timeout"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class Harness:
    """The clients of one run against one cluster, over one transport ("json" or "grpc")."""

    def __init__(self, cluster: Cluster, transport: str = "json") -> None:
        self.cluster = cluster
        self.transport = transport
        tls = kv_access.context(cluster.kv_tls)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=tls or True))
        self._clients: dict[tuple[str, float], KVClient | GrpcKVClient] = {}

    async def close(self) -> None:
        for client in self._clients.values():
            if isinstance(client, GrpcKVClient):
                await client.close()
        await self.session.close()

    @property
    def names(self) -> list[str]:
        return self.cluster.names

    def client(self, name: str, timeout: float = 5.0) -> KVClient | GrpcKVClient:
        key = (name, timeout)
        if key not in self._clients:
            if self.transport == "grpc":
                self._clients[key] = GrpcKVClient(self.cluster.grpc_endpoint(name), timeout=timeout,
                                                  tls=self.cluster.kv_tls)
            else:
                self._clients[key] = KVClient(self.cluster.endpoint(name), timeout=timeout, session=self.session)
        return self._clients[key]

    def clients(self, names: list[str] | None = None, timeout: float = 5.0) -> list[KVClient | GrpcKVClient]:
        return [self.client(n, timeout) for n in names or self.names]

    async def agreed_leader(self, among: list[str] | None = None) -> str | None:
        """The member every one of `among` names as leader, or None if they disagree or fail."""
        ids: dict[str, str] = {}
        leaders: set[str] = set()
        for name in among or self.names:
            st = await self.client(name, timeout=1.0).status()
            ids[str(st["header"]["member_id"])] = name
            leaders.add(str(st.get("leader", "0")))
        return ids.get(leaders.pop()) if len(leaders) == 1 else None

    async def leader(self, among: list[str] | None = None, timeout: float = 30.0) -> str:
        return await self._until(lambda: self.agreed_leader(among), timeout, "an agreed leader")

    async def healthy(self, among: list[str] | None = None) -> bool:
        """Every member agrees on a leader and answers a linearizable read."""
        if await self.agreed_leader(among) is None:
            return False
        for name in among or self.names:
            await self.client(name, timeout=1.0).range(HEALTH_KEY)
        return True

    async def wait_healthy(self, timeout: float = 60.0) -> float:
        """Wait until the whole cluster is healthy; return how long that took (s)."""
        started = time.perf_counter()
        await self._until(self.healthy, timeout, "a healthy cluster")
        return time.perf_counter() - started

    async def _until(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                result = await check()
                if result:
                    return result
            except TRANSIENT as exc:
                last = describe(exc)
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.cluster.label}: no {what} within {timeout:.0f}s "
                           f"(last: {last}); logs in {self.cluster.logs()}")
