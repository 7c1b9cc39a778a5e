"""Jepsen-style clients for the KV API: every operation recorded with its call and return times and outcome.

- register clients: reads, writes and compare-and-swaps on a handful of keys, spread over every master (the
  history goes to raftkube/linearizability.py);
- set clients: appends, each a put of a fresh key under `set/`, remembered with its outcome (the durability
  check looks for every acknowledged one at the end);
- watchers: each watches the whole keyspace from one revision through one master, resumes from the next revision
  through another master when its stream breaks, and records every event (raftkube/history_checks.py checks them
  against the final history);
- lease clients: each grants a lease, attaches a key and keeps the lease alive every second, recording when each
  keepalive was sent and what it found (a lease must never be gone sooner than its TTL after a keepalive).
Appends may carry big values (32-100 KB, `big_values` of them): entries larger than one Raft message.
A timeout or a dropped connection is an unknown outcome, never a failure: the operation may have happened.
"""
from __future__ import annotations

import asyncio
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kvstore.client import EtcdError, KVClient, b64, unb64
from raftkube.linearizability import FAILED, OK, UNKNOWN, Op

TRANSIENT = (EtcdError, aiohttp.ClientError, OSError, asyncio.TimeoutError)
SET_PREFIX = "set/"
LEASE_TTL = 4  # seconds: a keepalive every second leaves three to spare


def outcome_of(exc: BaseException) -> str:
    """failed only when it certainly did not happen: the store says so, or the request never left (the
    connection was refused); anything else (a timeout, a connection lost mid-request) is unknown."""
    if isinstance(exc, EtcdError) and ("was not applied" in str(exc.body.get("message", ""))
                                       or 400 <= exc.status < 500):
        return FAILED
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FAILED
    return UNKNOWN


@dataclass
class Append:
    key: str
    call: float
    ret: float
    outcome: str
    revision: int = 0  # the put's revision, when acknowledged
    size: int = 1  # the value's length: value_for(key, size)
    client: int = 0
    via: str = ""  # the master it was sent to


def value_for(key: str, size: int) -> bytes:
    """An append's value, rebuilt from its key and size by the durability check."""
    seed = key.encode() + b"|"
    return (seed * (size // len(seed) + 1))[:size]


@dataclass
class LeaseLog:
    lease: int
    ttl: int
    granted: float  # when the grant was sent
    keepalives: list[tuple[float, float, int | None]] = field(default_factory=list)  # (sent, answered, TTL or None)


@dataclass
class WatchLog:
    start_revision: int
    events: list[tuple[int, str, str, str]] = field(default_factory=list)  # (revision, key, type, value)
    reconnects: int = 0


class Workload:
    def __init__(self, endpoints: list[str], *, names: list[str] | None = None, keys: int = 8, clients: int = 6,
                 watchers: int = 2, leases: int = 0, lease_ttl: int = LEASE_TTL, big_values: float = 0.0,
                 seed: int = 0, timeout: float = 3.0, tls: ssl.SSLContext | None = None) -> None:
        """`names`: the masters' names, in the order of `endpoints` (recorded with each operation, to show).
        `tls`: the KV ports' CA and a client certificate (raftkube/kv_access.py)."""
        self.endpoints = endpoints
        self.names = dict(zip(endpoints, names or endpoints))
        self.tls = tls
        self.keys = [f"k{i}" for i in range(keys)]
        self.clients = clients
        self.watchers = watchers
        self.leases = leases
        self.lease_ttl = lease_ttl
        self.big_values = big_values
        self.seed = seed
        self.timeout = timeout
        self.history: list[Op] = []
        self.appends: list[Append] = []
        self.watch_logs: list[WatchLog] = []
        self.lease_logs: list[LeaseLog] = []
        self._kv: dict[str, KVClient] = {}

    def kv(self, endpoint: str) -> KVClient:
        if endpoint not in self._kv:
            self._kv[endpoint] = KVClient(endpoint, timeout=self.timeout, tls=self.tls)
        return self._kv[endpoint]

    async def close(self) -> None:
        for c in self._kv.values():
            await c.close()

    async def run(self, seconds: float, start_revision: int) -> None:
        until = time.monotonic() + seconds
        watchers = [asyncio.create_task(self._watcher(w, start_revision)) for w in range(self.watchers)]
        try:
            await asyncio.gather(*(self._client(c, until) for c in range(self.clients)),
                                 *(self._lease_client(c, until) for c in range(self.leases)))
        finally:
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    async def _client(self, cid: int, until: float) -> None:
        rng = random.Random(self.seed * 1000 + cid)
        i = 0
        while time.monotonic() < until:
            i += 1
            kv = self.kv(self.endpoints[(cid + i) % len(self.endpoints)])
            dice = rng.random()
            try:
                if dice < 0.2:
                    big = rng.random() < self.big_values
                    await self._append(kv, f"{SET_PREFIX}{cid}-{i}", rng.randint(32_000, 100_000) if big else 1, cid)
                else:
                    await self._register_op(kv, rng, dice, cid * 1_000_000 + i, cid)
            except TRANSIENT:
                await asyncio.sleep(0.02)

    async def _append(self, kv: KVClient, key: str, size: int, cid: int) -> None:
        append = Append(key, time.monotonic(), 0.0, OK, size=size, client=cid, via=self.names[kv.endpoint])
        self.appends.append(append)
        try:
            res = await kv.put(key.encode(), value_for(key, size))
            append.revision = int(res["header"]["revision"])
        except TRANSIENT as exc:
            append.outcome = outcome_of(exc)
            raise
        finally:
            append.ret = time.monotonic()

    async def _register_op(self, kv: KVClient, rng: random.Random, dice: float, value: int, cid: int) -> None:
        key = rng.choice(self.keys)
        call = time.monotonic()
        if dice < 0.5:
            got = await kv.get(key.encode())  # a failed read tells nothing: not recorded
            self.history.append(Op(key, "read", call, time.monotonic(), OK, int(got) if got else None, client=cid,
                                   via=self.names[kv.endpoint]))
            return
        if dice < 0.8:
            op = Op(key, "write", call, 0, OK, value, client=cid, via=self.names[kv.endpoint])
            request = kv.put(key.encode(), str(value).encode())
        else:
            seen = [h.value for h in self.history[-5:] if h.key == key and h.value is not None]
            op = Op(key, "cas", call, 0, OK, value, rng.choice([None, *seen]), client=cid, via=self.names[kv.endpoint])
            compare = ({"key": b64(key.encode()), "target": "VERSION", "version": "0"} if op.expected is None else
                       {"key": b64(key.encode()), "target": "VALUE", "value": b64(str(op.expected).encode())})
            request = kv.txn([compare], [{"request_put": {"key": b64(key.encode()),
                                                          "value": b64(str(value).encode())}}])
        self.history.append(op)
        try:
            res = await request
            op.succeeded = op.kind == "write" or bool(res.get("succeeded"))  # JSON leaves out a false
            op.revision = int(res["header"]["revision"]) if op.succeeded else 0
        except TRANSIENT as exc:
            op.outcome = outcome_of(exc)
            raise
        finally:
            op.ret = time.monotonic()

    async def _lease_client(self, lid: int, until: float) -> None:
        """Grant a lease with a key on it and keep it alive every second; start over when it is gone."""
        i = 0
        log: LeaseLog | None = None
        while time.monotonic() < until:
            i += 1
            kv = self.kv(self.endpoints[(lid + i) % len(self.endpoints)])
            try:
                if log is None or log.keepalives and log.keepalives[-1][2] == 0:
                    sent = time.monotonic()
                    lease = await kv.lease_grant(self.lease_ttl)
                    log = LeaseLog(lease, self.lease_ttl, sent)
                    self.lease_logs.append(log)
                    await kv.put(f"lease/{lid}-{lease}".encode(), b"1", lease=lease)
                else:
                    sent = time.monotonic()
                    try:
                        ttl: int | None = await kv.lease_keepalive(log.lease)
                    except TRANSIENT:
                        ttl = None
                    log.keepalives.append((sent, time.monotonic(), ttl))
            except TRANSIENT:
                pass
            await asyncio.sleep(1.0)

    async def _watcher(self, wid: int, start_revision: int) -> None:
        log = WatchLog(start_revision)
        self.watch_logs.append(log)
        next_revision = start_revision
        turn = wid
        while True:
            kv = self.kv(self.endpoints[turn % len(self.endpoints)])
            try:
                async for result in kv.watch(b"\0", b"\0", start_revision=next_revision):
                    for ev in result.get("events") or []:
                        item = ev["kv"]
                        revision = int(item["mod_revision"])
                        log.events.append((revision, unb64(item["key"]).decode(errors="replace"),
                                           ev.get("type", "PUT"), item.get("value", "")))
                        next_revision = revision + 1
                    if result.get("canceled"):
                        break
            except TRANSIENT:
                pass
            log.reconnects += 1
            turn += 1
            await asyncio.sleep(0.1)


def reference_events(events: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    """The (revision, key, type, value) tuples of raw watch events, as WatchLog keeps them (the key as text, the
    value as the gateway's base64)."""
    return [(int(ev["kv"]["mod_revision"]), unb64(ev["kv"]["key"]).decode(errors="replace"), ev.get("type", "PUT"),
             ev["kv"].get("value", "")) for ev in events]
