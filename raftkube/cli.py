"""The `raftkube` command: master, up, status, chaos, demo, campaign, lab, controller-manager, scheduler, compose."""
from __future__ import annotations

import argparse
import importlib
import sys

# name, what implements it ("module" or "module:attribute", with add_arguments and run), help
COMMANDS = [
    ("master", "raftkube.master", "run one master: the replicated store and its APIs"),
    ("node", "raftkube.node", "run a kubelet (pods as local processes, or fake ones) and kube-proxy"),
    ("up", "raftkube.up", "start a local cluster in the foreground until Ctrl-C"),
    ("status", "raftkube.status", "each master's Raft role, term and indexes"),
    ("chaos", "raftkube.chaos", "kill, pause, resume, restart, partition or heal a master; name the leader"),
    ("member", "raftkube.member", "add or remove a master at runtime, or list the members"),
    ("restore", "raftkube.restore", "seed a new master's data directory from an `etcdctl snapshot save` file"),
    ("campaign", "raftkube.campaign", "a Jepsen-style run: clients and faults on a fresh cluster, then every check"),
    ("lab", "raftkube.lab", "switch one safety mechanism off on a fresh cluster and see the checkers catch it"),
    ("demo", "raftkube.demo", "run the failover or the quorum-loss scenario on a live cluster, as a timeline"),
    ("controller-manager", "raftkube.control_plane:CONTROLLER_MANAGER",
     "the controllers, acting while they hold their Lease"),
    ("scheduler", "raftkube.control_plane:SCHEDULER", "bind pods to nodes, acting while it holds its Lease"),
    ("control-plane", "raftkube.control_plane:BOTH",
     "the controller-manager and the scheduler in one process (as masters run)"),
    ("compose", "raftkube.compose", "write docker-compose.yml (and its secrets) for the same cluster in containers"),
]


def _load(target: str):
    module, _, attribute = target.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="raftkube", description="A Kubernetes control plane on a Raft-replicated store")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, target, text in COMMANDS:
        p = sub.add_parser(name, help=text)
        if name == chosen:  # only the command asked for is imported: a restarted master is up sooner
            command = _load(target)
            command.add_arguments(p)
            p.set_defaults(run=command.run)
    args = parser.parse_args(argv)
    sys.exit(args.run(args) or 0)
