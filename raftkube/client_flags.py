"""The flags every API client process shares (controller-manager, scheduler, node): where the servers are, how to
authenticate, which CA to trust. With `--state-dir` of a `raftkube up` cluster, the rest is read from there."""
from __future__ import annotations

import argparse
import os
import re

from api.client import ApiClient
from raftkube import cluster_file

COMPONENT_USERS = {"controller-manager": "system:kube-controller-manager", "scheduler": "system:kube-scheduler"}


def token_env(user: str) -> str:
    """The variable a master hands `user`'s token to its control plane in (RAFTKUBE_TOKEN_KUBE_SCHEDULER for
    system:kube-scheduler): each component runs as itself, with no token in a file or on a command line."""
    return "RAFTKUBE_TOKEN_" + re.sub(r"[^A-Za-z0-9]", "_", user.removeprefix("system:")).upper()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="",
                   help="comma-separated kube API URLs; the client moves to the next one when one fails")
    p.add_argument("--token-file", help="file holding the bearer token (else the one the master or --state-dir "
                                        "hands this component)")
    p.add_argument("--ca-file", help="CA certificate that signed the servers' certificates")
    p.add_argument("--state-dir", help="a `raftkube up` state directory: servers, token and CA from there")


def make_client(args: argparse.Namespace, component: str) -> ApiClient:
    """An ApiClient from the flags, acting as `component`'s user (COMPONENT_USERS) and named kube-COMPONENT."""
    servers, token, ca = connection(args, COMPONENT_USERS[component])
    return ApiClient(servers, token=token, ca_file=ca, user_agent=f"kube-{component}")


def connection(args: argparse.Namespace, user: str) -> tuple[list[str], str | None, str | None]:
    """The servers, `user`'s token and the CA: the token from --token-file, else from a state dir's tokens.csv, else
    from the variable token_env(user)."""
    servers = [s for s in args.server.split(",") if s]
    token = os.environ.get(token_env(user))
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
    return servers, token, ca
