"""Load shedding, as kube-apiserver's --max-requests-inflight and --max-mutating-requests-inflight do it.

Past the limit a request is answered at once with 429 TooManyRequests and Retry-After: 1, which kubectl and
client-go wait out and retry, instead of piling up on this master's event loop (where the Raft ticks run too:
a flood must never cost the cluster its leader). Long-running requests (watches, followed logs, exec, attach and
port-forward sessions) do not count
against the limits, as in Kubernetes, but each user may keep at most `watches_per_user` open at once.
"""
from __future__ import annotations

from collections import Counter
from typing import Awaitable, Callable

from aiohttp import web

from api.errors import ApiError
from api.query import TRUE
from api.responses import reply

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def too_many(message: str) -> web.Response:
    status = ApiError(429, message, reason="TooManyRequests").status()
    status["details"] = {"retryAfterSeconds": 1}
    return reply(status, 429, {"Retry-After": "1"})


class InFlight:
    def __init__(self, *, reads: int = 200, mutations: int = 100, watches_per_user: int = 200) -> None:
        self.limits = {False: reads, True: mutations}
        self.running = {False: 0, True: 0}
        self.watches_per_user = watches_per_user
        self.watches: Counter[str] = Counter()
        self.rejected = 0  # a metric

    @staticmethod
    def long_running(request: web.Request) -> bool:
        q = request.query
        return request.method == "GET" and (q.get("watch") in TRUE or q.get("follow") in TRUE or
                                            request.headers.get("Upgrade", "").lower() == "websocket")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.long_running(request):
            user = request.get("user", "system:anonymous")
            if self.watches[user] >= self.watches_per_user:
                self.rejected += 1
                return too_many(f"user {user} has {self.watches[user]} watches open on this master, the most "
                                "one user may: close some before opening more")
            self.watches[user] += 1
            try:
                return await handler(request)
            finally:
                self.watches[user] -= 1
        mutating = request.method in MUTATING
        if self.running[mutating] >= self.limits[mutating]:
            self.rejected += 1
            return too_many("Too many requests, please try again later (this master is serving "
                            f"{self.running[mutating]} {'mutating' if mutating else 'read-only'} requests)")
        self.running[mutating] += 1
        try:
            return await handler(request)
        finally:
            self.running[mutating] -= 1
