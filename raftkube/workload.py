"""Jepsen-style clients for the KV API: every operation recorded with its call and return times and outcome.

- register clients: reads, writes and compare-and-swaps on a handful of keys, spread over every master (the
  history goes to raftkube/linearizability.py);
- set clients: appends, each a put of a fresh key under `set/`, remembered with its outcome (the durability
  check looks for every acknowledged one at the end);
- watchers: each watches the whole keyspace from one revision through one master, resumes from the next revision
  through another master when its stream breaks, and records every event (raftkube/history_checks.py checks them
  against the final history).
A timeout or a dropped connection is an unknown outcome, never a failure: the operation may have happened.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kvstore.client import EtcdError, KVClient, b64
from raftkube.linearizability import FAILED, OK, UNKNOWN, Op

TRANSIENT = (EtcdError, aiohttp.ClientError, OSError, asyncio.TimeoutError)
SET_PREFIX = "set/"


def outcome_of(exc: BaseException) -> str:
    """failed only when the store says so for sure; anything else (timeout, lost connection) is unknown."""
    if isinstance(exc, EtcdError) and ("was not applied" in str(exc.body.get("message", ""))
                                       or 400 <= exc.status < 500):
        return FAILED
    return UNKNOWN


@dataclass
class Append:
    key: str
    call: float
    ret: float
    outcome: str
    revision: int = 0  # the put's revision, when acknowledged


@dataclass
class WatchLog:
    start_revision: int
    events: list[tuple[int, str, str, str]] = field(default_factory=list)  # (revision, key, type, value)
    reconnects: int = 0


class Workload:
    def __init__(self, endpoints: list[str], *, keys: int = 3, clients: int = 6, watchers: int = 2,
                 seed: int = 0, timeout: float = 3.0) -> None:
        self.endpoints = endpoints
        self.keys = [f"k{i}" for i in range(keys)]
        self.clients = clients
        self.watchers = watchers
        self.seed = seed
        self.timeout = timeout
        self.history: list[Op] = []
        self.appends: list[Append] = []
        self.watch_logs: list[WatchLog] = []
        self._kv: dict[str, KVClient] = {}

    def kv(self, endpoint: str) -> KVClient:
        if endpoint not in self._kv:
            self._kv[endpoint] = KVClient(endpoint, timeout=self.timeout)
        return self._kv[endpoint]

    async def close(self) -> None:
        for c in self._kv.values():
            await c.close()

    async def run(self, seconds: float, start_revision: int) -> None:
        until = time.monotonic() + seconds
        watchers = [asyncio.create_task(self._watcher(w, start_revision)) for w in range(self.watchers)]
        try:
            await asyncio.gather(*(self._client(c, until) for c in range(self.clients)))
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
                    await self._append(kv, f"{SET_PREFIX}{cid}-{i}")
                else:
                    await self._register_op(kv, rng, dice, cid * 1_000_000 + i, cid)
            except TRANSIENT:
                await asyncio.sleep(0.02)

    async def _append(self, kv: KVClient, key: str) -> None:
        append = Append(key, time.monotonic(), 0.0, OK)
        self.appends.append(append)
        try:
            res = await kv.put(key.encode(), b"1")
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
            self.history.append(Op(key, "read", call, time.monotonic(), OK, int(got) if got else None, client=cid))
            return
        if dice < 0.8:
            op = Op(key, "write", call, 0, OK, value, client=cid)
            request = kv.put(key.encode(), str(value).encode())
        else:
            seen = [h.value for h in self.history[-5:] if h.key == key and h.value is not None]
            op = Op(key, "cas", call, 0, OK, value, rng.choice([None, *seen]), client=cid)
            compare = ({"key": b64(key.encode()), "target": "VERSION", "version": "0"} if op.expected is None else
                       {"key": b64(key.encode()), "target": "VALUE", "value": b64(str(op.expected).encode())})
            request = kv.txn([compare], [{"request_put": {"key": b64(key.encode()),
                                                          "value": b64(str(value).encode())}}])
        self.history.append(op)
        try:
            res = await request
            op.succeeded = op.kind == "write" or bool(res.get("succeeded"))  # JSON leaves out a false
        except TRANSIENT as exc:
            op.outcome = outcome_of(exc)
            raise
        finally:
            op.ret = time.monotonic()

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
                        log.events.append((revision, item["key"], ev.get("type", "PUT"), item.get("value", "")))
                        next_revision = revision + 1
                    if result.get("canceled"):
                        break
            except TRANSIENT:
                pass
            log.reconnects += 1
            turn += 1
            await asyncio.sleep(0.1)


def reference_events(events: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    """The (revision, key, type, value) tuples of raw watch events, as WatchLog keeps them."""
    return [(int(ev["kv"]["mod_revision"]), ev["kv"]["key"], ev.get("type", "PUT"), ev["kv"].get("value", ""))
            for ev in events]
