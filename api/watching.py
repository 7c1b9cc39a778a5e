"""Kubernetes watches over the store's watch hub: newline-delimited events, one JSON object a line.

From a resourceVersion the events come from the hub's history; without one, every existing object
first arrives as ADDED. A compacted start, or a watcher the hub cancels, ends with an ERROR event
holding a 410 Expired Status, after which clients list again. An event the API cannot send (a stored object it
cannot decode) ends it with an ERROR event holding that error's Status, as kube-apiserver's does: the error
middleware would write its Status as a second response into the stream.
"""
from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import web

from api import errors, tables
from api.query import flag
from api.registry import Resource
from api.selectors import parse_fields, parse_labels
from api.storage import ObjectStore
from kvstore.client import prefix_end
from kvstore.errors import KVError
from kvstore.kv import DELETE
from kvstore.watch import WatchHub

BOOKMARK_INTERVAL = 5.0  # seconds between bookmarks on a watch that allows them


async def serve(request: web.Request, *, res: Resource, namespace: str | None, objects: ObjectStore,
                hub: WatchHub) -> web.StreamResponse:
    """Newline-delimited events from the store's watch hub, from resourceVersion on (or, with none or "0", every
    object as ADDED first, as Kubernetes does: with none, as of a linearizable read)."""
    q = request.query
    store = objects.store
    labels, fields = parse_labels(q.get("labelSelector")), parse_fields(q.get("fieldSelector"), res.kind)
    as_table = tables.wants_table(request.headers.get("Accept", ""))
    rv_text = q.get("resourceVersion") or ""
    if rv_text and not rv_text.isdigit():
        raise errors.bad_request(f"invalid resourceVersion {rv_text!r}")
    bookmarks = flag(q, "allowWatchBookmarks")  # every parameter is checked before a watcher is registered
    timeout_text = q.get("timeoutSeconds") or "1800"
    if not timeout_text.isdigit():
        raise errors.bad_request(f"invalid timeoutSeconds {timeout_text!r}: a whole number of seconds")
    prefix = res.prefix(namespace).encode()
    sink: asyncio.Queue = asyncio.Queue()
    initial: list[dict] = []
    start = int(rv_text) + 1 if rv_text not in ("", "0") else 0
    if not start:  # "0": any state will do (this master's); none: the most recent, a linearizable list
        initial, revision = await objects.list(res, namespace, local=rv_text == "0")
        start = revision + 1
    opened = hub.open(store, watch_id=0, key=prefix, range_end=prefix_end(prefix), start_revision=start,
                      sink=sink)
    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    await resp.prepare(request)

    async def send(kind: str, obj: dict) -> bool:
        """Write the event unless the selectors leave it out; whether it was written."""
        if kind not in ("BOOKMARK", "ERROR") and not (labels(obj) and fields(obj)):
            return False
        if as_table and kind not in ("BOOKMARK", "ERROR"):
            obj = tables.table(res, [obj], None)
        await resp.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")
        return True

    if isinstance(opened, KVError):
        status = errors.gone(f"too old resource version: {rv_text} "
                             f"(the history starts at {store.machine.compact_revision})").status()
        await send("ERROR", status)
        return resp
    watcher, backlog = opened
    deadline = asyncio.get_running_loop().time() + int(timeout_text)
    try:
        for obj in initial:
            await send("ADDED", obj)
        for ev in backlog:
            await send(*event(ev, objects))
        await _stream(request, watcher, sink, send, deadline, bookmarks, res, objects)
    except (ConnectionError, asyncio.CancelledError):
        pass
    except errors.ApiError as exc:  # an event it cannot send (a stored object it cannot read) ends the watch
        with contextlib.suppress(ConnectionError):
            await send("ERROR", exc.status())
    finally:
        hub.close(watcher)
    return resp

async def _stream(request, watcher, sink, send, deadline: float, bookmarks: bool, res: Resource,
                  objects: ObjectStore) -> None:
    """Events as they come; with `bookmarks`, one whenever the client has heard nothing for BOOKMARK_INTERVAL, events
    the selectors filter out included (so a client can take a longer silence for a dead server, api/client.py)."""
    loop = asyncio.get_running_loop()
    heard = loop.time()
    while loop.time() < deadline and request.transport is not None and not request.transport.is_closing():
        try:
            _, events = await asyncio.wait_for(sink.get(), timeout=1.0)
        except asyncio.TimeoutError:
            events = []
        if events is None:  # cancelled: the client re-lists or re-watches
            await send("ERROR", errors.gone(watcher.cancel_reason or "watch cancelled").status())
            return
        for ev in events:
            if await send(*event(ev, objects)):
                heard = loop.time()
        if bookmarks and loop.time() - heard >= BOOKMARK_INTERVAL:
            await send("BOOKMARK", {"kind": res.kind, "apiVersion": res.group_version,
                                    "metadata": {"resourceVersion": str(watcher.progress)}})
            heard = loop.time()


def event(ev, objects: ObjectStore) -> tuple[str, dict]:
    """A store event as a Kubernetes watch event."""
    if ev.type == DELETE:
        obj = objects.decode(ev.prev_kv)
        obj["metadata"]["resourceVersion"] = str(ev.revision)
        return "DELETED", obj
    return ("ADDED" if ev.kv.version == 1 else "MODIFIED"), objects.decode(ev.kv)
