"""`raftkube chaos`: break a running local cluster on purpose, by master name.

    kill MASTER       SIGKILL; the master stays down until `restart`
    pause MASTER      SIGSTOP: alive but silent (a GC pause, a frozen VM)
    resume MASTER     SIGCONT
    restart MASTER    start it again with its recorded command line (killing it first if it runs)
    partition MASTER  cut its Raft traffic with every other master, both ways, while it keeps
                      running and serving clients (the masters' failpoints, enabled by `up`);
                      with --clients its client connections are dropped too
    heal MASTER       undo `partition` (both kinds)
    leader            print the name of the master every reachable master agrees leads

Everything is found through STATE_DIR/cluster.json; `restart` writes the new pid there.
A partition needs no root: each master drops the Raft messages to and from the peers it is told
about (kvstore/replica.py `set_partitioned`), so `raftkube chaos kill $(raftkube chaos leader)` and
`raftkube chaos partition m1` work on a laptop as they do in a container.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.request
from typing import Any

from raftkube import cluster_file, status, up

ACTIONS = ["kill", "pause", "resume", "restart", "partition", "heal", "leader"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("master", nargs="?", help="the master's name, e.g. m1 (not for `leader`)")
    p.add_argument("--clients", action="store_true",
                   help="partition: cut the master off from its clients too (their connections are dropped)")
    p.add_argument("--state-dir", default=".raftkube")


def find(info: dict[str, Any], name: str) -> dict[str, Any]:
    for m in info["masters"]:
        if m["name"] == name:
            return m
    names = ", ".join(m["name"] for m in info["masters"])
    raise SystemExit(f"raftkube chaos: no master named {name!r} (the masters are {names})")


class FailpointError(Exception):
    pass


def failpoint(m: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """POST a failpoint change to master `m` ({"cut": [raft addresses]}, {"heal": [...]}, {"stale_reads": bool})."""
    req = urllib.request.Request(m["kv"] + "/debug/failpoints", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return json.load(r)
    except OSError as exc:
        raise FailpointError(f"master {m['name']} did not take the failpoint ({exc}); is it running (not paused), "
                             "and was it started with --enable-failpoints (as `up` does)?") from None


def split(groups: list[list[dict[str, Any]]], change: str = "cut") -> None:
    """Cut (or heal) the Raft links between masters in different groups, both ends of every link."""
    for group in groups:
        outside = [o["raft"] for g in groups if g is not group for o in g]
        for m in group:
            failpoint(m, {change: outside})


def leader(info: dict[str, Any]) -> str | None:
    leaders = {r["name"] for r in status.collect(info) if r.get("role") == "leader"}
    return leaders.pop() if len(leaders) == 1 else None


def send_signal(m: dict[str, Any], sig: int) -> None:
    try:
        os.kill(m["pid"], sig)
    except ProcessLookupError:
        raise SystemExit(f"raftkube chaos: master {m['name']} (pid {m['pid']}) is not running; "
                         f"`raftkube chaos restart {m['name']}` starts it") from None


def run(args: argparse.Namespace) -> int:
    info = cluster_file.read(args.state_dir)
    if args.action == "leader":
        name = leader(info)
        if name is None:
            print("raftkube chaos: no leader right now (no quorum, or an election is running)", file=sys.stderr)
            return 1
        print(name)
        return 0
    if not args.master:
        raise SystemExit(f"raftkube chaos {args.action}: which master? (e.g. m1)")
    m = find(info, args.master)
    others = [o for o in info["masters"] if o is not m]
    if args.action == "kill":
        send_signal(m, signal.SIGKILL)
    elif args.action == "pause":
        send_signal(m, signal.SIGSTOP)
    elif args.action == "resume":
        send_signal(m, signal.SIGCONT)
    elif args.action == "restart":
        up.restart_master(info, m["name"])
    else:  # partition or heal: both ends of every link, so no message crosses either way
        try:
            split([[m], others], "cut" if args.action == "partition" else "heal")
            if args.clients or args.action == "heal":
                failpoint(m, {"clients": args.action == "partition"})
        except FailpointError as exc:
            raise SystemExit(f"raftkube chaos: {exc}") from None
    print(f"{args.action} {m['name']}: done (pid {m['pid']})")
    return 0
