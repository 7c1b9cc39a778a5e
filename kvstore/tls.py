"""TLS for the KV port, as etcd's client port has it: the server's side (etcd's --cert-file, --key-file,
--client-cert-auth, --trusted-ca-file) and a client's (etcdctl's --cacert, --cert, --key).

One port serves the JSON gateway (HTTP/1.1) and gRPC (HTTP/2): ALPN tells them apart before a byte of HTTP is
read. The server prefers http/1.1, so a client that offers both (curl, a browser) gets the gateway, which speaks
only HTTP/1.1; gRPC clients offer h2 alone (etcdctl 3.4's grpc-go) or "grpc-exp" and h2 (grpcio) and get h2. A
client that offers neither, or no ALPN at all (aiohttp, Python's ssl by default), is told apart by HTTP/2's
preface afterwards, as on a plain port (kv_port.py).

With client-cert-auth the handshake itself refuses a client without a certificate the trusted CA signed (TLS
1.3's "certificate required" alert), as etcd's does: no request is read from it, whatever its path.
"""
from __future__ import annotations

import ssl

HTTP1, H2 = "http/1.1", "h2"
SERVER_ALPN = (HTTP1, H2)  # in the server's order of preference (OpenSSL picks the server's first that matches)


class TLSConfigError(ValueError):
    """Certificate, key or CA files that cannot make a TLS context: the message says which and why."""


def server_context(cert_file: str, key_file: str, *, trusted_ca_file: str | None = None,
                   client_cert_auth: bool = False) -> ssl.SSLContext:
    """The KV port's TLS: this certificate and key; with `client_cert_auth`, only clients whose certificate
    `trusted_ca_file` signed (checked strictly: RFC 5280 and X.509 v3 extensions, VERIFY_X509_STRICT)."""
    if client_cert_auth and not trusted_ca_file:
        raise TLSConfigError("client certificate authentication needs the CA that signs client certificates "
                             "(--kv-trusted-ca-file)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_pair(context, cert_file, key_file)
    if client_cert_auth:
        _load_ca(context, trusted_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(list(SERVER_ALPN))
    return context


def client_context(ca_file: str, cert_file: str | None = None, key_file: str | None = None, *,
                   alpn: tuple[str, ...] = (HTTP1,)) -> ssl.SSLContext:
    """A client's TLS toward KV ports: their certificates checked against `ca_file` (and the host name), this
    certificate and key presented when asked. ALPN http/1.1 by default: the JSON gateway."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_ca(context, ca_file)
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise TLSConfigError("a client certificate and its key go together")
        _load_pair(context, cert_file, key_file)
    context.set_alpn_protocols(list(alpn))
    return context


def _load_pair(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot load the certificate {cert_file} with the key {key_file}: {exc}") from None


def _load_ca(context: ssl.SSLContext, ca_file: str) -> None:
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot load the CA certificate {ca_file}: {exc}") from None
    context.verify_flags |= ssl.VERIFY_X509_STRICT
