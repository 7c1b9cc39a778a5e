"""How the API server reaches a node's kubelet (node/kubelet_server.py): where it dials, and what it checks and shows.

The address is the Node's status, and only it: InternalIP and daemonEndpoints.kubeletEndpoint.Port. The connection
is TLS, the kubelet's certificate verified against --kubelet-certificate-authority (the cluster CA) for that very
address, strictly (VERIFY_X509_STRICT); the API server shows its --kubelet-client-certificate (CN
kube-apiserver-kubelet-client, O system:masters), the only credential a kubelet accepts (node/kubelet_auth.py). So a
Node whose status names some other address gets nothing: no certificate there is valid for it, and no token is sent.
A master started without those flags reaches no kubelet, and says so.
"""
from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from api.errors import ApiError

Obj = dict[str, Any]
CONNECT_TIMEOUT = 5.0


def tls_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext:
    """The client side of that TLS; OSError or ssl.SSLError when a file is missing or wrong."""
    context = ssl.create_default_context(cafile=ca_file)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(cert_file, key_file)
    return context


def kubelet_address(node: Obj) -> tuple[str, int]:
    status = node.get("status") or {}
    ip = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not ip or not isinstance(port, int) or port <= 0:
        raise ApiError(503, f"node {node['metadata']['name']} reports no kubelet endpoint (InternalIP and "
                            "daemonEndpoints.kubeletEndpoint.Port); is its `raftkube node` running?")
    return ip, port


class KubeletClient:
    def __init__(self, tls: ssl.SSLContext | None) -> None:
        """`tls`: tls_context() of this master's --kubelet-* flags; None when it was started without them."""
        self.tls = tls

    def url(self, node: Obj, path: str) -> str:
        if self.tls is None:
            raise ApiError(503, "this master was started without --kubelet-client-certificate, --kubelet-client-key "
                                "and --kubelet-certificate-authority: it does not reach kubelets (logs, exec, attach, "
                                "port-forward, metrics)")
        ip, port = kubelet_address(node)
        return f"https://{f'[{ip}]' if ':' in ip else ip}:{port}{path}"

    def session(self, total: float | None = None) -> aiohttp.ClientSession:
        """A session for one request or stream; `total` bounds the whole exchange (None: a stream's lifetime)."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.tls or True),
                                     timeout=aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_TIMEOUT))

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
