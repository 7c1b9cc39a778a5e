"""The dashboard every master serves: one static page (dashboard.html) and two data endpoints.

- `GET /dashboard`: the page, served to anyone (it holds no data); `?token=` logs it in, as Jupyter does.
- `GET /dashboard/masters` (token): every master's Raft view, asked of its KV port
  (`/v3/maintenance/status`, 0.8 s each at most), whether a majority agrees on a leader, and every
  master's API address, so the page can move to another master when this one dies. The page asks once
  a second.
- `GET /dashboard/watch` (token): one stream for the whole page, newline-delimited JSON as the kube
  API's watches: first every node, pod, event, lease and workload (`ADDED`, read from this master's
  replica, so it answers without quorum), then `SYNCED`, then each change, and a `PING` every 2 s so a
  paused master is noticed. One stream, because a browser opens at most six HTTP/1.1 connections per
  server: eight kube API watches would starve each other.

Cross-origin: a page served by master A that moves to master B sends its token to B's origin; B answers
(CORS) only origins that are the masters' own API addresses. The preflight carries no token, so it is
answered before authentication; every data request still carries it (api/authentication.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import ssl
from collections import Counter
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from api.errors import ApiError
from api.registry import Resource, lookup
from api.storage import ObjectStore
from api.watching import event
from kvstore.client import prefix_end
from kvstore.errors import KVError

log = logging.getLogger("raftkube.dashboard")

SHOWN = [("", "nodes"), ("", "pods"), ("", "events"), ("coordination.k8s.io", "leases"), ("apps", "deployments"),
         ("apps", "statefulsets"), ("apps", "daemonsets"), ("batch", "jobs")]
PING_EVERY = 2.0
STATUS_TIMEOUT = 0.8
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page() -> bytes:
    return importlib.resources.files("api").joinpath("dashboard.html").read_bytes()


class Dashboard:
    def __init__(self, *, objects: ObjectStore, store, hub, members: Callable[[], list[dict]], name: str,
                 scheme: str, kv_tls: ssl.SSLContext | None = None) -> None:
        self.objects = objects
        self.store = store
        self.hub = hub
        self.members = members  # raftkube/master.py Master.members: raft, name, kv, api of every master
        self.name = name
        self.scheme = scheme  # every master's kube API speaks what this one does (http or https)
        self.kv_tls = kv_tls  # this master's client certificate toward the KV ports (--etcd-certfile)
        self.resources: list[Resource] = [r for r in (lookup(g, "v1", p) for g, p in SHOWN) if r is not None]
        self._prefixes = [(r.prefix(), r) for r in self.resources]  # computed once, not per event
        self._session: aiohttp.ClientSession | None = None

    def install(self, app: web.Application) -> None:
        app.middlewares.insert(0, self._preflight)  # before authentication: a preflight carries no token
        app.on_response_prepare.append(self._allow_origin)
        app.on_cleanup.append(self._close)
        app.router.add_get("/dashboard", self.page)
        app.router.add_get("/dashboard/masters", self.masters)
        app.router.add_get("/dashboard/watch", self.watch)

    # -- the page and CORS -------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=page(), content_type="text/html", headers={"Cache-Control": "no-store"})

    def api_url(self, m: dict) -> str | None:
        api = m.get("api")
        return f"{self.scheme}://{urlsplit(api).netloc}" if api else None

    def _allowed(self, origin: str | None) -> bool:
        return bool(origin) and any(origin == self.api_url(m) for m in self.members())

    @web.middleware
    async def _preflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and self._allowed(request.headers.get("Origin")):
            return web.Response(status=204, headers={
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600"})
        return await handler(request)

    async def _allow_origin(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin and self._allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    # -- the masters ---------------------------------------------------------------------------

    async def masters(self, request: web.Request) -> web.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STATUS_TIMEOUT),
                                                  connector=aiohttp.TCPConnector(ssl=self.kv_tls or True))
        members = self.members()
        views = await asyncio.gather(*(self._status(m) for m in members))
        by_id = {str(m["id"]): m.get("name") or m["raft"] for m in members}
        votes = Counter(v["leader_id"] for v in views if v["reachable"] and v["leader_id"])
        leader_id, n = votes.most_common(1)[0] if votes else (None, 0)
        quorum = n > len(members) // 2
        leader_view = next((v for v in views if v["id"] == leader_id and v["reachable"]), None)
        out = []
        for m, v in zip(members, views):
            role = "unknown" if not v["reachable"] else "leader" if v["leader_id"] == v["id"] else \
                "follower" if v["leader_id"] else "no leader"
            lag = leader_view["commit"] - v["applied"] if leader_view and v["reachable"] else None
            out.append({"name": m.get("name") or m["raft"], "raft": m["raft"], "api": self.api_url(m),
                        "kv": m.get("kv"), "reachable": v["reachable"], "role": role, "term": v["term"],
                        "commit": v["commit"], "applied": v["applied"], "revision": v["revision"], "lag": lag,
                        "leader": by_id.get(v["leader_id"] or "")})
        out.sort(key=lambda m: m["name"])
        return web.json_response({"served_by": self.name, "quorum": quorum and leader_view is not None,
                                  "leader": by_id.get(leader_id or "") if quorum else None, "masters": out},
                                 dumps=lambda o: orjson.dumps(o).decode())

    async def _status(self, m: dict) -> dict:
        view = {"id": str(m["id"]), "reachable": False, "leader_id": None, "term": None, "commit": None,
                "applied": None, "revision": None}
        if not m.get("kv"):
            return view
        try:
            async with self._session.post(m["kv"] + "/v3/maintenance/status", data=b"{}") as r:
                st = await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return view
        header = st.get("header", {})
        view.update(reachable=True, id=str(header.get("member_id", view["id"])), leader_id=st.get("leader"),
                    term=int(st.get("raftTerm", 0)), commit=int(st.get("raftIndex", 0)),
                    applied=int(st.get("raftAppliedIndex", 0)), revision=int(header.get("revision", 0)))
        return view

    # -- one watch for the page ------------------------------------------------------------------

    async def watch(self, request: web.Request) -> web.StreamResponse:
        snapshot, start = [], None
        for res in self.resources:
            items, revision = await self.objects.list(res, None, local=True)
            start = revision if start is None else min(start, revision)  # replays are upserts to the page
            snapshot.append((res, items))
        sink: asyncio.Queue = asyncio.Queue()
        opened = self.hub.open(self.store, watch_id=0, key=b"/registry/", range_end=prefix_end(b"/registry/"),
                               start_revision=(start or 0) + 1, sink=sink)
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-store"})
        await resp.prepare(request)
        if isinstance(opened, KVError):
            await resp.write(_line("ERROR", "", {"message": opened.message}))
            return resp
        watcher, backlog = opened
        try:
            for res, items in snapshot:
                await resp.write(b"".join(_line("ADDED", res.plural, obj) for obj in items))
            await self._send(resp, backlog)
            await resp.write(_line("SYNCED", "", {"revision": watcher.progress, "master": self.name}))
            while request.transport is not None and not request.transport.is_closing():
                try:
                    _, events = await asyncio.wait_for(sink.get(), PING_EVERY)
                except asyncio.TimeoutError:
                    await resp.write(_line("PING", "", {"revision": watcher.progress, "master": self.name}))
                    continue
                if events is None:  # cancelled by the hub: the page reconnects and starts afresh
                    await resp.write(_line("ERROR", "", {"message": watcher.cancel_reason or "watch cancelled"}))
                    break
                await self._send(resp, events)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except ApiError as exc:  # an object it cannot read: the page says so and reconnects
            with contextlib.suppress(ConnectionError):
                await resp.write(_line("ERROR", "", {"message": exc.message}))
        finally:
            self.hub.close(watcher)
        return resp

    async def _send(self, resp: web.StreamResponse, events: list) -> None:
        lines = []
        for ev in events:
            key = ev.kv.key.decode(errors="replace")
            res = next((r for prefix, r in self._prefixes if key.startswith(prefix)), None)
            if res is not None:
                kind, obj = event(ev, self.objects)
                lines.append(_line(kind, res.plural, obj))
        if lines:
            await resp.write(b"".join(lines))


def _line(kind: str, resource: str, obj: dict) -> bytes:
    return orjson.dumps({"type": kind, "resource": resource, "object": obj}) + b"\n"
