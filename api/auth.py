"""Authentication: `Authorization: Bearer TOKEN` against the master's --token-file.

The file has one `token,user[,uid[,groups]]` line per client, as kube-apiserver's static token
file. Health and version answer anyone (load balancers and kubectl's dispatcher ask them first).
This is the one seam where TLS client certificates and authorization would plug in later.
"""
from __future__ import annotations

import csv
from typing import Awaitable, Callable

from aiohttp import web

from api.errors import ApiError

OPEN_PATHS = {"/healthz", "/livez", "/readyz", "/version", "/version/",
              "/dashboard"}  # the page only: its data requests carry the token (api/dashboard.py)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_tokens(path: str) -> dict[str, str]:
    """token -> user name."""
    tokens = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if row and row[0].strip() and not row[0].startswith("#"):
                if len(row) < 2:
                    raise ValueError(f"{path}: each line needs token,user")
                tokens[row[0].strip()] = row[1].strip()
    if not tokens:
        raise ValueError(f"{path} holds no token")
    return tokens


def middleware(tokens: dict[str, str]) -> Callable:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() not in tokens:
                status = ApiError(401, "Unauthorized: send Authorization: Bearer TOKEN with a token from the "
                                       "master's --token-file (raftkube up writes one into its kubeconfig)",
                                  reason="Unauthorized").status()
                return web.json_response(status, status=401)
            request["user"] = tokens[token.strip()]
        return await handler(request)

    return authenticate
