"""`raftkube controller-manager`, `raftkube scheduler` and `raftkube control-plane` (both in one process, which
is what every master runs as its child): API clients that act only while they hold their Lease."""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import socket

import uvloop

from controllers.base import Options
from controllers.leader_election import Timing, identity
from controllers.manager import CONTROLLERS, run_component
from raftkube import client_flags, logs
from raftkube import metrics as control_plane_metrics

PR_SET_PDEATHSIG = 1


class Command:
    def __init__(self, components: tuple[str, ...]) -> None:
        self.components = components

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        client_flags.add_arguments(p)
        p.add_argument("--name", default=socket.gethostname(),
                       help="who this is (a master's name); the lease holder is NAME_<random>")
        p.add_argument("--leader-elect-lease-duration", type=float, default=15.0,
                       help="seconds a lease lasts without renewal before another candidate may take it")
        p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0,
                       help="seconds the leader keeps trying to renew before it stops acting")
        p.add_argument("--leader-elect-retry-period", type=float, default=2.0,
                       help="seconds between tries to take or renew the lease")
        if "controller-manager" in self.components:
            p.add_argument("--node-monitor-grace-period", type=float, default=40.0,
                           help="seconds without a node Lease renewal before the node is Ready=Unknown")
            p.add_argument("--pod-eviction-timeout", type=float, default=300.0,
                           help="default toleration seconds of unreachable/not-ready nodes before pods go")
            p.add_argument("--controllers", default="*",
                           help="comma-separated controllers to run, * for all (default): "
                                + ", ".join(c.name for c in CONTROLLERS))
            p.add_argument("--use-service-account-credentials", action=argparse.BooleanOptionalAction, default=True,
                           help="each controller acts as its own service account in kube-system, with a token from "
                                "the TokenRequest API (default); --no-...: all act as system:kube-controller-manager "
                                "(masters that cannot sign tokens)")
        p.add_argument("--metrics-listen", metavar="HOST:PORT",
                       help="serve /metrics there (workqueues, reconciles, leases, scheduling); default: off")
        logs.add_argument(p)
        p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # a master's child dies with it

    def run(self, args: argparse.Namespace) -> int:
        logs.setup(args.name, args.log_format)
        if args.parent_pid:
            _die_with_parent(args.parent_pid)
        timing = Timing(args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
                        args.leader_elect_retry_period)
        enabled = getattr(args, "controllers", "*").split(",")
        unknown = set(enabled) - {"*", *(c.name for c in CONTROLLERS)}
        if unknown:
            raise SystemExit(f"--controllers: no controller is named {', '.join(sorted(unknown))}")
        options = Options(node_monitor_grace_period=getattr(args, "node_monitor_grace_period", 40.0),
                          controllers=tuple(enabled),
                          pod_eviction_timeout=getattr(args, "pod_eviction_timeout", 300.0),
                          service_account_credentials=getattr(args, "use_service_account_credentials", False))
        uvloop.run(self._main(args, timing, options))
        return 0

    async def _main(self, args: argparse.Namespace, timing: Timing, options: Options) -> None:
        clients = {c: client_flags.make_client(args, c) for c in self.components}
        ca_file = next(iter(clients.values())).ca_file
        if ca_file:
            with open(ca_file) as f:
                options.root_ca = f.read()
        loop = asyncio.get_running_loop()
        if args.metrics_listen:
            await control_plane_metrics.serve(args.metrics_listen)
            logging.getLogger("raftkube.control-plane").info("metrics on http://%s/metrics", args.metrics_listen)
        tasks = [asyncio.create_task(run_component(client, c, identity(args.name), timing, options, args.name))
                 for c, client in clients.items()]
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: [t.cancel() for t in tasks])
        await asyncio.gather(*tasks, return_exceptions=True)  # cancelled: each released its lease
        await asyncio.gather(*(c.close() for c in clients.values()))


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL us when the master that started us dies, so a killed master's controllers stop acting."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(0)


CONTROLLER_MANAGER = Command(("controller-manager",))
SCHEDULER = Command(("scheduler",))
BOTH = Command(("controller-manager", "scheduler"))
