"""Who may call the kubelet's server (node/kubelet_server.py): the API server, and nobody else.

Today that is whoever presents the node's own token (`Authorization: Bearer TOKEN`, the user system:node:NAME): the
API server reads it from its --token-file (api/kubelet_client.py) and the kubelet holds it as its identity. That
keeps users' tokens out, admins' included, and other nodes too (each has a token of its own); Kubernetes does it with
TLS, the kubelet serving with a certificate the cluster CA signed and accepting only the API server's client
certificate (issue 14). Both ends of that check live in this module and in api/kubelet_client.py, so the change
stays in two places. A process running several (fake) nodes serves them all, so it accepts the token of each.
"""
from __future__ import annotations

import hmac
from typing import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BearerToken:
    def __init__(self, tokens: list[str] | None) -> None:
        """`tokens` None: no check (a node started without a token, against masters without authentication)."""
        self.tokens = tokens

    def allows(self, request: web.Request) -> bool:
        if self.tokens is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and any(hmac.compare_digest(given.strip().encode(), token.encode())
                                                  for token in self.tokens)

    def middleware(self, *, open_paths: tuple[str, ...]) -> Callable:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in open_paths and not self.allows(request):
                return web.Response(status=401, text="Unauthorized: the kubelet serves the API server only "
                                                     "(Authorization: Bearer with the node token)")
            return await handler(request)

        return authenticate
