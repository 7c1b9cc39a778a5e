"""`raftkube master`: one master process: the replicated store and the APIs in front of it."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import logging
import os
import secrets
import signal
import ssl
import sys
import time
from typing import Any, Awaitable

import uvloop
from aiohttp import web
from prometheus_client import CollectorRegistry

from kvstore.errors import KVFailure
from kvstore.etcd_service import EtcdService
from kvstore.gateway import KVGateway
from kvstore import kv_port
from kvstore.grpc_server import EtcdGrpc
from kvstore.grpc_wire import GrpcServer
from kvstore.leader_duties import LeaderDuties, Retention
from kvstore.mechanisms import LABS, without
from kvstore.membership import Membership, saved_members
from kvstore.metrics import StoreCollector, handler as metrics_handler, new_registry
from kvstore.replica import Replica
from kvstore.store import Store
from kvstore.watch import WatchHub
from raftkube import kv_flags, logs, restore

log = logging.getLogger("raftkube.master")
# Seconds a stopping master gives the requests in flight, then it cuts what is left (watches never end by
# themselves) and leaves Raft: aiohttp's default, 60 s per port, kept a SIGTERMed master's replica running for
# minutes, and a member removed and added back then met its old self still talking under its address.
SHUTDOWN_GRACE = 1.0


def id64(text: str) -> int:
    """A stable 64-bit id, as etcd uses for members and clusters."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"raftkube master: expected HOST:PORT, got {text!r}")
    return host, int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="this master's name, e.g. m1")
    p.add_argument("--raft", required=True, help="HOST:PORT of this master's Raft port (its identity)")
    p.add_argument("--peers", default="", help="comma-separated HOST:PORT Raft addresses of the other masters")
    p.add_argument("--kv-listen", required=True,
                   help="HOST:PORT for the etcd v3 API: the JSON gateway and gRPC (etcdctl, etcd client libraries)")
    p.add_argument("--grpc-listen", help="HOST:PORT for the etcd v3 gRPC API alone, besides --kv-listen (optional)")
    kv_flags.add_arguments(p)
    p.add_argument("--api-listen", required=True, help="HOST:PORT for the kube API")
    p.add_argument("--data-dir", required=True, help="where the journal and snapshots live")
    p.add_argument("--secret-file", help="file holding the cluster secret (required with --peers)")
    p.add_argument("--token-file", help='token,user,uid,"group1,group2" lines: the bearer tokens the kube API '
                                        "accepts (read again when it changes)")
    p.add_argument("--service-account-key-file", metavar="FILE",
                   help="the EC private key (PEM) that signs and checks service account tokens; the same on every "
                        "master")
    p.add_argument("--authorization-mode", default="AlwaysAllow",
                   help="Node,RBAC (as raftkube up runs) or AlwaysAllow (the default: any signed-in user may do "
                        "anything)")
    p.add_argument("--tls-cert-file", help="serve the kube API over TLS with this certificate (PEM)")
    p.add_argument("--tls-private-key-file", help="the certificate's private key (PEM)")
    p.add_argument("--request-timeout", type=float, default=2.0,
                   help="seconds a write or linearizable read may wait for a quorum (default 2)")
    p.add_argument("--auto-compaction-retention", default="10000",
                   help="revisions to keep (e.g. 10000) or a time window (e.g. 5m); 0 keeps everything")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                   help="the CIDR ClusterIPs are allocated from (default 10.96.0.0/12); its first address is the "
                        "`kubernetes` Service's")
    p.add_argument("--kubernetes-service-port", type=int, default=443,
                   help="the port of the `kubernetes` Service in namespace default (default 443, as Kubernetes; "
                        "kube-proxy needs root to listen on it)")
    p.add_argument("--advertise-address", help="the address pods reach this master's API at, in the `kubernetes` "
                                               "Endpoints (default: --api-listen's host)")
    p.add_argument("--watch-progress-interval", type=float, default=10.0,
                   help="seconds between progress notifications on idle watches that ask for them")
    p.add_argument("--snapshot-entries", type=int, default=20_000,
                   help="snapshot the state and trim the Raft log after this many entries")
    p.add_argument("--no-control-plane", action="store_true",
                   help="do not run this master's controller-manager and scheduler (a child process)")
    p.add_argument("--control-plane-flags", default="",
                   help='extra flags for that child, e.g. "--leader-elect-lease-duration 4 ..." for demos')
    p.add_argument("--ca-file", help="the CA that signed --tls-cert-file, for this master's own controllers")
    p.add_argument("--kubelet-client-certificate", metavar="FILE",
                   help="the client certificate this master shows kubelets (CN kube-apiserver-kubelet-client)")
    p.add_argument("--kubelet-client-key", metavar="FILE", help="its private key")
    p.add_argument("--kubelet-certificate-authority", metavar="FILE",
                   help="the CA kubelets' serving certificates must be signed by; without these three flags the "
                        "master reaches no kubelet (no logs, exec, port-forward, top)")
    p.add_argument("--max-requests-inflight", type=int, default=200,
                   help="read-only kube API requests served at once; past it, 429 with Retry-After (default 200)")
    p.add_argument("--max-mutating-requests-inflight", type=int, default=100,
                   help="mutating kube API requests served at once; past it, 429 with Retry-After (default 100)")
    p.add_argument("--max-watches-per-user", type=int, default=200,
                   help="watches one user may keep open on this master (default 200)")
    p.add_argument("--encryption-provider-config", metavar="FILE",
                   help="an EncryptionConfiguration (apiserver.config.k8s.io/v1): what is encrypted at rest, how")
    logs.add_argument(p)
    p.add_argument("--enable-failpoints", action="store_true",
                   help="serve /debug/failpoints (partitions for chaos demos); never in production")
    p.add_argument("--lab", choices=list(LABS),
                   help="switch one of the store's safety mechanisms off, for `raftkube lab run` (docs/labs.md); "
                        "never in production")


def _private(data_dir: str) -> None:
    """The data dir 0700 and everything in it 0600 (or 0700), even if an earlier start made them looser."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    for root, dirs, files in os.walk(data_dir):
        os.chmod(root, 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def read_secret(args: argparse.Namespace, peers: list[str]) -> str:
    if args.secret_file:
        with open(args.secret_file) as f:
            secret = f.read().strip()
        if not secret:
            raise SystemExit(f"raftkube master {args.name}: the secret file {args.secret_file} is empty")
        return secret
    if peers:
        raise SystemExit(f"raftkube master {args.name}: --secret-file is required with --peers: "
                         "the Raft port never runs without the cluster secret")
    path = os.path.join(args.data_dir, "cluster.secret")  # a lone master makes its own
    if not os.path.exists(path):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(secrets.token_urlsafe(32))
    with open(path) as f:
        return f.read().strip()


def step_wall_clock(seconds: float) -> None:
    """The clock failpoint: from now on this process's `time.time()` is `seconds` off, as after `date -s` (which
    would step the whole machine's). Monotonic clocks are left alone, as a real step leaves them: nothing whose
    correctness depends on durations (leases, elections) may read the wall clock."""
    wall = time.time
    time.time = lambda: wall() + seconds


async def _first_of(*waits: Awaitable[Any]) -> None:
    """Wait until one of `waits` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


class Master:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
        _private(args.data_dir)
        saved = saved_members(args.data_dir)  # the cluster's topology wins over stale --peers flags
        if saved is not None:
            if args.raft not in saved:
                raise SystemExit(f"raftkube master {args.name}: {args.raft} was removed from the cluster "
                                 f"({', '.join(saved)}); add it again with `member add`, with a fresh --data-dir")
            if sorted(saved) != sorted([args.raft, *self.peers]):
                log.info("master %s: peers from %s/members.json, not --peers", args.name, args.data_dir)
            self.peers = [p for p in saved if p != args.raft]
        self.secret = read_secret(args, self.peers)
        self.kv_tls = kv_flags.server_tls(args)  # checked before anything starts: a bad file stops us here
        self.kv_client_tls = kv_flags.client_tls(args)
        self.kv_scheme = "https" if self.kv_tls is not None else "http"
        self.cluster_id = id64(",".join(sorted([args.raft, *self.peers])))
        self.member_id = id64(args.raft)
        self.clients_cut = False  # the clients failpoint

    def members(self) -> list[dict]:
        """Every master we know: the configured ones, with what each announced about itself."""
        announced = dict(self.store.machine.members)
        out = []
        for raft in self.membership.members():
            out.append({"id": id64(raft), "raft": raft, **announced.get(raft, {})})
        return out

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT (exit status 0), or until the replica cannot go on (2): the cluster
        refused this master, or a snapshot would not load."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        exit_status = 0

        def fatal(why: str) -> None:
            nonlocal exit_status
            if exit_status:
                return  # said once
            log.critical("master %s: %s", self.args.name, why)
            exit_status = 2
            stop.set()

        mechanisms = without(self.args.lab)
        if self.args.lab:
            log.warning("master %s: lab %s: %s is OFF", self.args.name, self.args.lab, LABS[self.args.lab])
        self.hub = WatchHub(every_event=mechanisms.watch_every_event)
        self.replica = Replica(
            self_addr=self.args.raft, peers=self.peers, data_dir=self.args.data_dir, secret=self.secret,
            on_applied=self.hub.publish,
            on_restored=lambda: self.hub.reset("etcdserver: this master's store was replaced by a snapshot; "
                                               "re-watch from the revision after your last event"),
            on_fatal=fatal, snapshot_entries=self.args.snapshot_entries, mechanisms=mechanisms,
        )
        restored = restore.pending(self.args.data_dir)
        if restored is not None:  # before the first tick: the journal, if any, replays on top of it
            self.replica.consumer.machine = restored
            log.info("master %s: starting from a restored snapshot at revision %d", self.args.name, restored.revision)
        self.store = Store(self.replica, name=self.args.name, deadline=self.args.request_timeout,
                           mechanisms=mechanisms)
        self.membership = Membership(self.replica, self.args.data_dir)
        registry = new_registry()  # this master's metrics, on both ports (kvstore/metrics.py, api/metrics.py)
        StoreCollector(self.store, self.hub, self.replica, self.args.data_dir).register(registry)
        service = EtcdService(self.store, self.hub, cluster_id=self.cluster_id, member_id=self.member_id,
                              members=self.members, data_dir=self.args.data_dir,
                              progress_interval=self.args.watch_progress_interval, membership=self.membership,
                              client_tls=self.kv_client_tls)
        kv_app = KVGateway(service).app()
        kv_app.router.add_get("/metrics", metrics_handler(registry))  # behind the port's TLS, as etcd's
        if self.args.enable_failpoints:
            kv_app.router.add_post("/debug/failpoints", self.failpoints)
            kv_app.middlewares.append(self.drop_when_cut)
        grpc = GrpcServer(EtcdGrpc(service).methods())
        kv_runner = web.AppRunner(kv_app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
        await kv_runner.setup()
        listeners = [await kv_port.serve(kv_runner, grpc, *split_hostport(self.args.kv_listen), tls=self.kv_tls)]
        if self.args.grpc_listen:
            listeners.append(await loop.create_server(grpc.connection, *split_hostport(self.args.grpc_listen),
                                                      reuse_address=True, ssl=self.kv_tls))
        duties = LeaderDuties(self.store, Retention.parse(self.args.auto_compaction_retention))
        tasks = [asyncio.create_task(duties.run()), asyncio.create_task(self.announce()),
                 asyncio.create_task(self.save_topology())]
        if restored is not None:
            tasks.append(asyncio.create_task(restore.settle(self.replica, self.store, self.args.data_dir)))

        # The kube API's code loads in a thread while the loop already serves the store (raftkube/master_api.py),
        # once the store's state is loaded: both need the GIL, and the store's clients wait for the load (a
        # restarted master with 100,000 keys of 1 KB loaded in 0.31 s alone, in 0.37 s beside the import).
        await _first_of(self.replica.state_loaded.wait(), stop.wait())
        runners, control_plane = [kv_runner], None
        if not stop.is_set():  # stopped before its state loaded (a snapshot that would not load): no kube API
            api_runner, control_plane = await self._start_kube_api(registry, tasks)
            runners.append(api_runner)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("master %s: raft %s, kv %s://%s, api http://%s, data %s", self.args.name, self.args.raft,
                 self.kv_scheme, self.args.kv_listen, self.args.api_listen, self.args.data_dir)
        await stop.wait()
        log.info("master %s: stopping", self.args.name)
        if control_plane is not None and control_plane.returncode is None:
            control_plane.terminate()  # it releases its leases, then exits
            try:
                await asyncio.wait_for(control_plane.wait(), 3.0)
            except asyncio.TimeoutError:
                control_plane.kill()
        for t in tasks:
            t.cancel()
        for listener in listeners:
            listener.close()
        grpc.close()
        await asyncio.gather(*(r.cleanup() for r in runners))  # requests get SHUTDOWN_GRACE, watches are cut
        self.store.close()
        self.replica.close()
        return exit_status

    async def _start_kube_api(self, registry: CollectorRegistry, tasks: list[asyncio.Task]
                              ) -> tuple[web.AppRunner, asyncio.subprocess.Process | None]:
        """The kube API on --api-listen (its background tasks join `tasks`), and its control plane child unless
        --no-control-plane."""
        master_api = await asyncio.to_thread(importlib.import_module, "raftkube.master_api")
        kube = master_api.KubeApi(self.args)
        api_app, api_tasks = kube.app(self.store, self.hub, registry, self.members, self.kv_client_tls)
        tasks += api_tasks
        if self.args.enable_failpoints:
            api_app.middlewares.append(self.drop_when_cut)
        runner = await self._serve(api_app, self.args.api_listen, kube.tls)
        return runner, None if self.args.no_control_plane else await kube.start_control_plane()

    async def _serve(self, app: web.Application, listen: str, tls: ssl.SSLContext | None = None) -> web.AppRunner:
        host, port = split_hostport(listen)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True, ssl_context=tls).start()
        return runner

    async def save_topology(self) -> None:
        while True:
            self.membership.persist()
            await asyncio.sleep(0.2)

    async def announce(self) -> None:
        """Tell the cluster who we are, once, retrying until a quorum takes it."""
        kv = f"{self.kv_scheme}://{self.args.kv_listen}"
        info = {"raft": self.args.raft, "name": self.args.name, "kv": kv, "api": f"http://{self.args.api_listen}",
                "grpc": f"{self.kv_scheme}://{self.args.grpc_listen}" if self.args.grpc_listen else kv}
        while True:
            if self.store.machine.members.get(self.args.raft) == info:
                return
            try:
                await self.store.propose({"op": "member_announce", "member": info})
                return
            except KVFailure:
                await asyncio.sleep(0.5)

    async def failpoints(self, request: web.Request) -> web.Response:
        """POST {"cut": ["HOST:PORT", ...]} drops all Raft traffic with those peers; {"heal": [...]} restores it;
        {"clients": true|false} drops every new client connection on both ports (all but this endpoint), as a
        network cut would; {"clock_step": SECONDS} steps this master's wall clock (`date -s`). Answers the peers
        now cut off, whether clients are cut, and the wall clock now. (Switching a safety mechanism off is no
        failpoint: only `--lab` does it, at start.)"""
        try:
            body = await request.json()
        except ValueError:
            body = None
        ok = isinstance(body, dict) and set(body) <= {"cut", "heal", "clients", "clock_step"} and all(
            isinstance(body.get(k, []), list) and all(isinstance(p, str) for p in body.get(k, []))
            for k in ("cut", "heal")) and isinstance(body.get("clients", False), bool) \
            and type(body.get("clock_step", 0)) in (int, float)
        if not ok:
            return web.json_response({"error": 'expected {"cut": ["HOST:PORT", ...]}, {"heal": [...]}, '
                                               '{"clients": true|false} or {"clock_step": SECONDS}'}, status=400)
        if body.get("clock_step"):
            step_wall_clock(body["clock_step"])
            log.warning("failpoint: wall clock stepped by %+gs", body["clock_step"])
        if "clients" in body:
            self.clients_cut = body["clients"]
            log.warning("failpoint: clients %s", "CUT OFF (connections dropped)" if self.clients_cut else "back")
        peers = (set(self.replica.partitioned_peers()) | set(body.get("cut", []))) - set(body.get("heal", []))
        self.replica.set_partitioned(peers)
        if "cut" in body or "heal" in body:
            log.info("failpoint: Raft traffic cut with %s", sorted(peers) or "nobody")
        return web.json_response({"partition": sorted(peers), "clients": self.clients_cut, "at": time.time()})

    @web.middleware
    async def drop_when_cut(self, request: web.Request, handler) -> web.StreamResponse:
        """The clients failpoint: close the connection without an answer, as a cut network would."""
        if self.clients_cut and request.path != "/debug/failpoints":
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable(text="cut off from clients (failpoint)")
        return await handler(request)

def run(args: argparse.Namespace) -> None:
    os.umask(0o077)  # data dirs 0700, journal, snapshots, secrets and keys 0600, however the master is started
    logs.setup(args.name, args.log_format)
    sys.exit(uvloop.run(Master(args).run()))
