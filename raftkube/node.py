"""`raftkube node`: a kubelet (or, with --count, several fake ones) and, with the process runtime, kube-proxy.

    raftkube node --name n1 --server https://127.0.0.1:6443 --token-file n1.token --ca-file ca.crt \
        --tls-cert-file n1.crt --tls-private-key-file n1.key
    raftkube node --name sim --count 100 --runtime fake --state-dir .raftkube    # sim-0 ... sim-99

Each node is its own user, system:node:NAME in group system:nodes (api/node_authorizer.py): with --token-file, the
token of the one node named; with --state-dir, each node's token from its tokens.csv (added there if missing).

Each node keeps its pods under ROOT_DIR/NAME (default: STATE_DIR/nodes, else .raftkube-nodes). Its pods get
addresses from --pod-cidr, a /24 on the loopback range (any 127/8 address is bindable without root); the node's
own address (InternalIP, where its kubelet server listens) is that network's first address. Pod IPs on loopback
reach only the pods of one host; nodes in separate containers (docker-compose.yml) route theirs to each other
with `--pod-network host-gw --cluster-cidr CIDR` (node/pod_network.py).

The kubelet server speaks TLS to the API server's client certificate only (node/kubelet_auth.py). As root, the
node isolates its pods (node/isolation.py): a mount namespace and root of their own, an unprivileged uid
(--pod-uid, --pod-gid), hostPath only under --allowed-host-paths.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
import ssl
import zlib
from typing import TYPE_CHECKING

import uvloop

from api.client import ApiClient
from api.node_authorizer import node_user
from node import metrics as node_metrics
from node.host_paths import HostPaths
from node.isolation import Direct, Isolated, Placement
from node.kubelet import Kubelet, KubeletConfig
from node.kubelet_auth import ClientCertificate
from node.kubelet_server import KubeletServer
from node.runtime_fake import FakeRuntime
from node.runtime_process import ProcessRuntime
from node.stats import StatsCollector
from raftkube import certs, client_flags, logs

if TYPE_CHECKING:
    from node.pod_network import HostGateway

log = logging.getLogger("raftkube.node")
DEFAULT_POD_ID = 65534


def add_arguments(p: argparse.ArgumentParser) -> None:
    logs.add_argument(p)
    client_flags.add_arguments(p)
    p.add_argument("--name", required=True, help="the Node's name (with --count: the prefix of NAME-0, NAME-1, ...)")
    p.add_argument("--runtime", choices=["process", "fake"], default="process",
                   help="process: containers are local processes; fake: no processes, as kwok (default process)")
    p.add_argument("--count", type=int, help="run this many nodes in this process, named NAME-0, NAME-1, ...")
    p.add_argument("--root-dir", help="where pod sandboxes live (default STATE_DIR/nodes or .raftkube-nodes)")
    p.add_argument("--pod-cidr", help="the node's pod network, e.g. 127.1.7.0/24 (default: from the name)")
    p.add_argument("--node-ip", help="the node's InternalIP, where its kubelet server and NodePorts listen "
                                     "(default: the pod network's first address; 127.0.0.1 for fake nodes)")
    p.add_argument("--kubelet-port", type=int, default=0,
                   help="the kubelet server's port (logs, exec, attach, port-forward, stats; default: any free one)")
    p.add_argument("--cpu", default="4", help="capacity and allocatable cpu (default 4)")
    p.add_argument("--memory", default="8Gi", help="capacity and allocatable memory (default 8Gi)")
    p.add_argument("--max-pods", default="110", help="capacity and allocatable pods (default 110)")
    p.add_argument("--lease-interval", type=float, default=10.0, help="seconds between Lease renewals (default 10)")
    p.add_argument("--lease-duration", type=int, default=40, help="the Lease's leaseDurationSeconds (default 40)")
    p.add_argument("--node-status-interval", type=float, default=10.0,
                   help="seconds between checks that the Node's status is current (default 10)")
    p.add_argument("--crashloop-base-delay", type=float, default=10.0,
                   help="CrashLoopBackOff's first delay in seconds, doubled each restart up to 300 (default 10)")
    p.add_argument("--max-log-bytes", type=int, default=1 << 20,
                   help="a container's log is rotated past this size; at most twice it is kept (default 1 MiB)")
    p.add_argument("--fake-start-delay", type=float, default=0.5,
                   help="fake runtime: seconds before a container runs (default 0.5)")
    p.add_argument("--fake-run-time", type=float, default=2.0,
                   help="fake runtime: seconds a Never/OnFailure container runs before it exits (default 2)")
    p.add_argument("--pod-network", choices=["loopback", "host-gw"], default="loopback",
                   help="loopback: pod IPs reach this host only (default); host-gw: routed between the nodes of "
                        "--cluster-cidr through their InternalIPs, as flannel's host-gw (needs CAP_NET_ADMIN)")
    p.add_argument("--cluster-cidr", help="host-gw: the pod network of the whole cluster, e.g. 10.244.0.0/16")
    p.add_argument("--proxy", action=argparse.BooleanOptionalAction, default=None,
                   help="also run kube-proxy for this host (default: with the process runtime)")
    p.add_argument("--tls-cert-file", help="the kubelet server's certificate, signed by the cluster CA for --node-ip "
                                           "(default with --state-dir: one this node signs with the state dir's CA)")
    p.add_argument("--tls-private-key-file", help="its private key")
    p.add_argument("--client-ca-file", help="the CA that signed the API server's client certificate, which the "
                                            "kubelet server requires (default: --ca-file, or the state dir's CA)")
    p.add_argument("--allowed-host-paths", default="", metavar="PREFIX[,PREFIX]",
                   help="the node paths a pod may have as hostPath volumes (default: none)")
    p.add_argument("--pod-uid", type=int, default=DEFAULT_POD_ID,
                   help="as root: the uid of a container whose securityContext names none (default 65534, nobody)")
    p.add_argument("--pod-gid", type=int, default=DEFAULT_POD_ID,
                   help="as root: the gid of a container whose securityContext names none (default 65534, nogroup)")


def default_pod_cidr(name: str) -> str:
    """127.1.N.0/24 with N from the name, so nodes started by hand rarely share a network."""
    return f"127.1.{1 + zlib.crc32(name.encode()) % 254}.0/24"


def node_names(args: argparse.Namespace) -> list[str]:
    return [args.name] if args.count is None else [f"{args.name}-{i}" for i in range(args.count)]


def node_ip(text: str) -> str:
    """--node-ip as an address; a host name (a compose service's) is resolved once, at start."""
    try:
        return socket.gethostbyname(text)
    except OSError as exc:
        raise SystemExit(f"raftkube node: --node-ip {text!r} is not an address this host can resolve: {exc}") from None


def placement(args: argparse.Namespace) -> Placement:
    """Isolated pods when this process is root, else today's direct processes (node/isolation.py), said once."""
    if os.geteuid() != 0:
        if args.runtime == "process":
            log.warning("node %s runs as uid %d, not root: its pods run as this user, in directories of its state "
                        "dir, and can read what it can read (no mount namespace, no other uid; runAsUser and "
                        "fsGroup ignored); run the node as root to isolate them", args.name, os.geteuid())
        return Direct()
    for flag, value in (("--pod-uid", args.pod_uid), ("--pod-gid", args.pod_gid)):
        if not 0 < value < 2**32 - 1:
            raise SystemExit(f"raftkube node: {flag} {value}: pods run as an unprivileged id, from 1 to {2**32 - 2}")
    return Isolated(uid=args.pod_uid, gid=args.pod_gid)


def serving_credentials(args: argparse.Namespace, names: list[str], address: str, root: str) -> ClientCertificate:
    """The kubelet server's TLS (node/kubelet_auth.py): the files given, or with --state-dir a certificate for this
    node's address and names, signed here with the state dir's CA (such a node is the operator's own, as trusted
    as the state dir it reads its token from)."""
    cert, key = args.tls_cert_file, args.tls_private_key_file
    client_ca = args.client_ca_file or args.ca_file
    where = f"raftkube node {args.name}"
    if bool(cert) != bool(key):
        raise SystemExit(f"{where}: --tls-cert-file and --tls-private-key-file go together")
    if not cert and not args.state_dir:
        raise SystemExit(f"{where}: the kubelet server speaks TLS: give --tls-cert-file and --tls-private-key-file "
                         "(a certificate the cluster CA signed for --node-ip), or --state-dir of a `raftkube up` "
                         "cluster")
    if args.state_dir:
        pki = os.path.join(args.state_dir, "pki")
        client_ca = client_ca or os.path.join(pki, "ca.crt")
        if not cert:
            cert, key = (os.path.join(root, f"kubelet-{args.name}.{ext}") for ext in ("crt", "key"))
            os.makedirs(root, exist_ok=True)
            try:
                certs.kubelet_serving(pki, names, address, cert, key)
            except (OSError, ValueError) as exc:
                raise SystemExit(f"{where}: cannot sign the kubelet's certificate with the CA of {pki} ({exc}); "
                                 "start the cluster once with this version's `raftkube up`, or give "
                                 "--tls-cert-file") from None
    if not client_ca:
        raise SystemExit(f"{where}: give --client-ca-file (or --ca-file): the CA of the API server's client "
                         "certificate")
    try:
        return ClientCertificate(cert, key, client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"{where}: the kubelet server's TLS files: {exc}") from None


def host_paths(args: argparse.Namespace) -> HostPaths:
    try:
        return HostPaths([p for p in args.allowed_host_paths.split(",") if p])
    except ValueError as exc:
        raise SystemExit(f"raftkube node: {exc}") from None


def run(args: argparse.Namespace) -> int:
    logs.setup(args.name, args.log_format)
    if args.count is not None and args.count < 1:
        raise SystemExit("raftkube node: --count must be at least 1")
    if args.token_file and args.count is not None:
        raise SystemExit("raftkube node: --token-file holds one node's token; with --count each node needs its own: "
                         "give --state-dir (the nodes' tokens are in its tokens.csv)")
    if args.pod_cidr and args.count is not None:
        raise SystemExit("raftkube node: --pod-cidr names one node's network; with --count each node picks its own")
    try:
        if args.pod_cidr:
            ipaddress.ip_network(args.pod_cidr, strict=False)
    except ValueError as exc:
        raise SystemExit(f"raftkube node: --pod-cidr {args.pod_cidr!r}: {exc}") from None
    if args.pod_network == "host-gw" and not (args.pod_cidr and args.cluster_cidr and args.count is None):
        raise SystemExit("raftkube node: --pod-network host-gw routes one node's --pod-cidr inside --cluster-cidr: "
                         "give both (and no --count)")
    uvloop.run(_main(args))
    return 0


async def _pod_network(args: argparse.Namespace, client: ApiClient) -> HostGateway | None:
    """The host-gw agent with this node's own routes in place (before any pod binds its IP), or None."""
    if args.pod_network != "host-gw":
        return None
    from node.pod_network import HostGateway  # pyroute2: Linux netlink, only where routes are made

    try:
        network = HostGateway(client, name=args.name, pod_cidr=args.pod_cidr, cluster_cidr=args.cluster_cidr)
    except ValueError as exc:
        raise SystemExit(f"raftkube node {args.name}: {exc}") from None
    await network.setup()
    return network


async def _main(args: argparse.Namespace) -> None:
    names = node_names(args)
    if args.state_dir:
        from raftkube import up  # the state dir's token file is up's

        up.ensure_node_tokens(args.state_dir, names)
    connections = {n: client_flags.connection(args, node_user(n)) for n in names}  # each node as itself
    clients = {n: ApiClient(servers, token=token, ca_file=ca, user_agent="kubelet")
               for n, (servers, token, ca) in connections.items()}
    client = clients[names[0]]  # kube-proxy's and the pod network's: the first node's
    root = args.root_dir or os.path.join(args.state_dir or ".", "nodes" if args.state_dir else ".raftkube-nodes")
    runtime = FakeRuntime(start_delay=args.fake_start_delay, run_time=args.fake_run_time) \
        if args.runtime == "fake" else ProcessRuntime(max_log_bytes=args.max_log_bytes, placement=placement(args),
                                                      host_paths=host_paths(args))
    cidrs = [args.pod_cidr or default_pod_cidr(n) for n in names]
    address = node_ip(args.node_ip) if args.node_ip else ("127.0.0.1" if args.runtime == "fake" else str(
        ipaddress.ip_network(cidrs[0], strict=False).network_address + 1))
    capacity = {"cpu": args.cpu, "memory": args.memory, "pods": str(args.max_pods)}
    kubelets = [Kubelet(clients[n], runtime, KubeletConfig(
        name=n, address=address, pod_cidr=cidr, state_dir=os.path.join(root, n), capacity=capacity,
        lease_interval=args.lease_interval, lease_duration=args.lease_duration,
        status_interval=args.node_status_interval, backoff_base=args.crashloop_base_delay))
        for n, cidr in zip(names, cidrs)]

    stats = StatsCollector(kubelets)
    server = KubeletServer(kubelets, serving_credentials(args, names, address, root),
                           metrics=lambda: node_metrics.exposition(kubelets), stats=stats)
    try:
        port = await server.start(address, args.kubelet_port)
    except OSError as exc:
        raise SystemExit(f"raftkube node {args.name}: cannot listen on {address}:{args.kubelet_port} for its "
                         f"kubelet server: {exc.strerror}; pick another --node-ip or --kubelet-port") from None
    for k in kubelets:
        k.kubelet_port = port
    log.info("%d node(s) %s, runtime %s, kubelet server on https://%s:%d", len(kubelets), ", ".join(names[:5]) +
             (" ..." if len(names) > 5 else ""), args.runtime, address, port)
    network = await _pod_network(args, client)
    tasks = [asyncio.create_task(k.run(), name=f"kubelet {k.name}") for k in kubelets]
    tasks.append(asyncio.create_task(stats.run(), name="stats"))
    if network is not None:
        tasks.append(asyncio.create_task(network.run(), name="pod network"))
    proxy_on = args.proxy if args.proxy is not None else args.runtime == "process"
    if proxy_on:
        from node.proxy import Proxy

        proxy = Proxy(client, node_ip=address, name=args.name)
        tasks.append(asyncio.create_task(proxy.run(), name="kube-proxy"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in done:
        if t is not waiter and not t.cancelled() and t.exception() is not None:
            log.error("%s failed", t.get_name(), exc_info=t.exception())
    log.info("stopping: the containers of %d node(s) stop too", len(kubelets))
    await asyncio.gather(*(k.shutdown() for k in kubelets), return_exceptions=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.stop()
    await asyncio.gather(*(c.close() for c in clients.values()))
