"""The benchmark's workloads, each run the same way against whichever cluster a `Harness` wraps.

Closed-loop workloads: W workers each keep one request in flight for a fixed time; worker w sends
its k-th request to member (w + k) mod N, so requests are spread round-robin over every member's
endpoint (a lone worker visits leader and followers alike). Only requests that complete inside
the measuring window (after a short warm-up) count.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from harness import TRANSIENT, Harness, describe
from kvstore.client import KVClient, prefix_end

Op = Callable[[KVClient, int, int], Awaitable[object]]  # (client, worker, k-th request of the worker)

RANGE_KEY = b"bench/range"
WATCH_PREFIX = b"bench/watch/"
WATCH_WRITERS = 16
FAILOVER_ATTEMPT_TIMEOUT = 2.0   # each put of the failover writer; a new one starts every 10 ms
FAILOVER_GIVE_UP = 60.0
NO_QUORUM_CLIENT_TIMEOUT = 15.0


@dataclass
class Config:
    duration: float          # measuring window of each closed-loop workload (s)
    warmup: float            # not measured, before the window (s)
    watch_keys: int          # puts the watch workload makes
    failover_rounds: int
    value: bytes = b"v" * 100
    only: list[str] = field(default_factory=list)  # workload names to run (substrings); all if empty


@dataclass
class Report:
    """The figures of one system, by label (units in the label), and whatever went wrong."""
    label: str
    figures: dict[str, float | str] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, name: str, value: float | str, fmt: str = "{:.0f}") -> None:
        self.figures[name] = value
        self.formats[name] = fmt

    def say(self, text: str) -> None:
        print(f"[{self.label}] {text}", flush=True)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.say(f"PROBLEM: {text}")

    def errors(self, what: str, errors: Counter[str]) -> None:
        for message, count in errors.most_common(3):
            self.problem(f"{what}: {count} failed requests: {message}")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class LoopStats:
    latencies: list[float]   # seconds, of requests completed inside the window
    errors: Counter[str]
    window: float

    @property
    def ops_per_s(self) -> float:
        return len(self.latencies) / self.window

    def ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000


async def closed_loop(clients: list[KVClient], in_flight: int, op: Op, cfg: Config) -> LoopStats:
    window_start = time.perf_counter() + cfg.warmup
    window_end = window_start + cfg.duration
    stats = LoopStats([], Counter(), cfg.duration)

    async def worker(w: int) -> None:
        for k in itertools.count():
            sent = time.perf_counter()
            if sent >= window_end:
                return
            try:
                await op(clients[(w + k) % len(clients)], w, k)
            except TRANSIENT as exc:
                stats.errors[describe(exc)] += 1
                await asyncio.sleep(0.01)
                continue
            done = time.perf_counter()
            if window_start <= done < window_end:
                stats.latencies.append(done - sent)

    await asyncio.gather(*(worker(w) for w in range(in_flight)))
    return stats


def record_loop(report: Report, name: str, stats: LoopStats, *, latency: bool) -> None:
    report.add(f"{name} (ops/s)", stats.ops_per_s)
    line = f"{name}: {stats.ops_per_s:.0f} ops/s"
    if latency:
        report.add(f"{name} p50 (ms)", stats.ms(50), "{:.2f}")
        report.add(f"{name} p99 (ms)", stats.ms(99), "{:.2f}")
        line += f", p50 {stats.ms(50):.2f} ms, p99 {stats.ms(99):.2f} ms"
    report.say(line)
    report.errors(name, stats.errors)


# -- 1, 2: puts -----------------------------------------------------------------------------

async def puts(h: Harness, cfg: Config, report: Report, in_flight: int) -> None:
    async def put(client: KVClient, w: int, k: int) -> None:
        await client.put(b"bench/put/%d/%d" % (w, k % 256), cfg.value)

    stats = await closed_loop(h.clients(), in_flight, put, cfg)
    record_loop(report, f"put, {in_flight} in flight", stats, latency=True)


# -- 3: ranges ------------------------------------------------------------------------------

async def ranges(h: Harness, cfg: Config, report: Report, *, serializable: bool, in_flight: int = 64) -> None:
    await h.client(h.names[0]).put(RANGE_KEY, cfg.value)

    async def read(client: KVClient, w: int, k: int) -> None:
        await client.range(RANGE_KEY, serializable=serializable)

    stats = await closed_loop(h.clients(), in_flight, read, cfg)
    kind = "serializable" if serializable else "linearizable"
    record_loop(report, f"range {kind}, {in_flight} in flight", stats, latency=False)


# -- 4: watch -------------------------------------------------------------------------------

async def watch_delivery(h: Harness, cfg: Config, report: Report) -> None:
    """WATCH_WRITERS writers put through the leader; a watcher on a follower gets the events.

    So the delay measured is the commit reaching a follower plus the watch delivery; the other
    way round, a follower's ack would often come after the leader's event."""
    leader = await h.leader()
    follower = next((n for n in h.names if n != leader), leader)
    watcher, writer = h.client(follower), h.client(leader)
    start = int((await writer.status())["header"]["revision"]) + 1
    arrivals: dict[int, float] = {}
    created = asyncio.Event()

    async def watch() -> None:
        async for msg in watcher.watch(WATCH_PREFIX, prefix_end(WATCH_PREFIX), start_revision=start):
            now = time.perf_counter()
            if msg.get("created"):
                created.set()
            for ev in msg.get("events", []):
                arrivals[int(ev["kv"]["mod_revision"])] = now

    task = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(created.wait(), 10)
        first_sent = time.perf_counter()
        acks, errors = await _write_keys(writer, cfg)
        await _until(lambda: acks.keys() <= arrivals.keys(), timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    delays = [arrivals[rev] - acked for rev, acked in acks.items() if rev in arrivals]
    rate = len(arrivals) / (max(arrivals.values()) - first_sent) if arrivals else 0.0
    report.add("watch delivery (events/s)", rate)
    report.add("watch, put ack to event p50 (ms)", percentile(delays, 50) * 1000, "{:.2f}")
    report.add("watch, put ack to event p99 (ms)", percentile(delays, 99) * 1000, "{:.2f}")
    report.say(f"watch: {len(arrivals)} events at {rate:.0f} events/s; put ack to event "
               f"p50 {percentile(delays, 50) * 1000:.2f} ms, p99 {percentile(delays, 99) * 1000:.2f} ms")
    if missing := len(acks.keys() - arrivals.keys()):
        report.problem(f"watch: {missing} acknowledged puts never reached the watcher")
    report.errors("watch writer", errors)


async def _write_keys(client: KVClient, cfg: Config) -> tuple[dict[int, float], Counter[str]]:
    """Put cfg.watch_keys keys under WATCH_PREFIX; the ack time of each by revision."""
    acks: dict[int, float] = {}
    errors: Counter[str] = Counter()
    numbers = iter(range(cfg.watch_keys))

    async def writer() -> None:
        for i in numbers:
            try:
                res = await client.put(WATCH_PREFIX + b"%07d" % i, cfg.value)
            except TRANSIENT as exc:
                errors[describe(exc)] += 1
                continue
            acks[int(res["header"]["revision"])] = time.perf_counter()

    await asyncio.gather(*(writer() for _ in range(WATCH_WRITERS)))
    return acks, errors


async def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# -- 5: compare-and-swap --------------------------------------------------------------------

async def cas(h: Harness, cfg: Config, report: Report, in_flight: int = 16) -> None:
    """Each worker owns one key: read its mod_revision, then put only if it is unchanged."""
    for w in range(in_flight):
        await h.client(h.names[0]).put(b"bench/cas/%d" % w, cfg.value)
    lost: Counter[str] = Counter()

    async def read_then_swap(client: KVClient, w: int, k: int) -> None:
        key = b"bench/cas/%d" % w
        res = await client.range(key)
        if not await client.cas(key, int(res["kvs"][0]["mod_revision"]), cfg.value):
            lost["compare failed on a key no one else writes"] += 1

    stats = await closed_loop(h.clients(), in_flight, read_then_swap, cfg)
    record_loop(report, f"cas txn, {in_flight} in flight", stats, latency=False)
    report.errors("cas", lost)


# -- 6: failover ----------------------------------------------------------------------------

async def failover(h: Harness, cfg: Config, report: Report) -> None:
    if len(h.names) < 3:
        report.say("failover: skipped (needs 3 or more members)")
        return
    outages, rejoins = [], []
    for round_ in range(1, cfg.failover_rounds + 1):
        leader = await h.leader()
        survivors = [n for n in h.names if n != leader]
        killed_at = time.perf_counter()
        h.cluster.kill(leader)
        try:
            outages.append(await _first_put(h, survivors, killed_at, cfg.value))
        finally:
            h.cluster.restart(leader)
        rejoins.append(await h.wait_healthy())
        report.say(f"failover round {round_}: killed leader {leader}; next put after {outages[-1]:.2f} s; "
                   f"healthy {rejoins[-1]:.2f} s after its restart")
    for name, value in (("min", min(outages)), ("median", statistics.median(outages)), ("max", max(outages))):
        report.add(f"failover, kill -9 leader to next put, {name} (s)", value, "{:.2f}")
    report.add("failover, restart to healthy, median (s)", statistics.median(rejoins), "{:.2f}")


async def _first_put(h: Harness, survivors: list[str], since: float, value: bytes) -> float:
    """Start a put every 10 ms, round-robin over the survivors, until one succeeds; seconds from `since`."""
    clients = h.clients(survivors, timeout=FAILOVER_ATTEMPT_TIMEOUT)
    succeeded: list[float] = []
    done = asyncio.Event()

    async def attempt(client: KVClient) -> None:
        try:
            await client.put(b"bench/failover", value)
        except TRANSIENT:
            return
        succeeded.append(time.perf_counter())
        done.set()

    attempts = []
    for i in itertools.count():
        if done.is_set() or time.perf_counter() - since > FAILOVER_GIVE_UP:
            break
        attempts.append(asyncio.create_task(attempt(clients[i % len(clients)])))
        try:
            await asyncio.wait_for(done.wait(), 0.01)
        except asyncio.TimeoutError:
            pass
    for task in attempts:
        task.cancel()
    await asyncio.gather(*attempts, return_exceptions=True)
    if not succeeded:
        raise RuntimeError(f"no put succeeded within {FAILOVER_GIVE_UP:.0f}s of killing the leader")
    return min(succeeded) - since


# -- 7: no quorum ---------------------------------------------------------------------------

async def no_quorum(h: Harness, cfg: Config, report: Report) -> None:
    """Kill a majority (followers), then one put on the surviving leader with a 15 s client timeout."""
    if len(h.names) < 3:
        report.say("no quorum: skipped (needs 3 or more members)")
        return
    leader = await h.leader()
    victims = [n for n in h.names if n != leader][:len(h.names) // 2 + 1]
    for name in victims:
        h.cluster.kill(name)
    try:
        client = h.client(leader, timeout=NO_QUORUM_CLIENT_TIMEOUT)
        started = time.perf_counter()
        try:
            await client.put(b"bench/no-quorum", cfg.value)
            outcome = "the put SUCCEEDED without a quorum"
        except TRANSIENT as exc:
            outcome = describe(exc)
        took = time.perf_counter() - started
    finally:
        for name in victims:
            h.cluster.restart(name)
    report.add("put without quorum fails after (s)", took, "{:.2f}")
    report.add("put without quorum, error", outcome)
    report.say(f"no quorum: killed {', '.join(victims)}; the put on {leader} (was leader) ended after "
               f"{took:.2f} s with: {outcome}")
    report.say(f"no quorum: healthy again {await h.wait_healthy():.2f} s after restarting them")
