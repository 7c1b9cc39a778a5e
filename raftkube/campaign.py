"""`raftkube campaign` (and `make chaos`): a bounded Jepsen-style run against a fresh local cluster.

Clients (raftkube/workload.py) read, write, compare-and-swap and append through every master while the nemesis
(raftkube/nemesis.py) kills, pauses and partitions masters on a schedule. Then everything is healed and the
records are checked: the register history for linearizability, every watcher's events against the final
history, every acknowledged append for durability. It prints operations by outcome, anomalies (the goal is
zero), failovers seen and availability, and exits 1 if any anomaly was found.
`--stale-reads` turns on the failpoint that makes one cut-off follower serve linearizable reads from its own
stale replica: the run shows the checker catching it.

What makes it hard: some appends carry 32-100 KB values (`--big-values`), so Raft entries span several messages;
masters snapshot and trim their logs every `--snapshot-entries` entries (every few seconds); lease clients keep
leases alive while the leader's wall clock is stepped; kill-all kills every master with writes in flight.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

from kvstore.client import KVClient, prefix_end, unb64
from raftkube import cluster_file, up
from raftkube.history_checks import availability, check_durability, check_leases, check_watch
from raftkube.linearizability import FAILED, OK, UNKNOWN, check
from raftkube.nemesis import FAULTS, NET_FAULTS, Nemesis, leader_monitor_row
from raftkube.netns import Network
from raftkube.workload import SET_PREFIX, Workload, reference_events

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="how long the clients and the nemesis run")
    p.add_argument("--masters", type=int, default=3, choices=(3, 5, 7))
    p.add_argument("--faults", help=f"comma-separated, from: {', '.join(FAULTS + NET_FAULTS)} (empty: none; "
                                    "default: all that apply)")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--big-values", type=float, default=0.05,
                   help="the share of appends that carry a 32-100 KB value (default 0.05)")
    p.add_argument("--leases", type=int, default=2, help="clients keeping a lease alive (default 2)")
    p.add_argument("--snapshot-entries", type=int, default=1000,
                   help="masters snapshot and trim their Raft log after this many entries (default 1000: often)")
    p.add_argument("--stale-reads", action="store_true",
                   help="cut one follower off and let it serve stale linearizable reads: the checker must object")
    p.add_argument("--netns", action="store_true",
                   help="run each master in its own network namespace and add the net-* faults (root, Linux)")
    p.add_argument("--state-dir", help="where the cluster lives (default: a fresh temporary directory)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


async def campaign(state_dir: str, *, seconds: float, masters: int = 3, faults: list[str] | None = None,
                   clients: int = 6, seed: int = 1, stale_reads: bool = False, netns: bool = False,
                   big_values: float = 0.05, leases: int = 2, snapshot_entries: int = 1000) -> dict[str, Any]:
    net = Network([f"m{i + 1}" for i in range(masters)]) if netns else None
    if faults is None:
        faults = FAULTS + (NET_FAULTS if netns else [])
    try:
        if net is not None:
            net.create()
            net.write_layout(state_dir)
        # Keep the whole history (no auto-compaction): the watch check replays it from the first revision.
        info = up.start(state_dir, masters, 0, ("--no-control-plane", "--enable-failpoints", "--auto-compaction-retention", "0",
                                                "--snapshot-entries", str(snapshot_entries)),
                        netns=net and net.namespaces())
        if net is not None:
            info["netns"] = net.describe()
            cluster_file.write(state_dir, info)
        try:
            if not up.wait_ready(info):
                raise RuntimeError(f"the masters did not become ready; see {state_dir}/logs")
            workload = Workload([m["kv"] for m in info["masters"]], clients=clients, seed=seed, leases=leases,
                                big_values=big_values)
            return await _run(info, workload, seconds, faults, seed, stale_reads)
        finally:
            up.stop(state_dir)
    finally:
        if net is not None:
            net.destroy()


async def _run(info: dict[str, Any], workload: Workload, seconds: float, faults: list[str], seed: int,
               stale_reads: bool) -> dict[str, Any]:
    endpoints = [m["kv"] for m in info["masters"]]
    async with KVClient(endpoints[0]) as kv:
        start_revision = int((await kv.status())["header"]["revision"]) + 1
    nemesis = Nemesis(info, [] if stale_reads else faults, seed=seed)
    if stale_reads:
        await asyncio.to_thread(nemesis.stale_follower)
    leaders: list[tuple[float, str | None, int]] = []
    monitor = asyncio.create_task(_watch_leaders(info, leaders))
    began = time.monotonic()
    try:
        await asyncio.gather(workload.run(seconds, start_revision), nemesis.run(seconds))
    finally:
        ended = time.monotonic()
        monitor.cancel()
        await asyncio.to_thread(nemesis.heal)
        await workload.close()
    if not await asyncio.to_thread(up.wait_ready, info, 30.0):
        raise RuntimeError("the cluster did not recover after the faults were healed")
    final_values, reference = await _final_state(endpoints, start_revision)
    result = check(workload.history, budget=120)
    watch_problems = [f"watcher {i}: {p}" for i, log in enumerate(workload.watch_logs)
                      for p in check_watch(log.events, log.start_revision, reference)]
    durability = check_durability(workload.appends, final_values)
    lease_problems = check_leases(workload.lease_logs)
    writes = [op for op in workload.history if op.kind != "read"] + workload.appends
    outcomes = {o: sum(1 for op in [*workload.history, *workload.appends] if op.outcome == o)
                for o in (OK, FAILED, UNKNOWN)}
    elected = [(name, term) for _, name, term in leaders if name is not None]
    failovers = sum(1 for a, b in zip(elected, elected[1:]) if a != b)
    return {
        "seconds": round(ended - began, 1), "masters": len(info["masters"]), "faults": nemesis.faults,
        "stale_reads": stale_reads, "operations": outcomes, "reads": sum(1 for op in workload.history
                                                                       if op.kind == "read"),
        "appends": len(workload.appends), "watch_events": sum(len(w.events) for w in workload.watch_logs),
        "linearizable": result["ok"], "nonlinearizable_keys": result["bad_keys"],
        "undecided_keys": result["undecided_keys"], "watch_anomalies": watch_problems,
        "lost_writes": durability, "lease_anomalies": lease_problems, "failovers": failovers,
        "leases": len(workload.lease_logs), "keepalives": sum(len(log.keepalives) for log in workload.lease_logs),
        "big_values": sum(1 for a in workload.appends if a.size > 1),
        "availability": availability(writes, began, ended), "timeline": nemesis.timeline,
        "anomalies": len(result["bad_keys"]) + len(watch_problems) + len(durability) + len(lease_problems),
    }


async def _watch_leaders(info: dict[str, Any], out: list[tuple[float, str | None, int]]) -> None:
    while True:
        name, term = await asyncio.to_thread(leader_monitor_row, info)
        if not out or (name, term) != out[-1][1:]:
            out.append((time.monotonic(), name, term))
        await asyncio.sleep(0.2)


async def _final_state(endpoints: list[str], start_revision: int) -> tuple[dict[str, bytes], list]:
    """Every set key now with its value, read linearizably, and the reference history: a watch from the first
    revision."""
    async with KVClient(endpoints[0], timeout=60) as kv:
        res = await kv.range(SET_PREFIX.encode(), prefix_end(SET_PREFIX.encode()))
        values = {unb64(item["key"]).decode(): unb64(item.get("value")) for item in res.get("kvs") or []}
        last = int(res["header"]["revision"])
        events: list = []
        if last >= start_revision:
            await asyncio.wait_for(_replay(kv, start_revision, last, events), 120)
    return values, reference_events(events)


async def _replay(kv: KVClient, start_revision: int, last: int, events: list) -> None:
    async for result in kv.watch(b"\0", b"\0", start_revision=start_revision):
        if result.get("canceled"):
            raise RuntimeError(f"the reference watch from revision {start_revision} was cancelled: "
                               f"{result.get('cancel_reason') or 'compacted?'}")
        events += result.get("events") or []
        if events and int(events[-1]["kv"]["mod_revision"]) >= last:
            return


def render(report: dict[str, Any]) -> str:
    ops = report["operations"]
    avail = report["availability"]
    lines = [
        f"campaign: {report['seconds']}s, {report['masters']} masters, faults: {', '.join(report['faults']) or 'none'}"
        + (" (stale-reads failpoint on)" if report["stale_reads"] else ""),
        f"operations: {ops[OK]} ok, {ops[FAILED]} failed, {ops[UNKNOWN]} unknown "
        f"({report['reads']} reads, {report['appends']} appends of which {report['big_values']} of 32-100 KB, "
        f"{report['watch_events']} watch events, {report['keepalives']} keepalives of {report['leases']} leases)",
        f"failovers seen: {report['failovers']}",
        f"availability: writes succeeded in {avail['share']:.0%} of the time; longest gap {avail['longest_gap']:.2f}s",
        f"linearizable: {'yes' if report['linearizable'] else 'NO'}"
        + (f" (bad keys {report['nonlinearizable_keys']})" if report["nonlinearizable_keys"] else "")
        + (f" (undecided: {report['undecided_keys']})" if report["undecided_keys"] else ""),
        f"watches: {'gap-free, duplicate-free, in order' if not report['watch_anomalies'] else ''}",
        *[f"  {p}" for p in report["watch_anomalies"][:10]],
        f"durability: {'every acknowledged write survived' if not report['lost_writes'] else ''}",
        *[f"  {p}" for p in report["lost_writes"][:10]],
        f"leases: {'none gone sooner than its TTL after a keepalive' if not report['lease_anomalies'] else ''}",
        *[f"  {p}" for p in report["lease_anomalies"][:10]],
        f"anomalies: {report['anomalies']}",
        "timeline:", *[f"  {t:7.2f}s  {text}" for t, text in report["timeline"]],
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    faults = None if args.faults is None else [f for f in args.faults.split(",") if f]
    state_dir = os.path.abspath(args.state_dir) if args.state_dir else tempfile.mkdtemp(prefix="raftkube-campaign-")
    up.stop_on_signals()  # a campaign cut short (Ctrl-C, SIGTERM) still stops its masters
    try:
        report = asyncio.run(campaign(state_dir, seconds=args.seconds, masters=args.masters, faults=faults,
                                      clients=args.clients, seed=args.seed, stale_reads=args.stale_reads,
                                      netns=args.netns, big_values=args.big_values, leases=args.leases,
                                      snapshot_entries=args.snapshot_entries))
    except KeyboardInterrupt:
        print("raftkube campaign: interrupted; its masters are stopped, nothing was checked", file=sys.stderr)
        return 130
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["anomalies"] else 0
