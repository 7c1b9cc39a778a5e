"""Benchmark raftkube's KV store, and optionally a real etcd 3.4, through the same client.

    python bench/kv.py [--etcd] [--grpc] [--check-perf] [--quick] [--masters 3] [--duration SECONDS]

Starts a throw-away raftkube cluster (`raftkube.up`, temp state dir, loopback ports) and, with
--etcd, a throw-away etcd cluster of as many members on 127.0.0.1 (installing Debian's
etcd-server if /usr/bin/etcd is missing). Against each, through the same client (`kvstore.client.KVClient`
on the etcd v3 JSON gateway, one aiohttp session per cluster; with --grpc, `grpc_client.GrpcKVClient` on
the etcd v3 gRPC API, one channel per member), 100-byte values, it measures:

  1. puts, 1 in flight: ops/s, p50/p99 latency
  2. puts, 16 and 64 in flight: ops/s, p50/p99 latency
  3. linearizable and serializable single-key ranges, 64 in flight: ops/s
  4. watch: one watcher on a prefix on a follower, 16 writers putting through the leader:
     events/s delivered, and p50/p99 from each put's acknowledgement to its event's arrival
     (slightly negative when the event beats the ack back to the client)
  5. compare-and-swap txns (read mod_revision, then txn), 16 in flight on distinct keys: ops/s
  6. failover: kill -9 the leader, time until a put (one started every 10 ms on the survivors)
     succeeds; restart it, wait until healthy; min/median/max over the rounds
  7. no quorum: kill a majority (followers), one put on the surviving leader with a 15 s client
     timeout: how long until it fails, and with what error; then restart them
  8. with --check-perf: `etcdctl check perf --load=s` against every member's gRPC endpoint (60 s
     each; bench/check_perf.py), after the workloads

Both clusters run side by side (idle but for their heartbeats when not measured) and each workload
runs on one, then on the other, so the two figures of a row are minutes apart at most: this 2-core
machine's speed drifts by a third between runs. Closed-loop requests go round-robin over every
member's endpoint (see workloads.py). Each figure is printed as it is measured, then a table with the ratio ours/etcd (above 1: ours is higher,
better for ops/s, worse for latency and seconds). It asserts nothing. Every process it starts is
killed at the end, on Ctrl-C and SIGTERM too; on trouble the logs are kept and their place printed.
Default: under 2 minutes with --etcd (on 2 cores); --quick: a smoke run of about 40 s.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
import time
from typing import Awaitable, Callable

# Siblings in bench/: running `python bench/kv.py` puts this directory on sys.path.
import workloads as wl
from check_perf import check_perf
from etcd_cluster import EtcdCluster, ensure_etcd
from harness import TRANSIENT, Cluster, Harness, describe, running
from raftkube_cluster import RaftkubeCluster
from raftkube import kv_access

Workload = Callable[[Harness, wl.Config, wl.Report], Awaitable[None]]

WORKLOADS: list[tuple[str, Workload]] = [
    ("put, 1 in flight", lambda h, c, r: wl.puts(h, c, r, 1)),
    ("put, 16 in flight", lambda h, c, r: wl.puts(h, c, r, 16)),
    ("put, 64 in flight", lambda h, c, r: wl.puts(h, c, r, 64)),
    ("linearizable range", lambda h, c, r: wl.ranges(h, c, r, serializable=False)),
    ("serializable range", lambda h, c, r: wl.ranges(h, c, r, serializable=True)),
    ("watch", wl.watch_delivery),
    ("cas", wl.cas),
    ("failover", wl.failover),
    ("no quorum", wl.no_quorum),
]


def config(args: argparse.Namespace) -> wl.Config:
    if args.quick:
        cfg = wl.Config(duration=0.8, warmup=0.2, watch_keys=300, failover_rounds=2)
    else:
        cfg = wl.Config(duration=5.0, warmup=0.5, watch_keys=2000, failover_rounds=5)
    if args.duration:
        cfg.duration = args.duration
    cfg.only = args.only
    return cfg


async def run_suite(clusters: list[Cluster], cfg: wl.Config, reports: list[wl.Report], transport: str) -> None:
    """Every workload in turn, on each cluster one after the other, so that both figures of a row
    are taken minutes apart at most (this machine's speed drifts); a failed one is reported."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    harnesses = [Harness(c, transport) for c in clusters]
    try:
        for h, report in zip(harnesses, reports):
            report.say(f"{len(h.names)} members healthy after {await h.wait_healthy():.1f} s")
        for name, workload in WORKLOADS:
            if cfg.only and not any(word in name for word in cfg.only):
                continue
            for h, report in zip(harnesses, reports):
                try:
                    await workload(h, cfg, report)
                except (*TRANSIENT, RuntimeError) as exc:
                    report.problem(f"{name} failed: {describe(exc)}")
                    await h.wait_healthy()  # if even that fails, the rest would be meaningless
    finally:
        for h in harnesses:
            await h.close()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that every `finally` runs and the clusters are stopped


def bench(clusters: list[Cluster], cfg: wl.Config, transport: str, perf: bool) -> list[wl.Report]:
    started = time.monotonic()
    reports = [wl.Report(c.label) for c in clusters]
    signal.signal(signal.SIGTERM, _terminate)  # outside the event loop; inside, run_suite's handler
    with contextlib.ExitStack() as stack:
        for c in clusters:
            stack.enter_context(running(c))
        try:
            asyncio.run(run_suite(clusters, cfg, reports, transport))
            if perf:
                for c, report in zip(clusters, reports):
                    report.say("etcdctl check perf --load=s (60 s) ...")
                    figures, verdict = check_perf([c.grpc_endpoint(n) for n in c.names], kv_access.flags(c.kv_tls))
                    for label, value in figures.items():
                        report.add(label, value, "{:.3f}" if label.endswith("(s)") else "{:.0f}")
                    report.add("check perf verdict", verdict)
                    report.say(f"check perf: {figures} {verdict}")
        except asyncio.CancelledError:  # SIGTERM while the loop ran
            raise KeyboardInterrupt from None
        except RuntimeError as exc:
            reports[0].problem(f"stopped early: {exc}")
        finally:
            for c, r in zip(clusters, reports):
                c.keep_logs = bool(r.problems)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    return reports


# -- the table ------------------------------------------------------------------------------

def cell(report: wl.Report, name: str) -> str:
    value = report.figures.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return report.formats[name].format(value)


def ratio(ours: wl.Report, theirs: wl.Report, name: str) -> str:
    a, b = ours.figures.get(name), theirs.figures.get(name)
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not (a > 0 and b > 0):
        return "-"  # also when missing, NaN, or a negative watch delay: no meaningful ratio
    return f"{a / b:.2f}"


def print_table(reports: list[wl.Report]) -> None:
    names = list(dict.fromkeys(n for r in reports for n in r.figures))
    numeric = [n for n in names if not any(isinstance(r.figures.get(n), str) for r in reports)]
    width = max(len(n) for n in names) + 2
    header = "workload".ljust(width) + "".join(f"{r.label:>12}" for r in reports)
    if len(reports) == 2:
        header += f"{'ratio':>9}"
    print("\n" + header)
    print("-" * len(header))
    for name in numeric:
        row = name.ljust(width) + "".join(f"{cell(r, name):>12}" for r in reports)
        if len(reports) == 2:
            row += f"{ratio(reports[0], reports[1], name):>9}"
        print(row)
    for name in (n for n in names if n not in numeric):
        print(f"\n{name}:")
        for r in reports:
            print(f"  {r.label:<10} {r.figures.get(name, '-')}")
    for r in reports:
        if r.problems:
            print(f"\n{r.label}: {len(r.problems)} problem(s) (see above)")


# -- main -----------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--etcd", action="store_true", help="also run against a real etcd 3.4 on loopback")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--grpc", action="store_true", help="run the workloads over the etcd v3 gRPC API, not JSON")
    p.add_argument("--check-perf", action="store_true",
                   help="also run `etcdctl check perf --load=s` against each cluster (60 s each)")
    p.add_argument("--masters", type=int, default=3, choices=[1, 3, 5, 7],
                   help="raftkube masters, and etcd members (default 3)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds per closed-loop workload")
    p.add_argument("--only", nargs="*", default=[], metavar="WORD",
                   help="run only the workloads whose name contains one of these words (e.g. put range)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    cfg = config(args)
    etcd = ensure_etcd() if args.etcd else None
    transport = "grpc" if args.grpc else "json"
    print(f"over {'gRPC' if args.grpc else 'the JSON gateway'}: "
          f"{cfg.duration:g} s per closed-loop workload after {cfg.warmup:g} s warm-up, "
          f"{cfg.watch_keys} watched puts, {cfg.failover_rounds} failover rounds, "
          f"{len(cfg.value)}-byte values", flush=True)
    clusters: list[Cluster] = [RaftkubeCluster(args.masters)]
    if etcd:
        clusters.append(EtcdCluster(args.masters, etcd))
    try:
        reports = bench(clusters, cfg, transport, args.check_perf)
    except KeyboardInterrupt:
        print("\ninterrupted; every process started here is stopped", file=sys.stderr)
        return 130
    print_table(reports)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
