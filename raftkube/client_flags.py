"""The flags every API client process shares (controller-manager, scheduler, node): where the servers are, how to
authenticate, which CA to trust. With `--state-dir` of a `raftkube up` cluster, the rest is read from there."""
from __future__ import annotations

import argparse
import os

from api.client import ApiClient
from raftkube import cluster_file

TOKEN_ENV = "RAFTKUBE_TOKEN"  # how a master hands its own controllers their token without a file or argv


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="",
                   help="comma-separated kube API URLs; the client moves to the next one when one fails")
    p.add_argument("--token-file", help=f"file holding the bearer token (else ${TOKEN_ENV})")
    p.add_argument("--ca-file", help="CA certificate that signed the servers' certificates")
    p.add_argument("--state-dir", help="a `raftkube up` state directory: servers, token and CA from there")


def make_client(args: argparse.Namespace, user: str) -> ApiClient:
    """An ApiClient from the flags; `user` picks the token from a state dir's tokens.csv."""
    servers = [s for s in args.server.split(",") if s]
    token = os.environ.get(TOKEN_ENV)
    ca = args.ca_file
    if args.state_dir:
        from raftkube import up  # the state dir's layout is up's

        info = cluster_file.read(os.path.abspath(args.state_dir))
        servers = servers or [m["api"] for m in info["masters"]]
        token = up.token_for(args.state_dir, user)
        ca = ca or info.get("ca")
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    if not servers:
        raise SystemExit("give --server URL[,URL...] or --state-dir DIR")
    return ApiClient(servers, token=token, ca_file=ca)
