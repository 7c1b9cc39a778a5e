"""One `/v3/watch` HTTP stream: the create, cancel and progress requests of its body, then events.

Messages follow etcd's field order (header, watch_id, created, canceled, compact_revision,
cancel_reason, events) and leave out default values, as etcd's gateway does.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from kvstore import gateway_codec as codec
from kvstore.errors import KVError
from kvstore.watch import FILTER_TYPES, Watcher

DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


def line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


class WatchStream:
    def __init__(self, gateway, messages: list[Any]) -> None:
        self.gateway = gateway
        self.hub = gateway.hub
        self.requests = [self._parse(m) for m in messages]  # all checked before anything is sent
        self.sink: asyncio.Queue = asyncio.Queue()
        self.watchers: dict[int, Watcher] = {}
        self.progress_wanted: set[int] = set()
        self._auto_id = 0

    @staticmethod
    def _parse(message: Any) -> tuple[str, Any]:
        if not isinstance(message, dict):
            raise codec.BadRequest("each watch request must be a JSON object")
        if "create_request" in message:
            return "create", codec.watch_create_request(message["create_request"])
        if "cancel_request" in message:
            cancel = message["cancel_request"]
            return "cancel", codec.int64(cancel if isinstance(cancel, dict) else {}, "watch_id")
        if "progress_request" in message:
            return "progress", None
        raise codec.BadRequest("a watch request needs create_request, cancel_request or progress_request")

    def result(self, *, revision: int | None = None, watch_id: int = 0, **fields: Any) -> bytes:
        out: dict[str, Any] = {"header": self.gateway.header(revision)}
        if watch_id:
            out["watch_id"] = str(watch_id)
        out.update((k, v) for k, v in fields.items() if v not in (None, False, "", []))
        return line({"result": out})

    async def run(self, resp: web.StreamResponse, request: web.Request) -> None:
        for kind, arg in self.requests:
            if kind == "create":
                await self._create(resp, arg)
            elif kind == "cancel":
                w = self.watchers.pop(arg, None)
                if w is not None:
                    self.hub.cancel(w, None)
            else:
                await resp.write(self.result(watch_id=-1))
        last_progress = time.monotonic()
        interval = self.gateway.progress_interval
        while request.transport is not None and not request.transport.is_closing():
            try:
                w, events = await asyncio.wait_for(self.sink.get(), timeout=min(1.0, interval))
            except asyncio.TimeoutError:
                if self.progress_wanted and time.monotonic() - last_progress >= interval:
                    last_progress = time.monotonic()
                    for wid in sorted(self.progress_wanted & set(self.watchers)):
                        await resp.write(self.result(revision=self.watchers[wid].progress, watch_id=wid))
                continue
            if events is None:
                if self.watchers.pop(w.watch_id, None) is not None or w.cancel_reason:
                    await resp.write(self.result(watch_id=w.watch_id, canceled=True, cancel_reason=w.cancel_reason))
                continue
            await resp.write(self.result(revision=events[-1].revision, watch_id=w.watch_id,
                                         events=[codec.enc_event(e, w.prev_kv) for e in events]))

    def _next_id(self, wanted: int) -> int | None:
        if wanted:
            return None if wanted in self.watchers else wanted
        while self._auto_id in self.watchers:
            self._auto_id += 1
        return self._auto_id

    async def _create(self, resp: web.StreamResponse, create: dict) -> None:
        watch_id = self._next_id(create["watch_id"])
        if watch_id is None:
            await resp.write(self.result(watch_id=-1, created=True, canceled=True, cancel_reason=DUPLICATE_ID))
            return
        opened = self.hub.open(self.gateway.store, watch_id=watch_id, key=create["key"],
                               range_end=create["range_end"], start_revision=create["start_revision"],
                               sink=self.sink, filters=frozenset(FILTER_TYPES[f] for f in create["filters"]),
                               prev_kv=create["prev_kv"])
        await resp.write(self.result(watch_id=watch_id, created=True))
        if isinstance(opened, KVError):  # compacted: etcd says so and keeps the stream open
            compact_rev = self.gateway.store.machine.compact_revision
            await resp.write(self.result(revision=0, watch_id=watch_id, canceled=True,
                                         compact_revision=str(compact_rev)))
            return
        w, backlog = opened
        self.watchers[watch_id] = w
        if create["progress_notify"]:
            self.progress_wanted.add(watch_id)
        for i in range(0, len(backlog), 1000):
            chunk = backlog[i:i + 1000]
            await resp.write(self.result(watch_id=watch_id, events=[codec.enc_event(e, w.prev_kv) for e in chunk]))

    def close(self) -> None:
        for w in self.watchers.values():
            self.hub.close(w)
        self.watchers.clear()
