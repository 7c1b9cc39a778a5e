"""`raftkube campaign` (and `make chaos`): a bounded Jepsen-style run against a fresh local cluster.

Clients (raftkube/workload.py) read, write, compare-and-swap and append through every master while the nemesis
(raftkube/nemesis.py) kills, pauses and partitions masters on a schedule. Then everything is healed and the
records are checked: the register history for linearizability, every watcher's events against the final
history, every acknowledged append for durability. It prints operations by outcome, anomalies (the goal is
zero), failovers seen and availability, and exits 1 if any anomaly was found; each anomaly with the smallest
history that shows it (raftkube/findings.py), as text, as an HTML timeline (`--html FILE`), and the whole history
for other checkers (`--export FILE`, Jepsen's EDN or JSON). The labs (raftkube/labs.py) run the same campaign with
one safety mechanism switched off, to show the checkers catching it.

What makes it hard: some appends carry 32-100 KB values (`--big-values`), so Raft entries span several messages;
masters snapshot and trim their logs every `--snapshot-entries` entries (every few seconds); lease clients keep
leases alive while the leader's wall clock is stepped; kill-all kills every master with writes in flight.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from kvstore.client import KVClient, prefix_end, unb64
from raftkube import cluster_file, findings, history_export, kv_access, timeline_html, up
from raftkube.history_checks import (acknowledged_writes, availability, check_durability, check_leases,
                                     check_revisions, check_watch)
from raftkube.linearizability import FAILED, OK, UNKNOWN, check
from raftkube.nemesis import FAULTS, NET_FAULTS, TARGETED_FAULTS, Nemesis, leader_monitor_row
from raftkube.netns import Network
from raftkube.workload import LEASE_TTL, SET_PREFIX, Workload, reference_events


RECOVERY_TIMEOUT = 60.0  # seconds for every master to be ready again once the faults are healed


@dataclass(frozen=True)
class Plan:
    """What a campaign runs: the cluster, the clients and the faults."""
    seconds: float = 60.0
    masters: int = 3
    faults: tuple[str, ...] | None = None  # chosen from at random, round after round; None: every fault that applies
    held: tuple[str, ...] = ()  # applied before the clients start, undone at the end
    healthy: float = 2.0  # the nemesis's rhythm: about this long healthy, then about `faulty` in a fault
    faulty: float = 2.5
    rounds: int | None = None  # at most this many faults (None: as many as fit)
    clients: int = 6
    watchers: int = 2
    leases: int = 2
    lease_ttl: int = LEASE_TTL
    big_values: float = 0.05
    seed: int = 1
    snapshot_entries: int = 1000
    master_flags: tuple[str, ...] = ()  # e.g. ("--lab", NAME)
    netns: bool = False
    check_budget: float = 120.0  # seconds the linearizability search may take before keys count as undecided


@dataclass
class Run:
    """A campaign's report (JSON-able) and the records behind it."""
    report: dict[str, Any]
    records: findings.Records
    found: list[findings.Finding] = field(default_factory=list)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="how long the clients and the nemesis run")
    p.add_argument("--masters", type=int, default=3, choices=(3, 5, 7))
    p.add_argument("--faults", help=f"comma-separated, from: {', '.join(FAULTS + NET_FAULTS + TARGETED_FAULTS)} "
                                    f"(empty: none; default: {', '.join(FAULTS)}, and the net-* ones with --netns)")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--big-values", type=float, default=0.05,
                   help="the share of appends that carry a 32-100 KB value (default 0.05)")
    p.add_argument("--leases", type=int, default=2, help="clients keeping a lease alive (default 2)")
    p.add_argument("--snapshot-entries", type=int, default=1000,
                   help="masters snapshot and trim their Raft log after this many entries (default 1000: often)")
    p.add_argument("--netns", action="store_true",
                   help="run each master in its own network namespace and add the net-* faults (root, Linux)")
    p.add_argument("--state-dir", help="where the cluster lives (default: a fresh temporary directory)")
    add_output_arguments(p)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--html", metavar="FILE", help="also write the anomalies as an HTML timeline (one file, no script)")
    p.add_argument("--export", metavar="FILE",
                   help="also write the whole history for other checkers: Jepsen's EDN (Knossos, Elle), or JSON "
                        "when FILE ends in .json (raftkube/history_export.py)")


async def campaign(state_dir: str, plan: Plan) -> Run:
    net = Network([f"m{i + 1}" for i in range(plan.masters)]) if plan.netns else None
    try:
        if net is not None:
            net.create()
            net.write_layout(state_dir)
        # Keep the whole history (no auto-compaction): the watch check replays it from the first revision.
        flags = ("--no-control-plane", "--enable-failpoints", "--auto-compaction-retention", "0",
                 "--snapshot-entries", str(plan.snapshot_entries), *plan.master_flags)
        info = up.start(state_dir, plan.masters, 0, flags, netns=net and net.namespaces())
        if net is not None:
            info["netns"] = net.describe()
            cluster_file.write(state_dir, info)
        try:
            if not up.wait_ready(info):
                raise RuntimeError(f"the masters did not become ready; see {state_dir}/logs")
            return await _run(info, plan)
        finally:
            up.stop(state_dir)
    finally:
        if net is not None:
            net.destroy()


async def _run(info: dict[str, Any], plan: Plan) -> Run:
    endpoints = [m["kv"] for m in info["masters"]]
    tls = kv_access.context(info.get("kv_tls"))
    async with KVClient(endpoints[0], tls=tls) as kv:
        start_revision = int((await kv.status())["header"]["revision"]) + 1
    workload = Workload(endpoints, names=[m["name"] for m in info["masters"]], clients=plan.clients, watchers=plan.watchers, seed=plan.seed, leases=plan.leases,
                        lease_ttl=plan.lease_ttl, big_values=plan.big_values, tls=tls)
    faults = list(plan.faults) if plan.faults is not None else FAULTS + (NET_FAULTS if plan.netns else [])
    nemesis = Nemesis(info, faults, seed=plan.seed, healthy=plan.healthy, faulty=plan.faulty, rounds=plan.rounds)
    for fault in plan.held:
        await asyncio.to_thread(nemesis.hold, fault)
    leaders: list[tuple[float, str | None, int]] = []
    monitor = asyncio.create_task(_watch_leaders(info, leaders))
    began = time.monotonic()
    try:
        await asyncio.gather(workload.run(plan.seconds, start_revision), nemesis.run(plan.seconds))
    finally:
        ended = time.monotonic()
        monitor.cancel()
        await asyncio.to_thread(nemesis.heal)
        await workload.close()
    if not await asyncio.to_thread(up.wait_ready, info, RECOVERY_TIMEOUT):
        raise RuntimeError(f"the cluster did not recover within {RECOVERY_TIMEOUT:.0f}s after the faults were healed "
                           f"(the faults: {nemesis.timeline}); the masters' logs are in {info['state_dir']}/logs")
    final_values, reference, final_read = await _final_state(endpoints, start_revision, tls)
    result = check(workload.history, budget=plan.check_budget)
    watch_problems = [f"watcher {i}: {p}" for i, log in enumerate(workload.watch_logs)
                      for p in check_watch(log.events, log.start_revision, reference)]
    durability = check_durability(workload.appends, final_values) + check_revisions(
        acknowledged_writes(workload.appends, workload.history), reference)
    lease_problems = check_leases(workload.lease_logs)
    writes = [op for op in workload.history if op.kind != "read"] + workload.appends
    outcomes = {o: sum(1 for op in [*workload.history, *workload.appends] if op.outcome == o)
                for o in (OK, FAILED, UNKNOWN)}
    elected = [(name, term) for _, name, term in leaders if name is not None]
    failovers = sum(1 for a, b in zip(elected, elected[1:]) if a != b)
    report = {
        "seconds": round(ended - began, 1), "masters": len(info["masters"]), "faults": nemesis.faults,
        "held": list(plan.held), "lab": _lab(plan.master_flags), "operations": outcomes,
        "reads": sum(1 for op in workload.history if op.kind == "read"),
        "appends": len(workload.appends), "watch_events": sum(len(w.events) for w in workload.watch_logs),
        "linearizable": result["ok"], "nonlinearizable_keys": result["bad_keys"],
        "undecided_keys": result["undecided_keys"], "watch_anomalies": watch_problems,
        "lost_writes": durability, "lease_anomalies": lease_problems, "failovers": failovers,
        "leases": len(workload.lease_logs), "keepalives": sum(len(log.keepalives) for log in workload.lease_logs),
        "big_values": sum(1 for a in workload.appends if a.size > 1),
        "availability": availability(writes, began, ended), "timeline": nemesis.timeline,
        "masters_exited": nemesis.exited,
        "anomalies": len(result["bad_keys"]) + len(watch_problems) + len(durability) + len(lease_problems)
        + len(nemesis.exited),
    }
    records = findings.Records(workload, reference, final_values, final_read,
                               [(nemesis.started + t, text) for t, text in nemesis.timeline], result["bad_keys"])
    run = Run(report, records, findings.find(records))
    report["findings"] = [f.as_dict() for f in run.found]
    return run


def _lab(master_flags: tuple[str, ...]) -> str | None:
    return master_flags[master_flags.index("--lab") + 1] if "--lab" in master_flags else None


async def _watch_leaders(info: dict[str, Any], out: list[tuple[float, str | None, int]]) -> None:
    while True:
        name, term = await asyncio.to_thread(leader_monitor_row, info)
        if not out or (name, term) != out[-1][1:]:
            out.append((time.monotonic(), name, term))
        await asyncio.sleep(0.2)


async def _final_state(endpoints: list[str], start_revision: int, tls: ssl.SSLContext | None
                       ) -> tuple[dict[str, bytes], list, tuple[float, float]]:
    """Every set key now with its value, read linearizably (and when: sent, answered), and the reference history: a
    watch from the first revision."""
    async with KVClient(endpoints[0], timeout=60, tls=tls) as kv:
        sent = time.monotonic()
        res = await kv.range(SET_PREFIX.encode(), prefix_end(SET_PREFIX.encode()))
        answered = time.monotonic()
        values = {unb64(item["key"]).decode(): unb64(item.get("value")) for item in res.get("kvs") or []}
        last = int(res["header"]["revision"])
        events: list = []
        if last >= start_revision:
            await asyncio.wait_for(_replay(kv, start_revision, last, events), 120)
    return values, reference_events(events), (sent, answered)


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
        + (f"; held: {', '.join(report['held'])}" if report["held"] else "")
        + (f"; lab {report['lab']} (one mechanism off)" if report["lab"] else ""),
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
        f"masters: {'none stopped by itself' if not report['masters_exited'] else 'exited by themselves: '}"
        + ", ".join(report["masters_exited"]),
        f"anomalies: {report['anomalies']}",
        "timeline:", *[f"  {t:7.2f}s  {text}" for t, text in report["timeline"]],
    ]
    return "\n".join(lines)


def print_outputs(run: Run, args: argparse.Namespace, title: str, context: tuple[str, ...] = ()) -> None:
    """The report and what the checkers found (text, or JSON with --json) on stdout, then the --html and --export
    files if asked for. `context`: lines the caller printed before the run, which the HTML page repeats."""
    summary = render(run.report)
    if args.json:
        print(json.dumps(run.report, indent=2))
    else:
        print(summary)
        print(findings.render(run.found))
    if args.html:
        with open(args.html, "w") as f:
            f.write(timeline_html.render(title, [*context, *summary.splitlines()], run.found))
        print(f"wrote {args.html}: the anomalies as timelines", file=sys.stderr)
    if args.export:
        fmt = history_export.write(args.export, findings.register_history(run.records))
        print(f"wrote {args.export}: the history as {fmt.upper()} (Jepsen's format; split by :key for Knossos)",
              file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    faults = None if args.faults is None else tuple(f for f in args.faults.split(",") if f)
    plan = Plan(seconds=args.seconds, masters=args.masters, faults=faults, clients=args.clients, seed=args.seed,
                netns=args.netns, big_values=args.big_values, leases=args.leases,
                snapshot_entries=args.snapshot_entries)
    state_dir = os.path.abspath(args.state_dir) if args.state_dir else tempfile.mkdtemp(prefix="raftkube-campaign-")
    try:  # a campaign cut short (Ctrl-C, SIGTERM) still stops its masters
        result = up.run_until_signal(campaign(state_dir, plan))
    except KeyboardInterrupt:
        print("raftkube campaign: interrupted; its masters are stopped, nothing was checked", file=sys.stderr)
        return 130
    print_outputs(result, args, "raftkube campaign")
    return 1 if result.report["anomalies"] else 0
