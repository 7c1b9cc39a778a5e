"""The kube API side of a master: its flags, its app, and the control plane child that talks to it.

`raftkube master` imports this module in a thread once its store serves and has loaded its state
(raftkube/master.py): the kube API's code (admission, authentication, RBAC, encryption, tables...) takes about
0.1 s of CPU to import, and meanwhile the event loop already answers the store's clients and its Raft peers. A
bad kube API flag still stops the master, a moment after it started.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import shlex
import socket
import ssl
import sys
from typing import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from api import authorization, encryption, health, kubelet_client
from api.authentication import ServiceAccountKeys, StaticTokens
from api.dashboard import Dashboard
from api.inflight import InFlight
from api.kubernetes_service import KubernetesService
from api.metrics import ApiMetrics
from api.server import ApiServer
from kvstore.store import Store
from kvstore.watch import WatchHub
from raftkube.client_flags import COMPONENT_USERS, token_env
from raftkube.master import split_hostport

log = logging.getLogger("raftkube.master")


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a name, e.g. localhost
        return False


class KubeApi:
    """The kube API's flags, checked when made: a bad file or mode raises SystemExit with what to fix."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        name = args.name
        try:
            self.transformer = encryption.load(args.encryption_provider_config) \
                if args.encryption_provider_config else None
        except (OSError, encryption.ConfigError) as exc:
            raise SystemExit(f"raftkube master {name}: --encryption-provider-config: {exc}") from None
        if self.transformer is None:
            log.warning("master %s: no --encryption-provider-config: Secrets are stored in clear", name)
        try:
            self.tokens = StaticTokens(args.token_file) if args.token_file else None
            self.sa_keys = ServiceAccountKeys(args.service_account_key_file) if args.service_account_key_file else None
        except (OSError, ValueError) as exc:
            raise SystemExit(f"raftkube master {name}: {exc}") from None
        if self.tokens is None:
            log.warning("master %s: no --token-file: the kube API answers anyone who can reach it", name)
        self.kubelet_tls = self.kubelet_context()
        self.authorization = tuple(m.strip() for m in args.authorization_mode.split(",") if m.strip())
        if not self.authorization or set(self.authorization) - set(authorization.MODES):
            raise SystemExit(f"raftkube master {name}: --authorization-mode {args.authorization_mode!r}: use "
                             f"a comma-separated list of {', '.join(authorization.MODES)}")
        self.tls = self.tls_context()
        self.advertised = self.advertise()

    def app(self, store: Store, hub: WatchHub, registry: CollectorRegistry, members: Callable[[], list[dict]],
            kv_tls: dict | None) -> tuple[web.Application, list[asyncio.Task]]:
        """The kube API's app (with /dashboard), and its background tasks: the default namespaces and the
        `kubernetes` Service."""
        args = self.args
        api = ApiServer(store, hub, service_ip_range=args.service_cluster_ip_range, tokens=self.tokens,
                        service_account_keys=self.sa_keys, authorization=self.authorization,
                        metrics=ApiMetrics(registry), transformer=self.transformer,
                        inflight=InFlight(reads=args.max_requests_inflight,
                                          mutations=args.max_mutating_requests_inflight,
                                          watches_per_user=args.max_watches_per_user),
                        kubelet_tls=self.kubelet_tls)
        app = api.app()
        health.add_routes(app, store)  # /livez, /readyz, /healthz: open to load balancers (api/health.py)
        Dashboard(objects=api.objects, store=store, hub=hub, members=members, name=args.name,
                  scheme="https" if args.tls_cert_file else "http",
                  kv_tls=kv_tls).install(app)
        kubernetes = KubernetesService(api.objects, api.admission, service_ip_range=args.service_cluster_ip_range,
                                       port=args.kubernetes_service_port, advertise=self.advertised)
        return app, [asyncio.create_task(api.ensure_defaults()), asyncio.create_task(kubernetes.run())]

    async def start_control_plane(self) -> asyncio.subprocess.Process:
        """The controller-manager and scheduler as a child talking to this master's API only: a master cut off
        from quorum cannot renew their Leases, so they stop acting. The child dies with us (PDEATHSIG)."""
        args = self.args
        host, port = split_hostport(args.api_listen)
        if _unspecified(host):  # listening on every address: reach ourselves on loopback
            host = "127.0.0.1"
        scheme = "https" if args.tls_cert_file else "http"
        argv = [sys.executable, "-m", "raftkube", "control-plane", "--server", f"{scheme}://{host}:{port}",
                "--name", args.name, "--parent-pid", str(os.getpid()), "--log-format", args.log_format]
        if args.ca_file:
            argv += ["--ca-file", args.ca_file]
        argv += shlex.split(args.control_plane_flags)
        if self.sa_keys is None:  # no token can be signed for the controllers' service accounts
            argv.append("--no-use-service-account-credentials")
        env = dict(os.environ)
        if self.tokens is not None:
            users = {user.name: token for token, user in self.tokens.users().items()}
            for user in COMPONENT_USERS.values():  # each component of the child runs as itself
                if user in users:
                    env[token_env(user)] = users[user]
        child = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.DEVNULL)
        log.info("master %s: control plane running as pid %d", args.name, child.pid)
        return child

    def kubelet_context(self) -> ssl.SSLContext | None:
        args = self.args
        files = (args.kubelet_client_certificate, args.kubelet_client_key, args.kubelet_certificate_authority)
        if not any(files):
            log.warning("master %s: no --kubelet-client-certificate: pods/log, exec, attach, port-forward and "
                        "metrics answer 503", args.name)
            return None
        if not all(files):
            raise SystemExit(f"raftkube master {args.name}: --kubelet-client-certificate, --kubelet-client-key "
                             "and --kubelet-certificate-authority go together")
        try:
            return kubelet_client.tls_context(*files)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"raftkube master {args.name}: the kubelet client's TLS files: {exc}") from None

    def advertise(self) -> tuple[str, int]:
        """This master's API as pods reach it: --advertise-address, else --api-listen's host (a name resolved once;
        every address: this host's own), and the port it listens on."""
        host, port = split_hostport(self.args.api_listen)
        host = self.args.advertise_address or host
        try:
            address = socket.gethostbyname(socket.gethostname() if _unspecified(host) else host)
        except OSError as exc:
            raise SystemExit(f"raftkube master {self.args.name}: cannot tell the address to advertise ({exc}); "
                             "give --advertise-address") from None
        return address, port

    def tls_context(self) -> ssl.SSLContext | None:
        args = self.args
        if not (args.tls_cert_file or args.tls_private_key_file):
            return None
        if not (args.tls_cert_file and args.tls_private_key_file):
            raise SystemExit(f"raftkube master {args.name}: --tls-cert-file and --tls-private-key-file go together")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(args.tls_cert_file, args.tls_private_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"raftkube master {args.name}: --tls-cert-file/--tls-private-key-file: {exc}") from None
        return context
