"""The `raftkube` command: master, up, status, chaos, demo, controller-manager, scheduler, compose."""
from __future__ import annotations

import argparse
import sys

from raftkube import campaign, chaos, compose, control_plane, demo, master, member, node, restore, status, up

COMMANDS = [
    ("master", master, "run one master: the replicated store and its APIs"),
    ("node", node, "run a kubelet (pods as local processes, or fake ones) and kube-proxy"),
    ("up", up, "start a local cluster in the foreground until Ctrl-C"),
    ("status", status, "each master's Raft role, term and indexes"),
    ("chaos", chaos, "kill, pause, resume, restart, partition or heal a master; name the leader"),
    ("member", member, "add or remove a master at runtime, or list the members"),
    ("restore", restore, "seed a new master's data directory from an `etcdctl snapshot save` file"),
    ("campaign", campaign, "a Jepsen-style run: clients and faults on a fresh cluster, then every check"),
    ("demo", demo, "run the failover or the quorum-loss scenario on a live cluster, as a timeline"),
    ("controller-manager", control_plane.CONTROLLER_MANAGER, "the controllers, acting while they hold their Lease"),
    ("scheduler", control_plane.SCHEDULER, "bind pods to nodes, acting while it holds its Lease"),
    ("control-plane", control_plane.BOTH, "the controller-manager and the scheduler in one process (as masters run)"),
    ("compose", compose, "write docker-compose.yml (and its secrets) for the same cluster in containers"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="raftkube", description="A Kubernetes control plane on a Raft-replicated store")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, text in COMMANDS:
        p = sub.add_parser(name, help=text)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    sys.exit(args.run(args) or 0)
