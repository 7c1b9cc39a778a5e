"""/livez, /readyz and /healthz as kube-apiserver answers them: a list of named checks.

    GET /readyz                -> 200 "ok", or 500 with every check's line when one fails
    GET /readyz?verbose        -> [+]ping ok / [+]log ok / [+]etcd ok / readyz check passed
    GET /readyz?exclude=etcd   -> the others only ("[+]etcd excluded: ok" in the verbose list)
    GET /readyz/etcd           -> that check alone ("ok", or 500 "internal server error: ...")

A failed check's reason is logged, not shown ("reason withheld", as upstream: these paths answer anyone).
Here /livez does not ask the store: it says the process answers, so a load balancer can still reach a master that
has lost its quorum and hear that from it (docker-compose.yml's haproxy does); /readyz and /healthz ask for a
quorum (`etcd`).
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from kvstore.errors import KVFailure
from kvstore.store import Store

log = logging.getLogger("raftkube.api")

Check = Callable[[], Awaitable[str | None]]  # None when it passes, else what failed
QUORUM_WAIT = 1.0  # seconds the etcd check waits for a quorum


async def passes() -> str | None:
    return None


def add_routes(app: web.Application, store: Store) -> None:
    """The three endpoints, and one path per check under each."""

    async def quorum() -> str | None:
        try:
            await store.read_index(timeout=QUORUM_WAIT)
        except KVFailure as exc:
            return exc.error.message
        return None

    endpoints = {"livez": {"ping": passes, "log": passes},
                 "readyz": {"ping": passes, "log": passes, "etcd": quorum},
                 "healthz": {"ping": passes, "log": passes, "etcd": quorum}}
    for kind, checks in endpoints.items():
        handler = _handler(kind, checks)
        app.router.add_get(f"/{kind}", handler)
        app.router.add_get(f"/{kind}/{{check}}", handler)


def _handler(kind: str, checks: dict[str, Check]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        only = request.match_info.get("check")
        if only is not None:
            return await _one(kind, checks, only)
        excluded = set(request.query.getall("exclude", []))
        lines, failed = [], False
        for name, check in checks.items():
            if name in excluded:
                lines.append(f"[+]{name} excluded: ok")
                continue
            why = await check()
            if why is None:
                lines.append(f"[+]{name} ok")
            else:
                failed = True
                lines.append(f"[-]{name} failed: reason withheld")
                log.info("%s check %s failed: %s", kind, name, why)
        if not failed and "verbose" not in request.query:
            return web.Response(text="ok")
        lines.append(f"{kind} check {'failed' if failed else 'passed'}")
        return web.Response(status=500 if failed else 200, text="\n".join(lines) + "\n")

    return handle


async def _one(kind: str, checks: dict[str, Check], name: str) -> web.Response:
    check = checks.get(name)
    if check is None:
        return web.Response(status=404, text="404 page not found\n")
    why = await check()
    if why is not None:
        log.info("%s check %s failed: %s", kind, name, why)
        return web.Response(status=500, text="internal server error: reason withheld\n")
    return web.Response(text="ok")
