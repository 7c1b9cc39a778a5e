"""kube-proxy in userspace mode: a TCP listener per Service port, forwarding round-robin to ready endpoints.

    watch Services and Endpoints  ->  listen_addresses(): (ClusterIP, port) and (node IP, nodePort) per port
                                  ->  backends(): (service, port name) -> ready (ip, targetPort) from Endpoints
    each accepted connection goes to the next backend of its (service, port) (a refused one is skipped);
    bytes are copied both ways until either side closes.
ClusterIPs come from a loopback range (`raftkube up` gives the masters 127.96.0.0/16), so they are bindable
without root. Endpoints change only where new connections go: open ones stay. A deleted Service's listeners
close. A port that cannot be bound is reported as a Warning Event on its Service and retried, never a crash.
TCP only: UDP and SCTP ports are skipped.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from api.client import ApiClient
from api.event_recorder import EventRecorder

Obj = dict[str, Any]
Addr = tuple[str, int]
Target = tuple[str, str]  # ("namespace/name", service port name)
log = logging.getLogger("raftkube.proxy")
RETRY_BIND = 5.0
CONNECT_TIMEOUT = 3.0


def _key(obj: Obj) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def _ports(svc: Obj) -> list[Obj]:
    """A Service's ports; none when its spec has the wrong shape (validation is the API server's, not ours)."""
    spec = svc.get("spec")
    ports = spec.get("ports") if isinstance(spec, dict) else None
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def listen_addresses(services: dict[str, Obj], node_ip: str) -> dict[Addr, Target]:
    """Every address this host's proxy should listen on, and which Service port each serves."""
    want: dict[Addr, Target] = {}
    for key, svc in services.items():
        spec = svc.get("spec") if isinstance(svc.get("spec"), dict) else {}
        ip = spec.get("clusterIP")
        for port in _ports(svc):
            if (port.get("protocol") or "TCP") != "TCP":
                continue
            target = (key, str(port.get("name") or ""))
            if ip and ip != "None" and isinstance(port.get("port"), int):
                want[(ip, port["port"])] = target
            if spec.get("type") in ("NodePort", "LoadBalancer") and isinstance(port.get("nodePort"), int):
                want[(node_ip, port["nodePort"])] = target
    return want


def backends(services: dict[str, Obj], endpoints: dict[str, Obj]) -> dict[Target, list[Addr]]:
    """Ready endpoint addresses per Service port: Endpoints ports are matched to Service ports by name."""
    out: dict[Target, list[Addr]] = {}
    for key, svc in services.items():
        ports = _ports(svc)
        subsets = [s for s in (endpoints.get(key) or {}).get("subsets") or [] if isinstance(s, dict)]
        for port in ports:
            name = str(port.get("name") or "")
            found: list[Addr] = []
            for subset in subsets:
                numbers = [p.get("port") for p in subset.get("ports") or []
                           if isinstance(p, dict) and str(p.get("name") or "") == name]
                if not numbers and len(ports) == 1 and len(subset.get("ports") or []) == 1:
                    numbers = [subset["ports"][0].get("port")]
                for number in numbers:
                    if isinstance(number, int):
                        found += [(a["ip"], number) for a in subset.get("addresses") or []
                                  if isinstance(a, dict) and isinstance(a.get("ip"), str)]
            out[(key, name)] = found
    return out


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class Proxy:
    def __init__(self, client: ApiClient, *, node_ip: str, name: str) -> None:
        self.client = client
        self.node_ip = node_ip
        self.recorder = EventRecorder(client, "kube-proxy", name)
        self.services: dict[str, Obj] = {}
        self.endpoints: dict[str, Obj] = {}
        self.listeners: dict[Addr, tuple[Target, asyncio.AbstractServer]] = {}
        self.failed: dict[Addr, str] = {}
        self.routes: dict[Target, list[Addr]] = {}
        self._turn: dict[Target, itertools.count] = {}
        self._applying = asyncio.Lock()  # the two watches sync at once: one listener per address, not two

    async def run(self) -> None:
        try:
            await asyncio.gather(self._watch("services", self.services), self._watch("endpoints", self.endpoints),
                                 self._retry())
        finally:
            for _, server in self.listeners.values():
                server.close()

    async def _watch(self, kind: str, into: dict[str, Obj]) -> None:
        async for event, obj in self.client.watch(kind):
            if event == "RELIST":
                into.clear()
                into.update({_key(o): o for o in obj})
            elif event == "DELETED":
                into.pop(_key(obj), None)
            else:
                into[_key(obj)] = obj
            await self.sync()

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(RETRY_BIND)
            if self.failed:
                await self.sync()

    async def sync(self) -> None:
        try:
            async with self._applying:
                await self._apply()
        except Exception:  # noqa: BLE001 - one Service of an odd shape must not stop the proxy for every other
            log.exception("kube-proxy could not apply the Services and Endpoints; it goes on with the rest")

    async def _apply(self) -> None:
        """Listeners as the Services want them; routes as the Endpoints say."""
        self.routes = backends(self.services, self.endpoints)
        want = listen_addresses(self.services, self.node_ip)
        for addr, (target, server) in list(self.listeners.items()):
            if want.get(addr) != target:
                server.close()
                del self.listeners[addr]
                log.info("stopped listening on %s:%d (%s)", *addr, target[0])
        for addr in list(self.failed):
            if addr not in want:
                del self.failed[addr]
        for addr, target in want.items():
            if addr not in self.listeners:
                await self._listen(addr, target)

    async def _listen(self, addr: Addr, target: Target) -> None:
        try:
            server = await asyncio.start_server(lambda r, w: self._forward(r, w, target), addr[0], addr[1],
                                                reuse_address=True)
        except OSError as exc:
            message = (f"kube-proxy cannot listen on {addr[0]}:{addr[1]} for port {target[1] or addr[1]!r} of "
                       f"service {target[0]}: {exc.strerror or exc}; it retries every {RETRY_BIND:g}s")
            if self.failed.get(addr) != message:
                log.warning("%s", message)
                svc = self.services.get(target[0])
                if svc is not None:
                    self.recorder.record(svc, "Warning", "FailedToListen", message)
            self.failed[addr] = message
            return
        self.failed.pop(addr, None)
        self.listeners[addr] = (target, server)
        log.info("listening on %s:%d for %s port %r", addr[0], addr[1], target[0], target[1])

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                       target: Target) -> None:
        upstream = await self._connect(target)
        if upstream is None:
            client_writer.close()  # no ready endpoint: refuse, as kube-proxy's REJECT rule does
            return
        reader, writer = upstream
        try:
            await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))
        finally:
            writer.close()
            client_writer.close()

    async def _connect(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        addresses = self.routes.get(target) or []
        turn = self._turn.setdefault(target, itertools.count())
        for _ in range(len(addresses)):
            addresses = self.routes.get(target) or []
            if not addresses:
                return None
            ip, port = addresses[next(turn) % len(addresses)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                continue
        return None
