"""The kubelets' /metrics (served by the node process's log server, with the node token): pods by phase,
container restarts, probe failures, per node. Read from the pod workers when Prometheus scrapes."""
from __future__ import annotations

from typing import Any, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


class KubeletCollector:
    def __init__(self, kubelets: Iterable[Any]) -> None:
        self.kubelets = list(kubelets)

    def collect(self):
        pods = GaugeMetricFamily("raftkube_kubelet_pods", "pods this node runs, by the phase it last reported",
                                 labels=["node", "phase"])
        restarts = GaugeMetricFamily("raftkube_kubelet_container_restarts", "restarts of the containers of the "
                                     "pods on this node now (the sum of their restartCount)", labels=["node"])
        probes = CounterMetricFamily("raftkube_kubelet_probe_failures", "failed probes, by kind",
                                     labels=["node", "probe"])
        for k in self.kubelets:
            counts = dict.fromkeys(PHASES, 0)
            total = 0
            for worker in k.workers.values():
                phase = (worker.last_written or worker.pod.get("status") or {}).get("phase") or "Pending"
                counts[phase if phase in counts else "Unknown"] += 1
                total += sum(r.restart_count for r in worker.main_records + worker.init_records)
            for phase, n in counts.items():
                pods.add_metric([k.name, phase], n)
            restarts.add_metric([k.name], total)
            for kind, n in sorted(k.ctx.probe_failures.items()):
                probes.add_metric([k.name, kind], n)
        yield from (pods, restarts, probes)


def exposition(kubelets: Iterable[Any]) -> bytes:
    registry = CollectorRegistry()
    registry.register(KubeletCollector(kubelets))
    return generate_latest(registry)
