"""Benchmark the kube API of a 3-master raftkube cluster through api/client.py.

    python bench/api.py [--pods 2000] [--list 10000] [--watchers 100] [--inflight 32]

Measures: creating pods with N in flight (throughput, p50/p99), creating at a steady 200/s (p50/p99),
listing 10,000 pods, and the delay
from a write's acknowledgement to its arrival at 100 open watches (spread over the masters).
Prints its figures; asserts nothing. Targets for the note: mutating p99 under 50 ms at 200
creates/s, a 10,000-pod list under 1 s, watch delivery p99 under 100 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from api.client import ApiClient  # noqa: E402
from harness import kube_masters, make_namespace  # noqa: E402


AUTH: dict = {}  # the admin token and the cluster CA, once the cluster is up


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "bench", "labels": {"b": "1"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


async def create_pods(client: ApiClient, names: list[str], inflight: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(names)

    async def worker() -> None:
        while queue:
            name = queue.pop()
            started = time.perf_counter()
            await client.create("pods", pod(name))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return len(names) / (time.perf_counter() - started), latencies


async def paced_creates(client: ApiClient, names: list[str], rate: float) -> list[float]:
    """Open loop: one create every 1/rate seconds, whatever the answers' speed."""
    latencies: list[float] = []

    async def one(name: str) -> None:
        started = time.perf_counter()
        await client.create("pods", pod(name))
        latencies.append((time.perf_counter() - started) * 1000)

    tasks = []
    start = time.perf_counter()
    for i, name in enumerate(names):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(name)))
    await asyncio.gather(*tasks)
    return latencies


async def watch_delay(servers: list[str], watchers: int, writes: int) -> list[float]:
    """Open `watchers` watches over the masters, then write; delay from each ack to each arrival."""
    clients = [ApiClient([servers[i % len(servers)]], **AUTH) for i in range(watchers)]
    acked: dict[str, float] = {}
    delays: list[float] = []
    done = asyncio.Event()
    seen = 0

    async def watch(c: ApiClient) -> None:
        nonlocal seen
        async for kind, obj in c.watch("configmaps", "bench"):
            if kind == "ADDED" and obj["metadata"]["name"].startswith("w-"):
                arrived = time.perf_counter()
                while obj["metadata"]["name"] not in acked:
                    await asyncio.sleep(0.001)  # the ack may come back after the event: wait for it
                delays.append((arrived - acked[obj["metadata"]["name"]]) * 1000)
                seen += 1
                if seen == watchers * writes:
                    done.set()

    tasks = [asyncio.create_task(watch(c)) for c in clients]
    await asyncio.sleep(1.0)  # let every watch open (bench only: tests wait on conditions)
    writer = ApiClient(servers, **AUTH)
    for i in range(writes):
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"w-{i}", "namespace": "bench"}}
        started = time.perf_counter()
        await writer.create("configmaps", cm)
        acked[f"w-{i}"] = started  # from the request's start: the ack time bounds it from below
        await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(done.wait(), 30)
    except asyncio.TimeoutError:
        print(f"  only {seen} of {watchers * writes} events arrived within 30 s", flush=True)
    for t in tasks:
        t.cancel()
    for c in clients + [writer]:
        await c.close()
    return delays


async def run(args: argparse.Namespace, servers: list[str]) -> None:
    async with ApiClient(servers, **AUTH) as client:
        await make_namespace(client, "bench")
        rate, lat = await create_pods(client, [f"p-{i:05d}" for i in range(args.pods)], args.inflight)
        print(f"create {args.pods} pods, {args.inflight} in flight: {rate:.0f}/s, p50 {pct(lat, .5):.1f} ms, "
              f"p99 {pct(lat, .99):.1f} ms", flush=True)
        lat = await paced_creates(client, [f"r-{i:05d}" for i in range(args.rate * 5)], args.rate)
        print(f"create at {args.rate}/s for 5 s: p50 {pct(lat, .5):.1f} ms, p99 {pct(lat, .99):.1f} ms", flush=True)
        missing = args.list - args.pods - args.rate * 5
        if missing > 0:
            await create_pods(client, [f"q-{i:05d}" for i in range(missing)], args.inflight)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            items, _ = await client.list("pods", "bench")
            times.append(time.perf_counter() - started)
        print(f"list {len(items)} pods: best {min(times):.2f} s, median {statistics.median(times):.2f} s", flush=True)
    delays = await watch_delay(servers, args.watchers, args.writes)
    print(f"watch delivery to {args.watchers} watches ({len(delays)} events): p50 {pct(delays, .5):.1f} ms, "
          f"p99 {pct(delays, .99):.1f} ms", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=2000)
    p.add_argument("--list", type=int, default=10000)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--writes", type=int, default=50)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--rate", type=int, default=200, help="creates per second in the paced phase")
    args = p.parse_args()
    with kube_masters("raftkube-bench-api-", AUTH) as (servers, _):
        asyncio.run(run(args, servers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
