"""What each container uses, for metrics.k8s.io (`kubectl top`): CPU as a rate over a window, memory now.

    every `interval` seconds (StatsCollector.run):
      proc_table()        one pass over /proc: per session, the CPU seconds its processes used so far
                          (utime + stime) and their resident memory (RSS)
      handle.usage(table) each container's share: the process runtime's container is the session its log shim
                          leads (node/log_shim.py), less the shim itself; a fake container reports 1m of CPU and
                          4 MiB of memory
      keep the last two samples per container; the CPU rate is the difference of their cumulative CPU time over
      the time between them (cAdvisor's way), in nanocores
    GET /stats/summary?node=NAME  the node's pods and containers in the kubelet's Summary shape, plus the window

A node's own usage is its pods' plus its share of the node process (a process may run several fake nodes).
The pure parts (parse_stat, nanocores, summary) are unit-tested; the rest reads /proc.
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any, Iterable

Obj = dict[str, Any]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
INTERVAL = 5.0


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float  # cumulative
    memory_bytes: int


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    usage: Usage


@dataclass
class ProcTable:
    """One pass over /proc at time `at`: session id -> pid -> that process's usage."""
    at: float
    sessions: dict[int, dict[int, Usage]]

    def session(self, sid: int, *, without: Iterable[int] = ()) -> Usage | None:
        """The summed usage of session `sid`'s processes but `without`; None if no such session runs."""
        members = self.sessions.get(sid)
        if members is None:
            return None
        picked = [u for pid, u in members.items() if pid not in without]
        return Usage(sum(u.cpu_seconds for u in picked), sum(u.memory_bytes for u in picked))


def parse_stat(text: str) -> tuple[int, Usage]:
    """(session id, usage) from the text of /proc/PID/stat; the command name (field 2) may hold spaces and
    parentheses, so fields are counted after its last ')'."""
    fields = text.rsplit(")", 1)[1].split()
    session, utime, stime, rss = int(fields[3]), int(fields[11]), int(fields[12]), int(fields[21])
    return session, Usage((utime + stime) / TICKS, rss * PAGE)


def _read_stat(pid: int | str) -> tuple[int, Usage] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read())
    except (OSError, IndexError, ValueError):
        return None  # gone meanwhile


def process_usage(pid: int | str) -> Usage:
    found = _read_stat(pid)
    return found[1] if found else Usage(0.0, 0)


def proc_table() -> ProcTable:
    at = time.time()
    sessions: dict[int, dict[int, Usage]] = {}
    for entry in os.listdir("/proc"):
        found = _read_stat(entry) if entry.isdigit() else None
        if found is not None:
            sessions.setdefault(found[0], {})[int(entry)] = found[1]
    return ProcTable(at, sessions)


def nanocores(before: Sample, after: Sample) -> int:
    """The CPU rate between two samples in billionths of a core (never negative: a restarted process starts
    its count again)."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return 0
    return max(0, round((after.usage.cpu_seconds - before.usage.cpu_seconds) / elapsed * 1e9))


def rfc3339(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _stats(before: Sample, after: Sample) -> Obj:
    return {"cpu": {"time": rfc3339(after.at), "usageNanoCores": nanocores(before, after),
                    "usageCoreNanoSeconds": round(after.usage.cpu_seconds * 1e9)},
            "memory": {"time": rfc3339(after.at), "workingSetBytes": after.usage.memory_bytes,
                       "rssBytes": after.usage.memory_bytes}}


def summary(node: str, pods: list[tuple[Obj, dict[str, tuple[Sample, Sample]]]],
            agent: tuple[Sample, Sample] | None) -> Obj:
    """The kubelet's Summary for one node: `pods` as (pod metadata, container name -> (older, newer sample)),
    `agent` the node process's share; `window` (seconds, our addition) is the longest span a rate covers."""
    out_pods, cpu, memory, window = [], 0, 0, 0.0
    for meta, containers in pods:
        if not containers:
            continue
        entries = [{"name": name, **_stats(*pair)} for name, pair in sorted(containers.items())]
        pod_cpu = sum(e["cpu"]["usageNanoCores"] for e in entries)
        pod_memory = sum(e["memory"]["workingSetBytes"] for e in entries)
        cpu, memory = cpu + pod_cpu, memory + pod_memory
        window = max([window] + [after.at - before.at for before, after in containers.values()])
        out_pods.append({"podRef": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                         "cpu": {"usageNanoCores": pod_cpu}, "memory": {"workingSetBytes": pod_memory},
                         "containers": entries})
    now = time.time()
    if agent is not None:
        own = _stats(*agent)
        cpu, memory = cpu + own["cpu"]["usageNanoCores"], memory + own["memory"]["workingSetBytes"]
        window = max(window, agent[1].at - agent[0].at)
    return {"node": {"nodeName": node, "cpu": {"time": rfc3339(now), "usageNanoCores": cpu},
                     "memory": {"time": rfc3339(now), "workingSetBytes": memory}},
            "pods": out_pods, "window": round(window, 3)}


class StatsCollector:
    """Samples every container of the given kubelets every `interval` seconds; answers their Summaries."""

    def __init__(self, kubelets: list[Any], interval: float = INTERVAL) -> None:
        self.kubelets = kubelets
        self.interval = interval
        self._samples: dict[tuple[str, str], tuple[Sample | None, Sample]] = {}  # (pod uid, container) -> last two
        self._agent: tuple[Sample | None, Sample] | None = None

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        table = proc_table() if any(k.runtime.streaming for k in self.kubelets) else ProcTable(time.time(), {})
        now = table.at
        seen = {}
        for kubelet in self.kubelets:
            for worker in kubelet.workers.values():
                for runner in worker.runners:
                    usage = runner.handle.usage(table) if runner.handle is not None else None
                    if usage is not None:
                        key = (worker.uid, runner.name)
                        previous = self._samples.get(key)
                        seen[key] = (previous[1] if previous else None, Sample(now, usage))
        self._samples = seen
        own = process_usage("self")
        share = Usage(own.cpu_seconds / len(self.kubelets), own.memory_bytes // len(self.kubelets))
        self._agent = (self._agent[1] if self._agent else None, Sample(now, share))

    def summary(self, kubelet: Any) -> Obj:
        pods = []
        for worker in kubelet.workers.values():
            containers = {}
            for runner in worker.runners:
                older, newer = self._samples.get((worker.uid, runner.name), (None, None))
                if older is not None and newer is not None:
                    containers[runner.name] = (older, newer)
            pods.append((worker.pod["metadata"], containers))
        agent = self._agent if self._agent and self._agent[0] is not None else None
        return summary(kubelet.name, pods, agent)  # type: ignore[arg-type]
