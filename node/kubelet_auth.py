"""Who may call the kubelet's server (node/kubelet_server.py): the API server, and nobody else, as upstream's kubelet
with --client-ca-file checks the API server's --kubelet-client-certificate.

The server speaks TLS only, with a serving certificate the cluster CA signed for the node's InternalIP (where the
API server dials, verifying it: api/kubelet_client.py). It asks every client for a certificate and verifies the one
it gets against --client-ca-file, strictly (VERIFY_X509_STRICT), and for client use (a kubelet's serving certificate
fails the handshake). A request is then served only when that certificate names the API server's kubelet client:
CN kube-apiserver-kubelet-client in group (O) system:masters. No certificate, or another one the CA signed, is a 401
with a sentence; tokens, the node's included, mean nothing here. /healthz answers anyone.
"""
from __future__ import annotations

import ssl
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_SERVER = ("kube-apiserver-kubelet-client", "system:masters")  # (CN, O), as api/kubelet_client.py presents


def subject(peercert: dict[str, Any] | None) -> tuple[str | None, set[str]]:
    """(common name, organizations) of a verified peer certificate as ssl reports it."""
    pairs = [pair for rdn in (peercert or {}).get("subject", ()) for pair in rdn]
    names = [value for key, value in pairs if key == "commonName"]
    return (names[0] if names else None), {value for key, value in pairs if key == "organizationName"}


class ClientCertificate:
    def __init__(self, cert_file: str, key_file: str, client_ca_file: str) -> None:
        """The server's TLS: its certificate and key, and the CA its client must be signed by; OSError or
        ssl.SSLError when a file is missing or wrong."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL  # a client without one hears why, in a 401
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        self.context = context

    @staticmethod
    def allows(request: web.Request) -> bool:
        common_name, groups = subject(request.transport.get_extra_info("peercert") if request.transport else None)
        return common_name == API_SERVER[0] and API_SERVER[1] in groups

    def middleware(self, *, open_paths: tuple[str, ...]) -> Callable:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in open_paths and not self.allows(request):
                return web.Response(status=401, text="Unauthorized: the kubelet serves the API server only (its "
                                                     f"client certificate, CN {API_SERVER[0]}, O {API_SERVER[1]})")
            return await handler(request)

        return authenticate
