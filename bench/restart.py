"""How long a follower killed with -9 takes to serve every key again, raftkube beside a real etcd 3.4.

    python bench/restart.py [--keys 100000] [--value-bytes 1000] [--rounds 3] [--no-etcd]

Fills each 3-member cluster with `--keys` keys of `--value-bytes` through the same JSON-gateway client (txns of
100 puts), then, `--rounds` times: kill -9 a follower, start it again with the same command line and data dir,
and poll it with a serializable count of the prefix until it counts every key. It prints that time (from the
start of the process), the leader's term before and after (an election on the way shows as a raised term), and
any error a linearizable put met meanwhile on the leader. It asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from harness import TRANSIENT, Harness, describe, running  # first: it puts the repository ahead of bench/ (api.py)
from etcd_cluster import EtcdCluster, ensure_etcd
from raftkube_cluster import RaftkubeCluster

from kvstore.client import b64, prefix_end

PREFIX = b"restart/"


async def fill(h: Harness, keys: int, size: int) -> None:
    kv = h.client(h.names[0], timeout=30)
    value = b64(b"v" * size)

    async def chunk(start: int) -> None:
        puts = [{"request_put": {"key": b64(PREFIX + b"%08d" % i), "value": value}}
                for i in range(start, min(start + 100, keys))]
        while True:  # the same puts again after an unknown outcome: idempotent
            try:
                await kv.txn([], puts)
                return
            except TRANSIENT as exc:
                print(f"[{h.cluster.label}] fill: {describe(exc)}; again", flush=True)

    for first in range(0, keys, 1600):
        await asyncio.gather(*(chunk(s) for s in range(first, min(first + 1600, keys), 100)))


async def count(h: Harness, name: str) -> int:
    res = await h.client(name, timeout=2).range(PREFIX, prefix_end(PREFIX), serializable=True, count_only=True)
    return int(res.get("count") or 0)


async def term(h: Harness, name: str) -> int:
    return int((await h.client(name, timeout=2).status())["raftTerm"])


async def round_(h: Harness, keys: int) -> tuple[float, int, int, list[str]]:
    leader = await h.leader()
    follower = next(n for n in h.names if n != leader)
    before = await term(h, leader)
    h.cluster.kill(follower)
    started = time.perf_counter()
    h.cluster.restart(follower)
    errors: list[str] = []
    probe = asyncio.create_task(_probe_writes(h, leader, errors))
    while True:
        try:
            if await count(h, follower) >= keys:
                break
        except TRANSIENT:
            pass
        await asyncio.sleep(0.01)
    took = time.perf_counter() - started
    await asyncio.sleep(1.0)  # an election set off by the restart would show in the term by now
    probe.cancel()
    return took, before, await term(h, await h.leader()), errors


async def _probe_writes(h: Harness, leader: str, errors: list[str]) -> None:
    kv = h.client(leader, timeout=5)
    while True:
        try:
            await kv.put(b"restart-probe", b"x")
        except TRANSIENT as exc:
            errors.append(describe(exc))
        await asyncio.sleep(0.05)


async def measure(cluster, keys: int, size: int, rounds: int) -> list[float]:
    h = Harness(cluster)
    try:
        await h.wait_healthy()
        filled = time.perf_counter()
        await fill(h, keys, size)
        print(f"[{cluster.label}] {keys} keys of {size} bytes in {time.perf_counter() - filled:.1f} s", flush=True)
        times = []
        for i in range(rounds):
            took, before, after, errors = await round_(h, keys)
            times.append(took)
            print(f"[{cluster.label}] round {i + 1}: a restarted follower serves every key after {took:.2f} s; "
                  f"leader term {before} -> {after}; {len(errors)} failed writes on the leader"
                  + (f" ({errors[0]})" if errors else ""), flush=True)
        return times
    finally:
        await h.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--value-bytes", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-etcd", action="store_true")
    args = p.parse_args()
    clusters = [RaftkubeCluster(3)] + ([] if args.no_etcd else [EtcdCluster(3, ensure_etcd())])
    results = {}
    for cluster in clusters:
        with running(cluster):
            results[cluster.label] = asyncio.run(measure(cluster, args.keys, args.value_bytes, args.rounds))
    for label, times in results.items():
        print(f"{label:9s} restart to serving every key: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
