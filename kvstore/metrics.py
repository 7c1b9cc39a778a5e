"""Prometheus metrics of one master's store: Raft, MVCC, watches.

Nothing on the write path touches prometheus_client: its metric objects take a lock on every
update, and a master is one thread (the event loop; see kvstore/replica.py). The hot path bumps
plain integers instead (`Histogram.observe` is a bisect and two additions; the watch hub counts
cancelled slow watchers in an int attribute), and the numbers become Prometheus families only when
someone scrapes, in `StoreCollector.collect`. Gauges (role, term, indexes, keys, revision, open
watches) are read from the live objects at that moment, so they cost nothing between scrapes.

Every master builds its own `CollectorRegistry`: tests start many stores in one process, and no
metric leaks from one to the next (no global default registry).

    registry = new_registry()
    StoreCollector(store, hub, replica, data_dir).register(registry)
    app.router.add_get("/metrics", handler(registry))   # what etcd serves on its client port
"""
from __future__ import annotations

import logging
import os
import time
from bisect import bisect_left
from typing import Any, Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.process_collector import ProcessCollector
from pysyncobj.config import FAIL_REASON

# etcd's proposal and fsync buckets start at 1 ms; ours reach down to 0.1 ms for a lone master.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
SNAPSHOT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
log = logging.getLogger("raftkube.replica")

REASONS = {getattr(FAIL_REASON, n): n.lower() for n in dir(FAIL_REASON) if n.isupper()}
ROLES = ("follower", "candidate", "leader")


def new_registry() -> CollectorRegistry:
    """A registry for one process (one master, one control plane), with the process's CPU and memory."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    return registry


def handler(registry: CollectorRegistry) -> Callable[[web.Request], Any]:
    """An aiohttp handler answering the registry in Prometheus' text format."""
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
    return metrics


class Histogram:
    """A lock-free histogram for one thread: cumulative buckets are computed only at scrape time."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts):
            total += n
            out.append((bound, total))
        return out


def histogram_family(name: str, doc: str, labels: Iterable[str],
                     series: Iterable[tuple[list[str], Histogram]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for values, h in series:
        family.add_metric(values, h.buckets(), h.sum)
    return family


class StoreStats:
    """What the Store counts as it goes (kvstore/store.py calls these; the collector reads them)."""

    __slots__ = ("proposal_seconds", "failed")

    def __init__(self) -> None:
        self.proposal_seconds = Histogram()  # one Raft proposal (a batch): proposed to applied locally
        self.failed: dict[str, int] = {}  # reason -> proposals (batches) that failed, or requests timed out

    def proposal_done(self, started: float, err: int) -> None:
        if err == FAIL_REASON.SUCCESS:
            self.proposal_seconds.observe(time.perf_counter() - started)
        else:
            self.fail(REASONS.get(err, str(err)))

    def fail(self, reason: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1


class RaftWatcher:
    """Runs after every Raft tick: counts leader changes and times snapshots. One attribute read or
    two per tick; pysyncobj 0.3.17 says nothing when either happens (docs/pysyncobj.md)."""

    def __init__(self, replica, snapshot_file: str) -> None:
        self.replica = replica
        self.snapshot_file = snapshot_file
        self.leader = None
        self.leader_changes = 0
        self.snapshot_seconds = Histogram(SNAPSHOT_BUCKETS)
        self.snapshot_bytes = _size(snapshot_file)
        self._serializer = replica._SyncObj__serializer
        self._snapshot_started = 0.0

    def __call__(self) -> None:
        leader = self.replica._getLeader()
        if leader is not self.leader:
            if leader is not None and leader != self.leader:  # as etcd: a new leader, not the loss of one
                self.leader_changes += 1
            if leader != self.leader:
                log.info("raft leader is now %s (term %d)", leader.id if leader is not None else "nobody",
                         self.replica.raftCurrentTerm)
            self.leader = leader
        busy = self._serializer._Serializer__pid != 0  # a forked child is writing the snapshot
        if busy and not self._snapshot_started:
            self._snapshot_started = time.perf_counter()
        elif not busy and self._snapshot_started:
            self.snapshot_seconds.observe(time.perf_counter() - self._snapshot_started)
            self._snapshot_started = 0.0
            self.snapshot_bytes = _size(self.snapshot_file)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class StoreCollector:
    """Reads the live store, hub and replica at scrape time."""

    def __init__(self, store, hub, replica, data_dir: str) -> None:
        self.store = store
        self.hub = hub
        self.replica = replica
        self.raft = RaftWatcher(replica, os.path.join(data_dir, "raft.snapshot"))
        replica.addOnTickCallback(self.raft)

    def register(self, registry: CollectorRegistry) -> "StoreCollector":
        registry.register(self)
        return self

    def collect(self):
        st = self.store.raft_status()
        role = GaugeMetricFamily("raftkube_raft_role", "1 for this master's current Raft role", labels=["role"])
        for r in ROLES:
            role.add_metric([r], 1.0 if st["state"] == r else 0.0)
        yield role
        yield GaugeMetricFamily("raftkube_raft_is_leader", "1 when this master is the Raft leader",
                                value=1.0 if st["state"] == "leader" else 0.0)
        yield GaugeMetricFamily("raftkube_raft_has_leader", "1 when this master knows a Raft leader",
                                value=1.0 if st["leader"] else 0.0)
        yield GaugeMetricFamily("raftkube_raft_has_quorum", "1 when this master, as leader, hears from a majority",
                                value=1.0 if st["has_quorum"] else 0.0)
        yield GaugeMetricFamily("raftkube_raft_term", "the current Raft term", value=st["raft_term"])
        yield GaugeMetricFamily("raftkube_raft_commit_index", "the highest log index known committed",
                                value=st["commit_idx"])
        yield GaugeMetricFamily("raftkube_raft_applied_index", "the highest log index applied to the store",
                                value=st["last_applied"])
        yield CounterMetricFamily("raftkube_raft_leader_changes", "leaders this master has seen take office",
                                  value=self.raft.leader_changes)
        yield CounterMetricFamily("raftkube_raft_pre_votes", "times this master's election timer ran out and it "
                                  "asked the others whether they would elect it (PreVote)",
                                  value=self.replica.pre_votes)
        yield CounterMetricFamily("raftkube_raft_log_conflicts", "times this master dropped entries from the end "
                                  "of its Raft log because the leader's log differed there",
                                  value=self.replica._SyncObj__raftLog.conflicts)
        stats = self.store.stats
        yield histogram_family("raftkube_raft_proposal_duration_seconds",
                               "a Raft proposal (a batch of requests) from proposing to applied on this master",
                               [], [([], stats.proposal_seconds)])
        failed = CounterMetricFamily("raftkube_raft_proposals_failed", "failed proposals by pysyncobj reason, "
                                     "and requests that missed their deadline (reason=deadline)", labels=["reason"])
        for reason, n in sorted(stats.failed.items()):
            failed.add_metric([reason], n)
        yield failed
        yield histogram_family("raftkube_raft_snapshot_duration_seconds",
                               "writing a full snapshot (in a forked child) until the log is trimmed",
                               [], [([], self.raft.snapshot_seconds)])
        yield GaugeMetricFamily("raftkube_raft_snapshot_size_bytes", "size of the last snapshot file",
                                value=self.raft.snapshot_bytes)
        machine = self.store.machine
        yield GaugeMetricFamily("raftkube_store_keys", "live keys in the store", value=machine.index.live_count)
        yield GaugeMetricFamily("raftkube_store_revision", "the store's current revision", value=machine.revision)
        yield GaugeMetricFamily("raftkube_store_compact_revision", "revisions up to this one are compacted away",
                                value=machine.compact_revision)
        yield GaugeMetricFamily("raftkube_store_watchers", "watchers open on this master (KV and kube API)",
                                value=len(self.hub.watchers))
        yield CounterMetricFamily("raftkube_store_slow_watchers_cancelled",
                                  "watchers cancelled because they could not keep up", value=self.hub.slow_cancelled)
