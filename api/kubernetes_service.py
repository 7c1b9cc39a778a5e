"""The `kubernetes` Service in namespace default and its Endpoints, kept by the masters as kube-apiserver keeps them,
so that a pod reaches the API at a fixed address (KUBERNETES_SERVICE_HOST, through kube-proxy).

- The Service: ClusterIP the first address of the service range (which the allocator never hands out,
  api/cluster_ips.py), one TCP port named https (443 in Kubernetes; raftkube's masters are given another with
  --kubernetes-service-port, since kube-proxy without root cannot listen below 1024), no selector (the endpoints
  controller leaves it alone).
- Its Endpoints: the API addresses of the masters that are alive, as the lease endpoint reconciler finds them. Each
  master keeps a key /registry/masterleases/HOST:PORT under a store lease of TTL seconds, renewed every RECONCILE
  seconds, and writes the Endpoints when the keys under that prefix say otherwise; a master that stops renewing
  drops out once its lease expires. Masters on one host differ by port, so each port is a subset of its own.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

import orjson

from api.admission import Admission
from api.errors import ApiError
from api.registry import Resource, lookup
from api.storage import ObjectStore
from kvstore import errors as kv_errors
from kvstore.client import prefix_end
from kvstore.errors import KVFailure

log = logging.getLogger("raftkube.api")
Obj = dict[str, Any]
NAME, NAMESPACE = "kubernetes", "default"
PREFIX = b"/registry/masterleases/"
TTL = 15
RECONCILE = 5.0


def first_address(service_ip_range: str) -> str:
    """The `kubernetes` Service's ClusterIP: the first usable address of the range."""
    return str(ipaddress.ip_network(service_ip_range).network_address + 1)


def service(cluster_ip: str, port: int, target_port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": port, "protocol": "TCP", "targetPort": target_port}]}}


def subsets(addresses: list[tuple[str, int]]) -> list[Obj]:
    """One subset per port, its addresses sorted: the same masters always make the same Endpoints."""
    by_port: dict[int, set[str]] = {}
    for host, port in addresses:
        by_port.setdefault(port, set()).add(host)
    return [{"addresses": [{"ip": ip} for ip in sorted(ips)],
             "ports": [{"name": "https", "port": port, "protocol": "TCP"}]} for port, ips in sorted(by_port.items())]


class KubernetesService:
    def __init__(self, objects: ObjectStore, admission: Admission, *, service_ip_range: str, port: int,
                 advertise: tuple[str, int]) -> None:
        """`advertise`: this master's API address as pods reach it (an IP and the port it listens on)."""
        self.objects = objects
        self.admission = admission
        self.cluster_ip = first_address(service_ip_range)
        self.port = port
        self.advertise = advertise
        self.key = PREFIX + f"{advertise[0]}:{advertise[1]}".encode()
        self._lease = 0

    async def run(self) -> None:
        """Forever; a round that fails (no quorum) is tried again at the next one."""
        while True:
            try:
                await self.ensure_service()
                await self.renew_lease()
                await self.reconcile_endpoints()
            except (KVFailure, ApiError) as exc:
                log.info("the kubernetes Service or its Endpoints could not be kept this round: %s", exc)
            await asyncio.sleep(RECONCILE)

    async def ensure_service(self) -> None:
        res = lookup("", "v1", "services")
        try:
            current = await self.objects.get(res, NAMESPACE, NAME, local=True)
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self._create(res, service(self.cluster_ip, self.port, self.advertise[1]))
            return
        ports = (current.get("spec") or {}).get("ports") or []
        if [(p.get("name"), p.get("port")) for p in ports if isinstance(p, dict)] != [("https", self.port)]:
            wanted = service(self.cluster_ip, self.port, self.advertise[1])["spec"]["ports"]
            await self.objects.update(res, {**current, "spec": {**current["spec"], "ports": wanted}},
                                      int(current["metadata"]["resourceVersion"]))

    async def _create(self, res: Resource, body: Obj) -> None:
        try:
            await self.admission.create(res, self.admission.new_object(res, body, NAMESPACE))
        except ApiError as exc:
            if exc.reason != "AlreadyExists":  # another master made it first
                raise

    async def renew_lease(self) -> None:
        """This master's key: kept alive while its lease lives (a keepalive makes no new revision), put again under a
        new lease when it has gone (at start, after this master was cut off for longer than TTL, or deleted)."""
        store = self.objects.store
        if self._lease:
            try:
                await store.propose({"op": "lease_keepalive", "id": self._lease})
                return
            except KVFailure as exc:
                if exc.error != kv_errors.LEASE_NOT_FOUND:
                    raise
        lease = await store.propose({"op": "lease_grant", "ttl": TTL})
        host, port = self.advertise
        await store.propose({"op": "put", "key": self.key, "value": orjson.dumps({"ip": host, "port": port}),
                             "lease": lease["id"]})
        self._lease = lease["id"]

    async def reconcile_endpoints(self) -> None:
        found = await self.objects.store.range({"op": "range", "key": PREFIX, "range_end": prefix_end(PREFIX)})
        live = []
        for kv in found["kvs"]:
            try:
                entry = orjson.loads(kv.value)
                live.append((str(entry["ip"]), int(entry["port"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # not a master's: left for its lease to end
        if not any(kv.key == self.key for kv in found["kvs"]):
            self._lease = 0  # our key went with its lease (or was deleted): put it again next round
        wanted = subsets(live)
        res = lookup("", "v1", "endpoints")
        try:
            current = await self.objects.get(res, NAMESPACE, NAME)
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self._create(res, {"apiVersion": "v1", "kind": "Endpoints", "subsets": wanted,
                                     "metadata": {"name": NAME, "namespace": NAMESPACE,
                                                  "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}})
            return
        if current.get("subsets") != wanted:
            try:
                await self.objects.update(res, {**current, "subsets": wanted},
                                          int(current["metadata"]["resourceVersion"]))
            except ApiError as exc:
                if exc.code != 409:  # another master wrote them meanwhile: the next round looks again
                    raise
