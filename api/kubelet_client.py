"""How the API server reaches a node's kubelet (node/kubelet_server.py): where it listens, and what it presents.

The address is the Node's status: InternalIP and daemonEndpoints.kubeletEndpoint.Port. The credential is that
node's own token from this master's --token-file (the user system:node:NAME), which its kubelet accepts and users
never hold (node/kubelet_auth.py says why, and what TLS would change: only this module and that one).
"""
from __future__ import annotations

from typing import Any

import aiohttp

from api.errors import ApiError
from api.node_authorizer import node_user

Obj = dict[str, Any]
CONNECT_TIMEOUT = 5.0


def kubelet_address(node: Obj) -> tuple[str, int]:
    status = node.get("status") or {}
    ip = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not ip or not isinstance(port, int) or port <= 0:
        raise ApiError(503, f"node {node['metadata']['name']} reports no kubelet endpoint (InternalIP and "
                            "daemonEndpoints.kubeletEndpoint.Port); is its `raftkube node` running?")
    return ip, port


class KubeletClient:
    def __init__(self, tokens: Any) -> None:
        """`tokens`: this master's StaticTokens (api/authentication.py), or None without authentication."""
        self.tokens = tokens

    def headers(self, node: Obj) -> dict[str, str]:
        users = self.tokens.users() if self.tokens is not None else {}
        name = node_user(node["metadata"]["name"])
        token = next((token for token, user in users.items() if user.name == name), None)
        return {"Authorization": f"Bearer {token}"} if token else {}

    @staticmethod
    def url(node: Obj, path: str) -> str:
        ip, port = kubelet_address(node)
        return f"http://{ip}:{port}{path}"

    @staticmethod
    def session(total: float | None = None) -> aiohttp.ClientSession:
        """A session for one request or stream; `total` bounds the whole exchange (None: a stream's lifetime)."""
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_TIMEOUT))

    @staticmethod
    def unreachable(node: Obj, exc: Exception) -> ApiError:
        return ApiError(503, f"the kubelet of node {node['metadata']['name']} cannot be reached ({exc}); is its "
                             "`raftkube node` running?")

    @staticmethod
    def refused(node: Obj, status: int, text: str) -> ApiError:
        """The kubelet's own 400 or 404 passed on as it said it; anything else is a 502 Bad Gateway."""
        if status in (400, 404):
            return ApiError(status, text.strip() or f"the kubelet answered {status}")
        return ApiError(502, f"the kubelet of node {node['metadata']['name']} answered {status}: {text.strip()}")
