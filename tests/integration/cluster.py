"""Real masters as OS processes on 127.0.0.1, for integration tests: start, kill, pause, restart."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from typing import Any, Awaitable, Callable, Iterator

import aiohttp

from api.client import ApiClient
from kvstore.client import EtcdError, KVClient
from raftkube import kv_access, up

# Leader election fast enough for tests: lease 3 s, renew deadline 2 s, retry 0.5 s.
_FAST_ELECTION = "--leader-elect-lease-duration 3 --leader-elect-renew-deadline 2 --leader-elect-retry-period 0.5"

# Fast leader election and short node timeouts.
FAST_CONTROL_PLANE = ("--control-plane-flags",
                      f"{_FAST_ELECTION} --node-monitor-grace-period 6 --pod-eviction-timeout 4")

# Fast leader election and a node grace period (an hour) that hand-made Nodes, which no kubelet renews, outlive.
PATIENT_CONTROL_PLANE = ("--control-plane-flags", f"{_FAST_ELECTION} --node-monitor-grace-period 3600")

# Only the controllers a pod's service account token needs (its `default` account, the kube-root-ca.crt ConfigMap),
# for node tests that bind pods by hand and write their own Endpoints (the scheduler runs, and has nothing to do).
ACCOUNT_CONTROLLERS = ("--control-plane-flags", f"{_FAST_ELECTION} --controllers serviceaccount,root-ca-cert-publisher")

# Node agents that keep up with FAST_CONTROL_PLANE's 6 s node grace period (given flags come after, and win).
FAST_NODES = ("--lease-interval", "1", "--node-status-interval", "2", "--fake-start-delay", "0.2",
              "--fake-run-time", "1")

# What a client may meet while masters die: an error answer, a dropped connection, a timeout.
TRANSIENT = (EtcdError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, what: str = "condition") -> Any:
    """Retry `check` until it returns something truthy without raising, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
            last = result
        except TRANSIENT as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


class Cluster:
    def __init__(self, state_dir: str, masters: int = 3, master_flags: tuple[str, ...] = (), *, nodes: int = 0,
                 runtime: str = "fake", node_flags: tuple[str, ...] = (), snapshot: str | None = None) -> None:
        """`nodes` node agents (`raftkube node`, the `runtime` given, with `node_flags`) join once the masters are
        ready: process nodes are n1, n2, ...; fake nodes fake-0, fake-1, ... in one process (FAST_NODES timing).
        With `snapshot` (an `etcdctl snapshot save` file), the masters start from it (`raftkube up --restore`)."""
        self.state_dir = state_dir
        if "--control-plane-flags" not in master_flags:  # store and API tests need no controllers: spare the CPU
            master_flags = (*master_flags, "--no-control-plane")
        self.info = up.start(state_dir, masters, 0, master_flags, snapshot=snapshot)
        if not up.wait_ready(self.info):
            self.stop()
            raise RuntimeError(f"masters did not become ready; logs in {state_dir}/logs")
        if nodes:
            up.start_nodes(self.info, nodes, runtime, (*FAST_NODES, *node_flags))
        self.clients: dict[str, KVClient] = {}

    @property
    def token(self) -> str:
        """The admin bearer token `up` made for the kube API."""
        return up.admin_token(self.state_dir)

    @property
    def ca(self) -> str:
        """The cluster's CA certificate, which signed the kube API's serving certificate."""
        return self.info["ca"]

    def api(self, user: str = "admin", timeout: float = 10.0) -> ApiClient:
        """A kube API client on every master (it fails over between them), as `user` from tokens.csv."""
        return ApiClient([m["api"] for m in self.info["masters"]], token=up.token_for(self.state_dir, user),
                         ca_file=self.ca, timeout=timeout)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def kubelet_tls(self, certificate: str | None = "apiserver-kubelet-client") -> ssl.SSLContext:
        """A strict client context toward a kubelet's server, showing the state dir's pki/CERTIFICATE.crt (the API
        server's kubelet client by default; None: no certificate)."""
        context = self.tls()
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        if certificate:
            pki = os.path.join(self.state_dir, "pki")
            context.load_cert_chain(os.path.join(pki, f"{certificate}.crt"), os.path.join(pki, f"{certificate}.key"))
        return context

    @property
    def kv_files(self) -> dict[str, str]:
        """The KV ports' CA and the operator's client certificate and key (cluster.json's kv_tls)."""
        return self.info["kv_tls"]

    def kv_tls(self) -> ssl.SSLContext:
        """An ssl context with the operator's client certificate, for the KV ports."""
        return kv_access.context(self.kv_files)

    @property
    def kv_flags(self) -> list[str]:
        """etcdctl's and curl's --cacert, --cert and --key for the KV ports."""
        return kv_access.flags(self.kv_files)

    @property
    def names(self) -> list[str]:
        return [m["name"] for m in self.info["masters"]]

    def grpc(self, *names: str) -> str:
        """The etcd v3 gRPC endpoints of these masters (all when none is named), comma-separated, for etcdctl."""
        return ",".join(self.master(n)["grpc"] for n in names or self.names)

    def master(self, name: str) -> dict[str, Any]:
        return next(m for m in self.info["masters"] if m["name"] == name)

    def kv(self, name: str, timeout: float = 5.0) -> KVClient:
        if name not in self.clients:
            self.clients[name] = KVClient(self.master(name)["kv"], timeout=timeout, tls=self.kv_tls())
        return self.clients[name]

    async def leader(self, among: list[str] | None = None, timeout: float = 15.0) -> str:
        """The name of the master every reachable one agrees leads."""
        names = among or self.names

        async def agreed() -> str | None:
            ids, leaders = {}, set()
            for name in names:
                st = await self.kv(name).status()
                ids[st["header"]["member_id"]] = name
                leaders.add(st.get("leader"))
            return ids.get(leaders.pop()) if len(leaders) == 1 else None

        return await eventually(agreed, timeout=timeout, what="an agreed leader")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        pid = self.master(name)["pid"]
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            up.wait_gone(pid)  # reaps it too when it is our child

    def chaos(self, *args: str) -> str:
        """Run `raftkube chaos ARGS` against this cluster, as a user would; its output."""
        out = subprocess.run([sys.executable, "-m", "raftkube", "chaos", *args, "--state-dir", self.state_dir],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def restart(self, name: str) -> int:
        """Start `name` again with its recorded command line; its new pid."""
        return up.restart_master(self.info, name)

    async def close_clients(self) -> None:
        for c in self.clients.values():
            await c.close()
        self.clients.clear()

    def stop(self) -> None:
        up.stop(self.state_dir)


@contextlib.contextmanager
def hand_started_master(state_dir: str) -> Iterator[tuple[str, str]]:
    """One `raftkube master` started by hand with only the flags it requires (no KV TLS, no token file, no
    controllers): (its KV URL, its log file), once its KV port answers; stopped on the way out."""
    os.makedirs(state_dir, exist_ok=True)
    raft, kv, api = (f"127.0.0.1:{up.free_port()}" for _ in range(3))
    log = os.path.join(state_dir, "master.log")
    pid = up.spawn([sys.executable, "-m", "raftkube", "master", "--name", "solo", "--raft", raft, "--kv-listen", kv,
                    "--api-listen", api, "--data-dir", os.path.join(state_dir, "data"), "--no-control-plane"], log)
    try:
        deadline = time.monotonic() + up.READY_TIMEOUT
        while not _healthy(f"http://{kv}"):
            assert up.is_running(pid) and time.monotonic() < deadline, f"the master did not start; see {log}"
            time.sleep(0.1)
        yield f"http://{kv}", log
    finally:
        os.kill(pid, signal.SIGTERM)
        up.wait_gone(pid)


def _healthy(kv: str) -> bool:
    try:
        with urllib.request.urlopen(kv + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
