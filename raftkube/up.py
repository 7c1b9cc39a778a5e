"""`raftkube up`: a whole local cluster in the foreground, stopped by Ctrl-C or SIGTERM.

The masters' addresses are their Raft identities, so the first `up` on a state dir picks the ports
and writes them to `STATE_DIR/layout.json`; later `up`s on the same dir reuse them and find the
data again. While it runs, `STATE_DIR/cluster.json` says where everything is.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import fcntl
import io
import json
import os
import random
import secrets
import signal
import socket
import ssl
import sys
import time
import urllib.request
from typing import Any, Coroutine, TypeVar

from api import encryption
from api.authentication import ServiceAccountKeys, token_line
from api.kubernetes_service import first_address
from api.node_authorizer import NODES_GROUP, node_user
from raftkube import certs, cluster_file, kubeconfig, kv_access, kv_pki, restore
from raftkube.balancer import Balancer

READY_TIMEOUT = 30.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")
SERVICE_IP_RANGE = "127.96.0.0/16"  # ClusterIPs on the loopback range: kube-proxy binds them without root
KUBERNETES_SERVICE_PORT = 6443  # the `kubernetes` Service's port: kube-proxy without root cannot listen on 443
AUTHORIZATION = "Node,RBAC"  # kubelets as the Node authorizer allows; everyone else as their RBAC bindings allow


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--masters", type=int, default=3, choices=[1, 3, 5, 7])
    p.add_argument("--state-dir", default=".raftkube")
    p.add_argument("--base-port", type=int, default=0,
                   help="the API load balancer listens on BASE; master i uses raft BASE+100+i, kv BASE+200+i "
                        "(JSON gateway and gRPC), api BASE+300+i (default: free ports)")
    p.add_argument("--nodes", type=int, default=2, help="node agents to run (default 2; 0 for masters only)")
    p.add_argument("--runtime", choices=["process", "fake"], default="process",
                   help="process: pods are local processes; fake: pods only pretend to run, as kwok (default process)")
    p.add_argument("--restore", metavar="SNAPSHOT",
                   help="a new cluster starting from this `etcdctl snapshot save` file (the state dir must be new)")
    p.add_argument("--enable-failpoints", action="store_true",
                   help="let `raftkube chaos partition|heal` cut masters off (every master serves /debug/failpoints "
                        "on its KV port, to anyone who reaches it: off unless asked)")


# Below Linux's ephemeral range (32768-60999), where every outgoing connection takes its local port: a port
# picked there can be taken by some client between this pick and the master's bind.
PICK_FROM = range(20000, 32768)


_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nobody holds now, and that this process has not handed out before."""
    for _ in range(200):
        port = random.choice(PICK_FROM)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found on 127.0.0.1 between 20000 and 32767")


def plan_layout(state_dir: str, masters: int, base_port: int) -> dict[str, Any]:
    """{"masters": [{name, raft, kv, api}, ...], "api": the load balancer's HOST:PORT}. The kv port serves the
    JSON gateway and gRPC both, as etcd's client port does."""
    layout_path = os.path.join(state_dir, "layout.json")
    if os.path.exists(layout_path):
        with open(layout_path) as f:
            layout = json.load(f)
        if len(layout["masters"]) != masters:
            raise SystemExit(f"raftkube up: {state_dir} holds a {len(layout['masters'])}-master cluster; use "
                             f"--masters {len(layout['masters'])}, or another --state-dir for a new cluster")
        return layout
    else:
        entries = []
        for i in range(masters):
            ports = [base_port + off + i for off in (100, 200, 300)] if base_port else \
                [free_port() for _ in range(3)]
            entries.append({"name": f"m{i + 1}", "raft": f"127.0.0.1:{ports[0]}", "kv": f"127.0.0.1:{ports[1]}",
                            "api": f"127.0.0.1:{ports[2]}"})
        layout = {"masters": entries, "api": f"127.0.0.1:{base_port or free_port()}"}
    with open(layout_path, "w") as f:
        json.dump(layout, f, indent=2)
    return layout


def _private_file(path: str, content: str) -> str:
    if not os.path.exists(path):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(content)
    return path


def ensure_secret(state_dir: str) -> str:
    return _private_file(os.path.join(state_dir, "cluster.secret"), secrets.token_urlsafe(32))


def ensure_service_account_key(state_dir: str) -> str:
    """The key every master signs service account tokens with (api/authentication.py)."""
    return ServiceAccountKeys.create(os.path.join(state_dir, "pki", "service-account.key"))


def ensure_encryption_config(state_dir: str) -> str:
    """The masters' EncryptionConfiguration: Secrets sealed with AES-GCM under a key made once (api/encryption.py)."""
    return _private_file(os.path.join(state_dir, "pki", "encryption-config.yaml"), encryption.new_config())


# The token file's users besides the nodes: the admin (the kubeconfig's) and the control plane's components.
TOKEN_USERS: list[tuple[str, tuple[str, ...]]] = [("admin", ("system:masters",)),
                                                  ("system:kube-controller-manager", ()), ("system:kube-scheduler", ())]


def ensure_tokens(state_dir: str, users: list[tuple[str, tuple[str, ...]]] = TOKEN_USERS) -> str:
    """The kube API's token file, with a token for each of `users` (a user it already names keeps its token).
    It is replaced whole, under a lock: masters read it again when it changes, and nodes started at once each
    add their own."""
    path = os.path.join(state_dir, "tokens.csv")
    with open(os.open(path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = ""
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
        named = {row[1] for row in csv.reader(io.StringIO(text)) if len(row) > 1}
        added = "".join(token_line(secrets.token_urlsafe(24), user, groups) for user, groups in users
                        if user not in named)
        if added or not text:
            with open(os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(text + added)
            os.replace(path + ".tmp", path)
    return path


def ensure_node_tokens(state_dir: str, names: list[str]) -> str:
    """A token of its own for each node: user system:node:NAME in group system:nodes (api/node_authorizer.py)."""
    return ensure_tokens(state_dir, [(node_user(name), (NODES_GROUP,)) for name in names])


def token_for(state_dir: str, user: str = "admin") -> str:
    with open(os.path.join(state_dir, "tokens.csv"), newline="") as f:
        for row in csv.reader(f):
            if len(row) > 1 and row[1] == user:
                return row[0]
    raise KeyError(f"no token for {user!r} in {state_dir}/tokens.csv")


def admin_token(state_dir: str) -> str:
    return token_for(state_dir, "admin")



def master_argv(m: dict[str, str], layout: list[dict[str, str]], state_dir: str, secret_file: str,
                extra: tuple[str, ...] = ()) -> list[str]:
    peers = ",".join(o["raft"] for o in layout if o is not m)
    return [sys.executable, "-m", "raftkube", "master", "--name", m["name"], "--raft", m["raft"],
            "--peers", peers, "--kv-listen", m["kv"], "--api-listen", m["api"],
            *kv_pki.server_flags(kv_pki.pair(kv_pki.directory(state_dir), kv_pki.server_leaf(m["name"]))),
            "--data-dir", os.path.join(state_dir, "data", m["name"]), "--secret-file", secret_file, *extra]


def kv_server_names(kv: str) -> list[str]:
    """What a master's KV certificate must name: its KV address (HOST:PORT) and loopback."""
    return [*kv_pki.LOCAL_NAMES, kv.rpartition(":")[0]]


def spawn(argv: list[str], log_path: str) -> int:
    """Start a process in its own session (so Ctrl-C reaches only `up`), logging to a file."""
    import subprocess

    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc.pid


def is_ready(url: str, ca_file: str | None = None) -> bool:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1.5, context=context) as r:
            return r.status == 200
    except OSError:
        return False


def start(state_dir: str, masters: int, base_port: int, master_flags: tuple[str, ...] = (),
          balanced: bool = False, netns: dict[str, str] | None = None, snapshot: str | None = None) -> dict[str, Any]:
    """Spawn the masters and write cluster.json; `master_flags` go to every `raftkube master`.
    With `balanced`, the kubeconfig and cluster.json's "api" name the load balancer (`run` serves it).
    With `netns` (master name -> network namespace, and a layout.json already naming their addresses: see
    raftkube/netns.py), each master runs in its own namespace. With `snapshot`, every master's data dir is first
    restored from that file (raftkube/restore.py)."""
    state_dir = os.path.abspath(state_dir)
    os.makedirs(os.path.join(state_dir, "logs"), exist_ok=True)
    os.chmod(state_dir, 0o700)  # secrets, tokens and the data live here
    layout = plan_layout(state_dir, masters, base_port)
    secret_file = ensure_secret(state_dir)
    service_range = _flag(master_flags, "--service-cluster-ip-range", SERVICE_IP_RANGE)
    hosts = sorted({"127.0.0.1", *(m["api"].rpartition(":")[0] for m in layout["masters"])})
    pki = certs.ensure(os.path.join(state_dir, "pki"), hosts + certs.service_names(first_address(service_range)))
    kv_dir = kv_pki.directory(state_dir)
    kv_pki.ensure(kv_dir, {m["name"]: kv_server_names(m["kv"]) for m in layout["masters"]})
    security = ("--token-file", ensure_tokens(state_dir), "--tls-cert-file", pki["server.crt"],
                "--tls-private-key-file", pki["server.key"], "--ca-file", pki["ca.crt"],
                "--kubelet-client-certificate", pki["apiserver-kubelet-client.crt"],
                "--kubelet-client-key", pki["apiserver-kubelet-client.key"],
                "--kubelet-certificate-authority", pki["ca.crt"],
                "--encryption-provider-config", ensure_encryption_config(state_dir),
                "--service-account-key-file", ensure_service_account_key(state_dir),
                *kv_pki.shared_flags(kv_pki.pair(kv_dir, "ca")[0], kv_pki.pair(kv_dir, kv_pki.APISERVER)))
    for flag, value in (("--service-cluster-ip-range", SERVICE_IP_RANGE), ("--authorization-mode", AUTHORIZATION),
                        ("--kubernetes-service-port", str(KUBERNETES_SERVICE_PORT))):
        if flag not in master_flags:
            security += (flag, value)
    entries = []
    for m in layout["masters"]:
        if snapshot:
            restore.prepare(snapshot, os.path.join(state_dir, "data", m["name"]))
        argv = master_argv(m, layout["masters"], state_dir, secret_file, (*security, *master_flags))
        if netns:
            argv = ["ip", "netns", "exec", netns[m["name"]], *argv]  # ip execs the master: the pid is its own
        entries.append(master_entry(m, spawn(argv, os.path.join(state_dir, "logs", f"{m['name']}.log")), argv))
    api = f"https://{layout['api']}" if balanced else entries[0]["api"]
    kubeconfig_path = kubeconfig.write(os.path.join(state_dir, "kubeconfig"), api, admin_token(state_dir),
                                       pki["ca.crt"])
    info = {"masters": entries, "nodes": [], "api": api, "kubeconfig": kubeconfig_path, "ca": pki["ca.crt"],
            "kv_tls": kv_pki.cluster_entry(kv_dir), "state_dir": state_dir}
    info["dashboard"] = f"{api}/dashboard?token={admin_token(state_dir)}"  # logs in, as Jupyter's link does
    cluster_file.write(state_dir, info)
    return info


def master_entry(m: dict[str, str], pid: int, argv: list[str]) -> dict[str, Any]:
    """cluster.json's entry for master `m` of the layout (name, raft, kv and api addresses), running as `pid`."""
    kv = f"https://{m['kv']}" if "--kv-cert-file" in argv else f"http://{m['kv']}"
    api = f"https://{m['api']}" if "--tls-cert-file" in argv else f"http://{m['api']}"
    return {"name": m["name"], "pid": pid, "raft": m["raft"], "kv": kv, "grpc": kv, "api": api,
            "data_dir": argv[argv.index("--data-dir") + 1], "argv": argv}


def _flag(flags: tuple[str, ...], name: str, default: str) -> str:
    """The value given to `name` in a command line's flags, else `default`."""
    return flags[flags.index(name) + 1] if name in flags[:-1] else default


def pod_network(state_dir: str) -> str:
    """The first two octets' worth of this cluster's pod networks, "127.A.B": node i gets 127.A.(B+i).0/24.
    Picked at random once (kept in layout.json), so clusters side by side rarely share addresses."""
    layout_path = os.path.join(state_dir, "layout.json")
    with open(layout_path) as f:
        layout = json.load(f)
    if "pod_network" not in layout:
        a = random.choice([n for n in range(2, 127) if n != 96])  # 127.96/16 holds the ClusterIPs
        layout["pod_network"] = f"127.{a}.{random.randrange(0, 192)}"
        with open(layout_path, "w") as f:
            json.dump(layout, f, indent=2)
    return layout["pod_network"]


def node_argvs(state_dir: str, count: int, runtime: str, flags: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """(node names, argv) per node process: one `raftkube node` per process-runtime node (the first also runs
    kube-proxy for this host), or one process for all fake nodes (fake-0, fake-1, ...)."""
    base = [sys.executable, "-m", "raftkube", "node", "--state-dir", state_dir, "--runtime", runtime]
    if runtime == "fake":
        return [(f"fake-{i}", [*base, "--name", "fake", "--count", str(count), *flags]) for i in range(count)]
    a, b, c = pod_network(state_dir).split(".")
    return [(f"n{i + 1}", [*base, "--name", f"n{i + 1}", "--pod-cidr", f"{a}.{b}.{int(c) + i}.0/24",
                           "--proxy" if i == 0 else "--no-proxy", *flags]) for i in range(count)]


def start_nodes(info: dict[str, Any], count: int, runtime: str = "process", flags: tuple[str, ...] = ()
                ) -> list[dict[str, Any]]:
    """Spawn the node agents (after the masters are ready) and add them to cluster.json's "nodes"."""
    state_dir = info["state_dir"]
    pids: dict[str, int] = {}
    argvs = node_argvs(state_dir, count, runtime, flags)
    ensure_node_tokens(state_dir, [name for name, _ in argvs])  # before they start, each reads its own
    for name, argv in argvs:
        key = " ".join(argv)
        if key not in pids:
            log = name.rsplit("-", 1)[0] if runtime == "fake" else name
            pids[key] = spawn(argv, os.path.join(state_dir, "logs", f"{log}.log"))
        info.setdefault("nodes", []).append({"name": name, "pid": pids[key], "argv": argv})
    cluster_file.write(state_dir, info)
    return info["nodes"]


def wait_ready(info: dict[str, Any], timeout: float = READY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    pending = {m["name"]: m["api"] for m in info["masters"]}
    pids = {m["name"]: m["pid"] for m in info["masters"]}
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            if not is_running(pids[name]):
                print(f"  {name} exited; its log is in {info['state_dir']}/logs/{name}.log", flush=True)
                del pending[name]
            elif is_ready(url, info.get("ca")):
                print(f"  {name} ready ({url})", flush=True)
                del pending[name]
        time.sleep(0.2)
    return all(is_running(pid) for pid in pids.values()) and not pending


def stop(state_dir: str, grace: float = 5.0) -> None:
    """Stop every process cluster.json names (restarted masters included), then forget it."""
    try:
        info = cluster_file.read(state_dir)
    except SystemExit:
        return
    terminate(list(dict.fromkeys(p["pid"] for p in info.get("nodes", []) + info["masters"])), grace)
    os.remove(cluster_file.path(state_dir))


def terminate(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL whatever still runs after `grace` seconds; gone when this returns."""
    for pid in pids:
        _signal(pid, signal.SIGCONT)  # a paused master cannot handle SIGTERM
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_running(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    for pid in pids:
        wait_gone(pid)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def restart_master(info: dict[str, Any], name: str) -> int:
    """Start master `name` again with its recorded command line (killing it first if it still runs);
    cluster.json gets its new pid. For `raftkube chaos restart`, the demos and the tests."""
    m = next(m for m in info["masters"] if m["name"] == name)
    if is_running(m["pid"]):
        os.kill(m["pid"], signal.SIGKILL)
        wait_gone(m["pid"])
    m["pid"] = spawn(m["argv"], os.path.join(info["state_dir"], "logs", f"{name}.log"))
    cluster_file.write(info["state_dir"], info)
    return m["pid"]


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a killed master stays a zombie until `up`, its parent, reaps it)."""
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def quickstart(info: dict[str, Any], state_dir: str) -> str:
    kv = info["masters"][0]["kv"]
    grpc = ",".join(m["grpc"] for m in info["masters"])
    tls = " ".join(kv_access.flags(info.get("kv_tls")))
    command = os.path.relpath(sys.argv[0]) if os.path.basename(sys.argv[0]) == "raftkube" else "raftkube"
    flags = "" if os.path.abspath(state_dir) == os.path.abspath(".raftkube") else f" --state-dir {state_dir}"
    return f"""
raftkube is up: {len(info['masters'])} masters (state in {state_dir}, logs in {state_dir}/logs).

  Open the dashboard (the cluster CA signed its certificate: {info['ca']}):
    {info['dashboard']}

  Use kubectl:
    export KUBECONFIG={info['kubeconfig']}
    kubectl get nodes
    kubectl apply -f your-configmap.yaml && kubectl get configmaps -w

  Talk to the store with the operator's client certificate (the KV ports refuse clients without one):
    TLS="{tls}"
    curl -s $TLS {kv}/v3/kv/put   -d '{{"key":"Zm9v","value":"YmFy"}}'   # JSON gateway: base64 keys, values
    curl -s $TLS {kv}/v3/kv/range -d '{{"key":"Zm9v"}}'
    curl -sN $TLS {kv}/v3/watch -d '{{"create_request":{{"key":"Zm9v"}}}}'      # then put again elsewhere
    ETCDCTL_API=3 etcdctl $TLS --endpoints {grpc} get foo                        # gRPC: etcdctl 3.4
  Watch the masters:  {command} status --watch{flags}
  Kill the leader:    {command} chaos kill $({command} chaos leader{flags}){flags}
  Bring it back:      {command} chaos restart m1{flags}     (also: pause, resume, partition, heal)

Press Ctrl-C to stop every process started here; `make up` again finds the data.
"""


def _apis(state_dir: str) -> list[str]:
    """The masters' kube API URLs cluster.json names now ([] while it is being rewritten or gone)."""
    try:
        return [m["api"] for m in cluster_file.read(state_dir)["masters"]]
    except (OSError, ValueError, KeyError, SystemExit):
        return []


def _ignore_stop_signals() -> None:
    """From the first Ctrl-C or SIGTERM on: an impatient second one must not cut the clean-up short and leave
    masters behind."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C or SIGTERM: stop everything."""
    _ignore_stop_signals()
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """SIGTERM stops a cluster just as Ctrl-C does: both raise KeyboardInterrupt once, and the clean-up runs.
    Only for code outside an event loop: inside one, see `run_until_signal`."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)


def run_until_signal(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main), cut short by Ctrl-C or SIGTERM: the loop takes the signal and cancels `main`, whose
    clean-up runs, then KeyboardInterrupt is raised here. From the first signal on, more are ignored, so an
    impatient second one cannot cut that clean-up short. A handler that raises KeyboardInterrupt (as
    `stop_on_signals`) raises it wherever the loop is, inside any task or callback: it once left a task that
    never woke up again, and asyncio.run waited for ever to cancel it (`up` hung and left its masters running)."""
    interrupted = False

    async def until_signal() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal() -> None:
            nonlocal interrupted
            interrupted = True
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            _ignore_stop_signals()
            task.cancel()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal)
        return await main

    try:
        result = asyncio.run(until_signal())
    except asyncio.CancelledError:
        if not interrupted:
            raise
    if interrupted:
        raise KeyboardInterrupt
    return result


def run(args: argparse.Namespace) -> int:
    state_dir = os.path.abspath(args.state_dir)
    if os.path.exists(cluster_file.path(state_dir)):
        info = cluster_file.read(state_dir)
        if any(is_running(m["pid"]) for m in info["masters"]):
            raise SystemExit(f"raftkube up: a cluster from {state_dir} is already running; stop it first")
        os.remove(cluster_file.path(state_dir))
    stop_on_signals()
    print(f"starting {args.masters} masters and {args.nodes} {args.runtime} nodes from {state_dir} ...", flush=True)
    try:
        failpoints = ("--enable-failpoints",) if args.enable_failpoints else ()
        info = start(state_dir, args.masters, args.base_port, failpoints, balanced=True, snapshot=args.restore)
        if not wait_ready(info):
            print(f"raftkube up: not every master became ready within {READY_TIMEOUT:.0f}s; "
                  f"see {state_dir}/logs", file=sys.stderr, flush=True)
        if args.nodes > 0:
            nodes = start_nodes(info, args.nodes, args.runtime)
            print(f"  nodes {', '.join(n['name'] for n in nodes)} started ({args.runtime} runtime; "
                  f"logs in {state_dir}/logs)", flush=True)
        print(quickstart(info, state_dir), flush=True)
        host, _, port = info["api"].split("://", 1)[1].rpartition(":")
        balancer = Balancer([m["api"] for m in info["masters"]], info["ca"], discover=lambda: _apis(state_dir))
        run_until_signal(balancer.serve(host, int(port)))  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        _ignore_stop_signals()
        stop(state_dir)
    return 0
