"""Checks of a campaign's records besides linearizability (pure functions over what the workload recorded).

- watches: each watcher's events are ordered by revision with no duplicates, and, over the revisions it covered,
  exactly the events of the reference history (a watch from the first revision after everything healed);
- durability: every acknowledged append is in the final state with its value, and nothing the store refused for
  sure is;
- leases: no lease is gone sooner than its TTL after a keepalive was sent for it (all on this machine's monotonic
  clock, which clients and masters share);
- availability: the share of time in which writes succeeded, and the longest stretch without one.
"""
from __future__ import annotations

from typing import Any, Iterable

from raftkube.linearizability import FAILED, OK, Op
from raftkube.workload import value_for

Event = tuple[int, str, str, str]  # (revision, key, type, value)


def check_watch(events: list[Event], start_revision: int, reference: list[Event]) -> list[str]:
    """Anomalies of one watcher's events against the reference history (empty: none)."""
    problems = []
    for before, after in zip(events, events[1:]):
        if (after[0], after[1]) == (before[0], before[1]):
            problems.append(f"duplicate event at revision {after[0]} ({after[1]})")
        elif (after[0], after[1]) < (before[0], before[1]):
            problems.append(f"revision {after[0]} after {before[0]}: out of order")
    if not events:
        return problems
    last = events[-1][0]
    expected = [e for e in reference if start_revision <= e[0] <= last]
    seen = set(events)
    missing = [e for e in expected if e not in seen]
    extra = sorted(seen - set(expected))
    if missing:
        problems.append(f"{len(missing)} event(s) missed, first at revision {missing[0][0]} ({missing[0][1]})")
    if extra:
        problems.append(f"{len(extra)} event(s) not in the history, first at revision {extra[0][0]} ({extra[0][1]})")
    return problems


def check_durability(appends: Iterable[Any], present: dict[str, bytes]) -> list[str]:
    """`appends` have .key, .size and .outcome; `present` maps every set key in the final state to its value."""
    problems = []
    for a in appends:
        if a.outcome == OK and a.key not in present:
            problems.append(f"acknowledged write {a.key} is lost")
        elif a.outcome == OK and present[a.key] != value_for(a.key, a.size):
            problems.append(f"acknowledged write {a.key} has another value ({len(present[a.key])} bytes, "
                            f"{a.size} written)")
        elif a.outcome == FAILED and a.key in present:
            problems.append(f"write {a.key} was reported failed but is there")
    return problems


def check_leases(logs: Iterable[Any]) -> list[str]:
    """`logs` have .lease, .ttl, .granted and .keepalives [(sent, answered, TTL or None for no answer)]."""
    problems = []
    for log in logs:
        kept = log.granted  # the lease lives at least TTL past the sending of its last refresh
        for sent, answered, ttl in log.keepalives:
            if ttl == 0 and answered < kept + log.ttl:
                problems.append(f"lease {log.lease} was gone {answered - kept:.2f}s after a keepalive "
                                f"(TTL {log.ttl}s)")
            if ttl:
                kept = sent
    return problems


def availability(writes: Iterable[Op | Any], start: float, end: float, window: float = 0.1) -> dict[str, float]:
    """The share of `window`-long slices of [start, end] in which some write completed ok, and the longest gap
    between ok writes (from the start, to the end)."""
    done = sorted(w.ret for w in writes if w.outcome == OK and start <= w.ret <= end)
    slices = max(1, int((end - start) / window))
    busy = {int((t - start) / window) for t in done}
    edges = [start, *done, end]
    longest = max(b - a for a, b in zip(edges, edges[1:]))
    return {"share": len(busy & set(range(slices))) / slices, "longest_gap": longest}
