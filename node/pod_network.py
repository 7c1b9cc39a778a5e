"""The host-gw pod network (`raftkube node --pod-network host-gw`): pod IPs that reach across nodes, as flannel's
host-gw backend builds them, for nodes that are containers (or machines) on one shared network.

    node n1, address 10.89.0.21, pods 10.244.1.0/24       node n2, address 10.89.0.22, pods 10.244.2.0/24
      local 10.244.1.0/24 dev lo     (n1's pod IPs)          local 10.244.2.0/24 dev lo
      10.244.2.0/24 via 10.89.0.22   (n2's pods)             10.244.1.0/24 via 10.89.0.21
      unreachable 10.244.0.0/16      (any other pod IP)      unreachable 10.244.0.0/16

A pod is a process in its node's network namespace, bound to its own IP (`POD_IP`). The `local` route makes every
address of the node's pod CIDR the node's own, so a pod binds its IP with no per-pod interface or address. A packet
for 10.244.2.5 leaves n1 for n2's address on the shared network and n2 delivers it locally: no bridge, no
encapsulation, no forwarding. Routes to the other nodes follow the Node objects (spec.podCIDR via the InternalIP),
as flanneld follows them, so a node that comes or goes, or comes back elsewhere, is routed as it is now. A pod IP
of no known node fails at once (`unreachable`) rather than leaving the machine by the default route.

The routes need CAP_NET_ADMIN in this process only: pods must not inherit it, so it is cleared from the ambient
set at start (compose starts the node with it there, see raftkube/compose.py). Routes are marked with their own
protocol number (PROTO), so this agent changes no route it did not make.
"""
from __future__ import annotations

import _socket
import asyncio
import ctypes
import errno
import ipaddress
import logging
import socket
from typing import Any

# pysyncobj 0.3.17's transport (in any process that also loads the masters' modules) replaces socket.inet_ntop with
# a Windows-only function on every system; pyroute2 decodes route addresses with it.
socket.inet_ntop = _socket.inet_ntop
from pyroute2 import IPRoute  # noqa: E402 - after the repair above
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

from api.client import ApiClient, ApiClientError

Obj = dict[str, Any]
log = logging.getLogger("raftkube.pod-network")
PROTO = 114  # rtnetlink protocol of our routes (`ip route show proto 114`); unassigned by Linux
TABLE_LOCAL, TABLE_MAIN = 255, 254
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
TRANSIENT = (ApiClientError, OSError, asyncio.TimeoutError)


def internal_ip(node: Obj) -> str | None:
    for a in (node.get("status") or {}).get("addresses") or []:
        if isinstance(a, dict) and a.get("type") == "InternalIP":
            return a.get("address")
    return None


def wanted_routes(nodes: list[Obj], *, me: str, cluster_cidr: str) -> dict[str, str]:
    """pod CIDR -> gateway for every other node whose pod CIDR lies in the cluster's and whose address is known."""
    cluster = ipaddress.ip_network(cluster_cidr)
    routes = {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        cidr = (node.get("spec") or {}).get("podCIDR")
        via = internal_ip(node)
        if name == me or not isinstance(cidr, str) or not isinstance(via, str):
            continue
        try:
            network, gateway = ipaddress.ip_network(cidr, strict=False), ipaddress.ip_address(via)
        except ValueError:
            continue
        if network.version == cluster.version and network.subnet_of(cluster) and gateway not in cluster:
            routes[str(network)] = str(gateway)
    return routes


def drop_ambient_capabilities() -> None:
    """Children (the pods) start without the capabilities this process was handed; it keeps its own."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class HostGateway:
    def __init__(self, client: ApiClient, *, name: str, pod_cidr: str, cluster_cidr: str) -> None:
        self.client = client
        self.name = name
        self.pod_cidr = str(ipaddress.ip_network(pod_cidr, strict=False))
        self.cluster_cidr = str(ipaddress.ip_network(cluster_cidr, strict=False))
        if not ipaddress.ip_network(self.pod_cidr).subnet_of(ipaddress.ip_network(self.cluster_cidr)):
            raise ValueError(f"the pod CIDR {self.pod_cidr} is not inside the cluster CIDR {self.cluster_cidr}")
        self.nodes: dict[str, Obj] = {}

    async def setup(self) -> None:
        """This node's own routes, before any pod binds its IP."""
        drop_ambient_capabilities()
        await asyncio.to_thread(self._own_routes)
        log.info("pod network host-gw: %s is local here, the rest of %s goes to its nodes", self.pod_cidr,
                 self.cluster_cidr)

    async def run(self) -> None:
        while True:
            try:
                async for event, obj in self.client.watch("nodes"):
                    if event == "RELIST":
                        self.nodes = {n["metadata"]["name"]: n for n in obj}
                    elif event == "DELETED":
                        self.nodes.pop(obj["metadata"]["name"], None)
                    else:
                        self.nodes[obj["metadata"]["name"]] = obj
                    want = wanted_routes(list(self.nodes.values()), me=self.name, cluster_cidr=self.cluster_cidr)
                    await asyncio.to_thread(self._sync, want)
            except TRANSIENT as exc:
                log.warning("pod network: watching nodes failed (%s); retrying", exc)
                await asyncio.sleep(1.0)

    # netlink, blocking (pyroute2's IPRoute runs its own event loop, in a worker thread here)

    def _own_routes(self) -> None:
        with IPRoute() as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            self._change(ipr, "replace", dst=self.pod_cidr, type="local", oif=lo, table=TABLE_LOCAL, scope="host")
            self._change(ipr, "replace", dst=self.cluster_cidr, type="unreachable", table=TABLE_MAIN)

    def _sync(self, want: dict[str, str]) -> None:
        """Our gateway routes made equal to `want`."""
        with IPRoute() as ipr:
            have = {f"{r.get('dst')}/{r['dst_len']}": r.get("gateway")
                    for r in ipr.route("dump", table=TABLE_MAIN, proto=PROTO) if r.get("gateway")}
            for cidr, via in want.items():
                if have.get(cidr) != via:
                    self._change(ipr, "replace", dst=cidr, gateway=via, table=TABLE_MAIN)
                    log.info("pod network: %s via %s", cidr, via)
            for cidr, via in have.items():
                if cidr not in want:
                    self._change(ipr, "del", dst=cidr, gateway=via, table=TABLE_MAIN)
                    log.info("pod network: %s no longer routed (its node is gone)", cidr)

    def _change(self, ipr: IPRoute, command: str, **route: Any) -> None:
        try:
            ipr.route(command, proto=PROTO, **route)
        except NetlinkError as exc:
            if exc.code == errno.EPERM:
                raise SystemExit(f"raftkube node {self.name}: --pod-network host-gw needs CAP_NET_ADMIN to route "
                                 "pod IPs (in Docker: cap_add: [NET_ADMIN], as docker-compose.yml does)") from None
            if not (command == "del" and exc.code == errno.ESRCH):
                raise
