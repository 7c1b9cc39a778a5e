"""The `raftkube` command: master, up, status, chaos."""
from __future__ import annotations

import argparse
import sys

from raftkube import chaos, master, status, up


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="raftkube", description="A Kubernetes control plane on a Raft-replicated store")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("master", help="run one master: the replicated store and its APIs")
    master.add_arguments(p)
    p.set_defaults(run=master.run)

    p = sub.add_parser("up", help="start a local cluster in the foreground until Ctrl-C")
    up.add_arguments(p)
    p.set_defaults(run=up.run)

    p = sub.add_parser("status", help="each master's Raft role, term and indexes")
    status.add_arguments(p)
    p.set_defaults(run=status.run)

    p = sub.add_parser("chaos", help="kill, pause, resume, restart, partition or heal a master; name the leader")
    chaos.add_arguments(p)
    p.set_defaults(run=chaos.run)

    args = parser.parse_args(argv)
    sys.exit(args.run(args) or 0)
