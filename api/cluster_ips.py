"""ClusterIPs and NodePorts for Services, allocated through the store so that two masters never hand out the
same one: each IP in use is a key, `/registry/ranges/serviceips/<ip>`, each node port
`/registry/ranges/servicenodeports/<port>`, created in the same txn as its Service (api/storage.py
`create(claims=...)`) and deleted with it."""
from __future__ import annotations

import ipaddress
import random

PREFIX = b"/registry/ranges/serviceips/"
DEFAULT_RANGE = "10.96.0.0/12"


class ClusterIPRange:
    def __init__(self, cidr: str = DEFAULT_RANGE) -> None:
        self.network = ipaddress.ip_network(cidr)
        if self.network.num_addresses < 8:
            raise ValueError(f"the service IP range {cidr} is too small")

    def key(self, ip: str) -> bytes:
        return PREFIX + ip.encode()

    def contains(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return address in self.network and address not in (self.network.network_address,
                                                           self.network.broadcast_address)

    def pick(self, taken: set[str], rng: random.Random) -> str:
        """A free address (never the first one: Kubernetes keeps it for its own `kubernetes` Service)."""
        size = self.network.num_addresses
        if len(taken) >= size - 3:
            raise OverflowError(f"the service IP range {self.network} is full")
        base = int(self.network.network_address)
        while True:
            ip = str(ipaddress.ip_address(base + rng.randrange(2, size - 1)))
            if ip not in taken:
                return ip


NODE_PORT_PREFIX = b"/registry/ranges/servicenodeports/"
NODE_PORTS = range(30000, 32768)  # Kubernetes' default --service-node-port-range


def node_port_key(port: int) -> bytes:
    return NODE_PORT_PREFIX + str(port).encode()


def pick_node_port(taken: set[int], rng: random.Random) -> int:
    if len(taken) >= len(NODE_PORTS):
        raise OverflowError(f"every node port {NODE_PORTS.start}-{NODE_PORTS.stop - 1} is allocated")
    while True:
        port = rng.choice(NODE_PORTS)
        if port not in taken:
            return port
