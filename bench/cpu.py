"""Puts in a closed loop on a throw-away 3-master cluster, with each master's CPU time per put.

    python bench/cpu.py [--seconds 8] [--in-flight 1] [--grpc] [--profile DIR]

With one in flight every put goes to the leader (the sequential latency without forwarding); with more, the
workers spread over every master, as bench/kv.py's do. It prints puts/s, p50 and p90, and for each master the
CPU time (user + system, /proc/PID/stat) it spent per put: where the Python time of one put goes, leader against
followers. `--profile DIR` also records the leader and one follower with py-spy (raw collapsed stacks in DIR,
for flamegraph.pl or speedscope); profiling slows everything, so read its shares, not its rates.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time

from harness import Harness  # first: it puts the repository ahead of bench/
from raftkube_cluster import RaftkubeCluster

from node.stats import process_usage

VALUE = b"v" * 100


async def run(args: argparse.Namespace) -> None:
    cluster = RaftkubeCluster(3)
    cluster.start()
    h = Harness(cluster, "grpc" if args.grpc else "json")
    spies: list[subprocess.Popen] = []
    try:
        leader = await h.leader()
        follower = next(n for n in h.names if n != leader)
        clients = [h.client(leader)] if args.in_flight == 1 else h.clients()
        for i in range(200):  # warm up connections and the first batches
            await clients[i % len(clients)].put(b"warm/%d" % i, VALUE)
        pids = {m["name"]: m["pid"] for m in cluster.info["masters"]}
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
            py_spy = shutil.which("py-spy", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
            if py_spy is None:
                raise SystemExit("--profile needs py-spy: pip install py-spy (into this virtual environment)")
            for name, role in ((leader, "leader"), (follower, "follower")):
                spies.append(subprocess.Popen(
                    [py_spy, "record", "-r", "200", "-d", str(int(args.seconds)), "-f", "raw",
                     "-o", os.path.join(args.profile, f"{role}.txt"), "-p", str(pids[name])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        before = {name: process_usage(pid).cpu_seconds for name, pid in pids.items()}
        latencies: list[float] = []
        end = time.perf_counter() + args.seconds

        async def worker(w: int) -> None:
            client, i = clients[w % len(clients)], 0
            while time.perf_counter() < end:
                sent = time.perf_counter()
                await client.put(b"k/%d/%d" % (w, i % 100), VALUE)
                latencies.append(time.perf_counter() - sent)
                i += 1

        await asyncio.gather(*(worker(w) for w in range(args.in_flight)))
        after = {name: process_usage(pid).cpu_seconds for name, pid in pids.items()}
        latencies.sort()
        n = len(latencies)
        print(f"{'gRPC' if args.grpc else 'JSON'}, {args.in_flight} in flight: {n / args.seconds:.0f} puts/s, "
              f"p50 {latencies[n // 2] * 1e3:.2f} ms, p90 {latencies[n * 9 // 10] * 1e3:.2f} ms", flush=True)
        for name in h.names:
            role = " (leader)" if name == leader else ""
            print(f"  {name}{role}: {(after[name] - before[name]) / n * 1e3:.2f} ms of CPU per put", flush=True)
        for spy in spies:
            spy.wait()
        if spies:
            print(f"  py-spy profiles in {args.profile}/leader.txt and follower.txt", flush=True)
    finally:
        for spy in spies:
            spy.kill()
        await h.close()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--grpc", action="store_true", help="over the etcd v3 gRPC API, not the JSON gateway")
    parser.add_argument("--profile", metavar="DIR", help="also record the leader and a follower with py-spy")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
