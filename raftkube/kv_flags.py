"""A master's KV TLS flags, named as etcd's and kube-apiserver's are.

Serving (etcd's --cert-file, --key-file, --client-cert-auth, --trusted-ca-file, with `kv-` in front): the KV port,
the JSON gateway, gRPC, /metrics and /debug/failpoints alike, over TLS, and with --kv-client-cert-auth only to
clients whose certificate the trusted CA signed. Without them the port is plain and open to anyone who reaches it:
fine for a master started by hand on a laptop, and said in the log.

Calling (kube-apiserver's --etcd-cafile, --etcd-certfile, --etcd-keyfile): a master calls the other masters' KV
ports too (the dashboard asks each for its Raft status; a membership change made on a follower is sent to the
leader), with this CA and client certificate.
"""
from __future__ import annotations

import argparse
import logging
import ssl
from typing import NoReturn

from kvstore import tls

log = logging.getLogger("raftkube.master")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kv-cert-file", metavar="FILE",
                   help="serve the KV port (JSON gateway and gRPC) over TLS with this certificate (PEM; etcd's "
                        "--cert-file)")
    p.add_argument("--kv-key-file", metavar="FILE", help="the KV certificate's private key (PEM; etcd's --key-file)")
    p.add_argument("--kv-client-cert-auth", action="store_true",
                   help="refuse KV clients without a certificate that --kv-trusted-ca-file signed: the TLS handshake "
                        "fails (etcd's --client-cert-auth)")
    p.add_argument("--kv-trusted-ca-file", metavar="FILE",
                   help="the CA that signs the KV port's client certificates (etcd's --trusted-ca-file)")
    p.add_argument("--etcd-cafile", metavar="FILE",
                   help="the CA that signed the masters' KV certificates, for this master's own calls to them (the "
                        "dashboard, membership changes sent to the leader; kube-apiserver's flag)")
    p.add_argument("--etcd-certfile", metavar="FILE", help="this master's client certificate for those calls (PEM)")
    p.add_argument("--etcd-keyfile", metavar="FILE", help="its private key (PEM)")


def server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The KV port's TLS context, or None (a plain port, with a warning) when no certificate is given."""
    if not (args.kv_cert_file or args.kv_key_file):
        if args.kv_client_cert_auth or args.kv_trusted_ca_file:
            _refuse(args, "--kv-client-cert-auth and --kv-trusted-ca-file need --kv-cert-file and --kv-key-file: "
                          "client certificates are asked for in a TLS handshake")
        log.warning("master %s: no --kv-cert-file: the KV port (%s) is plain HTTP without authentication; anyone "
                    "who reaches it can read and change every key", args.name, args.kv_listen)
        return None
    if not (args.kv_cert_file and args.kv_key_file):
        _refuse(args, "--kv-cert-file and --kv-key-file go together")
    if not args.kv_client_cert_auth:
        log.warning("master %s: the KV port speaks TLS but takes any client: add --kv-client-cert-auth and "
                    "--kv-trusted-ca-file", args.name)
    try:
        return tls.server_context(args.kv_cert_file, args.kv_key_file, trusted_ca_file=args.kv_trusted_ca_file,
                                  client_cert_auth=args.kv_client_cert_auth)
    except tls.TLSConfigError as exc:
        _refuse(args, str(exc))


def client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """This master's TLS toward KV ports (--etcd-*), or None when not given (plain KV ports need none)."""
    if not (args.etcd_cafile or args.etcd_certfile or args.etcd_keyfile):
        if args.kv_client_cert_auth:
            log.warning("master %s: no --etcd-certfile: this master cannot call the other masters' KV ports (the "
                        "dashboard shows them unreachable; membership changes must be made on the leader)",
                        args.name)
        return None
    if not args.etcd_cafile:
        _refuse(args, "--etcd-certfile and --etcd-keyfile need --etcd-cafile, the CA that signed the KV ports' "
                      "certificates")
    try:
        return tls.client_context(args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
    except tls.TLSConfigError as exc:
        _refuse(args, str(exc))


def _refuse(args: argparse.Namespace, why: str) -> NoReturn:
    raise SystemExit(f"raftkube master {args.name}: {why}")
