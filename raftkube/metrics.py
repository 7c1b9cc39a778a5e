"""/metrics of a control-plane process (`raftkube control-plane --metrics-listen HOST:PORT`): workqueue depth,
reconcile latency and errors per controller, leader status per Lease, the scheduler's attempts by result.

The controllers and electors count on themselves (controllers/base.py `Controller`, controllers/leader_election.py
`LeaderElector`, each in a `LIVE` weak set); this collector reads the live ones when Prometheus scrapes, into the
process's own registry. A controller is rebuilt at each leadership term, so its counters restart from zero then,
which Prometheus' rate() treats as a counter reset.
"""
from __future__ import annotations

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from controllers import base, leader_election
from kvstore.metrics import handler, new_registry


class ControlPlaneCollector:
    def collect(self):
        controllers = sorted(base.LIVE, key=lambda c: c.name)
        depth = GaugeMetricFamily("raftkube_workqueue_depth", "keys waiting in a controller's workqueue",
                                  labels=["controller"])
        errors = CounterMetricFamily("raftkube_controller_reconcile_errors", "syncs that failed (and were retried)",
                                     labels=["controller"])
        latency = HistogramMetricFamily("raftkube_controller_reconcile_duration_seconds", "one sync of one key",
                                        labels=["controller"])
        attempts = CounterMetricFamily("raftkube_scheduler_schedule_attempts", "scheduling attempts by result "
                                       "(scheduled: bound; unschedulable: fits nowhere; error: binding failed)",
                                       labels=["result"])
        for c in controllers:
            depth.add_metric([c.name], len(c.queue))
            errors.add_metric([c.name], c.sync_errors)
            samples = c.sync_seconds.collect()[0].samples
            buckets = [(s.labels["le"], s.value) for s in samples if s.name.endswith("_bucket")]
            total = next(s.value for s in samples if s.name.endswith("_sum"))
            latency.add_metric([c.name], buckets, total)
            if c.name == "scheduler":
                for result, n in sorted(c.results.items()):
                    attempts.add_metric([result], n)
        yield from (depth, errors, latency, attempts)
        leader = GaugeMetricFamily("raftkube_leader_election_is_leader", "1 while this process holds the Lease",
                                   labels=["lease"])
        for e in sorted(leader_election.LIVE, key=lambda e: e.lease_name):
            leader.add_metric([f"{e.namespace}/{e.lease_name}"], 1.0 if e.is_leader else 0.0)
        yield leader


async def serve(listen: str) -> web.AppRunner:
    """Start serving /metrics on HOST:PORT (unauthenticated, like the KV port's: bind it to loopback)."""
    registry = new_registry()
    registry.register(ControlPlaneCollector())
    app = web.Application()
    app.router.add_get("/metrics", handler(registry))
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port), reuse_address=True).start()
    return runner
