"""`raftkube status`: every master's Raft role, term, commit and applied index, through its KV API."""
from __future__ import annotations

import argparse
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from raftkube import cluster_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=".raftkube")
    p.add_argument("--watch", nargs="?", type=float, const=1.0, metavar="SECONDS",
                   help="redraw every SECONDS (default 1) until Ctrl-C: watch a failover live")


def kv_status(kv_url: str, timeout: float = 1.5) -> dict[str, Any] | None:
    req = urllib.request.Request(kv_url + "/v3/maintenance/status", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def role(st: dict[str, Any]) -> str:
    """leader, follower or no leader, from a master's /v3/maintenance/status answer."""
    leader = st.get("leader", "0")
    return "leader" if leader == st["header"]["member_id"] else "follower" if leader != "0" else "no leader"


def collect(info: dict[str, Any]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(len(info["masters"])) as pool:
        answers = list(pool.map(lambda m: kv_status(m["kv"]), info["masters"]))
    rows = []
    for m, st in zip(info["masters"], answers):
        row = {"name": m["name"], "pid": m["pid"], "reachable": st is not None}
        if st:
            row.update(role=role(st), term=int(st.get("raftTerm", 0)), commit=int(st.get("raftIndex", 0)),
                       applied=int(st.get("raftAppliedIndex", 0)), revision=int(st["header"]["revision"]))
        rows.append(row)
    leader_commit = max((r["commit"] for r in rows if r.get("role") == "leader"), default=None)
    for r in rows:
        if leader_commit is not None and r["reachable"]:
            r["lag"] = max(0, leader_commit - r["applied"])
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'MASTER':8} {'PID':>7} {'ROLE':10} {'TERM':>5} {'COMMIT':>8} {'APPLIED':>8} {'LAG':>5} {'REVISION':>9}"]
    for r in rows:
        if not r["reachable"]:
            lines.append(f"{r['name']:8} {r['pid']:>7} {'unreachable':10}")
            continue
        lines.append(f"{r['name']:8} {r['pid']:>7} {r['role']:10} {r['term']:>5} {r['commit']:>8} "
                     f"{r['applied']:>8} {r.get('lag', '-'):>5} {r['revision']:>9}")
    leaders = [r["name"] for r in rows if r.get("role") == "leader"]
    lines.append(f"leader: {', '.join(leaders) if leaders else 'none (no quorum?)'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not args.watch:
        print(render(collect(cluster_file.read(args.state_dir))))
        return 0
    try:
        while True:
            screen = render(collect(cluster_file.read(args.state_dir)))  # re-read: pids change
            print(f"\033[H\033[J{time.strftime('%H:%M:%S')}  (Ctrl-C to stop)\n{screen}", flush=True)
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
