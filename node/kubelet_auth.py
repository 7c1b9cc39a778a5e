"""Who may call the kubelet's server (node/kubelet_server.py): the API server, and nobody else.

Today that is whoever presents the node token (`Authorization: Bearer TOKEN`): the API server reads it from its
--token-file (api/kubelet_client.py) and the kubelets hold it as their own identity. That keeps users' tokens out,
admins' included, but a kubelet could still call another; Kubernetes closes that with TLS, the kubelet serving with
a certificate the cluster CA signed and accepting only the API server's client certificate (issue 14). Both ends
of that check live in this module and in api/kubelet_client.py, so the change stays in two places.
"""
from __future__ import annotations

import hmac
from typing import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BearerToken:
    def __init__(self, token: str | None) -> None:
        """`token` None: no check (a node started without --token-file, against masters without authentication)."""
        self.token = token

    def allows(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def middleware(self, *, open_paths: tuple[str, ...]) -> Callable:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in open_paths and not self.allows(request):
                return web.Response(status=401, text="Unauthorized: the kubelet serves the API server only "
                                                     "(Authorization: Bearer with the node token)")
            return await handler(request)

        return authenticate
