"""A Service's ClusterIP and node ports, claimed in the same txn as the Service itself (api/cluster_ips.py says
how the claims are keys in the store). Two masters creating Services at once may pick the same address: the
loser's txn fails on the claim (storage.ClaimTaken) and it picks again."""
from __future__ import annotations

import random
from typing import Any

from api import errors
from api.cluster_ips import NODE_PORT_PREFIX, NODE_PORTS, PREFIX, ClusterIPRange, node_port_key, pick_node_port
from api.errors import ApiError
from api.registry import Resource
from api.storage import ClaimTaken, ObjectStore

Obj = dict[str, Any]
TRIES = 20


def _node_ports(spec: Obj) -> list[Obj]:
    ports = (spec.get("ports") or []) if spec.get("type") in ("NodePort", "LoadBalancer") else []
    return [p for p in ports if isinstance(p, dict)]


class ServiceAllocator:
    def __init__(self, objects: ObjectStore, ips: ClusterIPRange, rng: random.Random | None = None) -> None:
        self.objects = objects
        self.ips = ips
        self.rng = rng or random.Random()

    def _invalid(self, res: Resource, svc: Obj, field: str, message: str) -> ApiError:
        return errors.invalid(res.kind, svc["metadata"]["name"], [(field, message)], res.group)

    def _check_asked(self, res: Resource, svc: Obj, wanted_ip: str | None, ports: list[Obj]) -> None:
        if wanted_ip and not self.ips.contains(wanted_ip):
            raise self._invalid(res, svc, "spec.clusterIP", f"Invalid value: {wanted_ip!r}: provided IP is not in "
                                                            f"the valid range {self.ips.network}")
        for i, p in enumerate(ports):
            if p.get("nodePort") and p["nodePort"] not in NODE_PORTS:
                raise self._invalid(res, svc, f"spec.ports[{i}].nodePort",
                                    f"Invalid value: {p['nodePort']}: provided port is not in the valid range. "
                                    f"The range of valid ports is {NODE_PORTS.start}-{NODE_PORTS.stop - 1}")

    async def create(self, res: Resource, svc: Obj) -> Obj:
        """Store the Service with an address and node ports of its own (those it asked for, or free ones)."""
        spec = svc.setdefault("spec", {})
        wanted = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or wanted == "None":
            return await self.objects.create(res, svc)
        ports = _node_ports(spec)
        self._check_asked(res, svc, wanted, ports)
        wanted_ports = {p["nodePort"] for p in ports if p.get("nodePort")}
        owner = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}".encode()
        for _ in range(TRIES):
            taken = {k[len(PREFIX):].decode() for k in await self.objects.keys(PREFIX)}
            ip = wanted or self.ips.pick(taken, self.rng)
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            taken_ports = {int(k[len(NODE_PORT_PREFIX):]) for k in await self.objects.keys(NODE_PORT_PREFIX)} \
                if ports else set()
            for p in ports:
                if p.get("nodePort") not in wanted_ports:  # ours to pick (again, after a race)
                    p["nodePort"] = pick_node_port(taken_ports | wanted_ports, self.rng)
                    taken_ports.add(p["nodePort"])
            claims = ((self.ips.key(ip), owner), *((node_port_key(p["nodePort"]), owner) for p in ports))
            try:
                return await self.objects.create(res, svc, claims=claims)
            except ClaimTaken as exc:
                if wanted and exc.key == self.ips.key(ip):
                    raise self._invalid(res, svc, "spec.clusterIP",
                                        f"Invalid value: {wanted!r}: provided IP is already allocated") from None
                port = next((p["nodePort"] for p in ports if node_port_key(p["nodePort"]) == exc.key), None)
                if port in wanted_ports:
                    raise self._invalid(res, svc, "spec.ports.nodePort",
                                        f"Invalid value: {port}: provided port is already allocated") from None
        raise ApiError(503, f"could not allocate a ClusterIP and node ports after {TRIES} tries; try again")

    def claims(self, svc: Obj) -> tuple[bytes, ...]:
        """The range keys a Service holds: its ClusterIP and its node ports (released with it)."""
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        return ((self.ips.key(ip),) if ip and ip != "None" else ()) + tuple(
            node_port_key(p["nodePort"]) for p in _node_ports(spec) if isinstance(p.get("nodePort"), int))
