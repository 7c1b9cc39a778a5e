"""`raftkube chaos`: break a running local cluster on purpose, by master name.

    kill MASTER       SIGKILL; the master stays down until `restart`
    pause MASTER      SIGSTOP: alive but silent (a GC pause, a frozen VM)
    resume MASTER     SIGCONT
    restart MASTER    start it again with its recorded command line (killing it first if it runs)
    partition MASTER  cut its Raft traffic with every other master, both ways, while it keeps
                      running and serving clients (the masters' failpoints: `raftkube up --enable-failpoints`);
                      with --clients its client connections are dropped too
    heal MASTER       undo `partition` (both kinds)
    leader            print the name of the master every reachable master agrees leads (alone, on the last line)

Everything is found through STATE_DIR/cluster.json; `restart` writes the new pid there.
A partition needs no root: each master drops the Raft messages to and from the peers it is told
about (kvstore/replica.py `set_partitioned`), so `raftkube chaos kill $(raftkube chaos leader)` and
`raftkube chaos partition m1` work on a laptop. With --compose the same actions work on the containers of
`make compose-up` through docker (raftkube/compose_cluster.py).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from raftkube import status

ACTIONS = ["kill", "pause", "resume", "restart", "partition", "heal", "leader"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("master", nargs="?", help="the master's name, e.g. m1 (not for `leader`)")
    p.add_argument("--clients", action="store_true",
                   help="partition: cut the master off from its clients too (their connections are dropped); "
                        "with --compose a partition always does")
    p.add_argument("--state-dir", default=".raftkube")
    p.add_argument("--compose", action="store_true",
                   help="act on the compose cluster of this directory (make compose-up) through docker")


def leader(info: dict[str, Any]) -> str | None:
    leaders = {r["name"] for r in status.collect(info) if r.get("role") == "leader"}
    return leaders.pop() if len(leaders) == 1 else None


def run(args: argparse.Namespace) -> int:
    cluster = status.target(args)
    if args.action == "leader":
        name = leader(cluster.info())
        if name is None:
            print("raftkube chaos: no leader right now (no quorum, or an election is running)", file=sys.stderr)
            return 1
        print(name)
        return 0
    if not args.master:
        raise SystemExit(f"raftkube chaos {args.action}: which master? (e.g. m1)")
    if args.action == "partition":
        cluster.partition(args.master, clients=args.clients)
    else:
        getattr(cluster, args.action)(args.master)
    print(f"{args.action} {args.master}: done ({cluster.where(args.master)})")
    return 0
