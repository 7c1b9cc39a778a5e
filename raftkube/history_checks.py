"""Checks of a campaign's records besides linearizability (pure functions over what the workload recorded).

- watches: each watcher's events are ordered by revision with no duplicates, and, over the revisions it covered,
  exactly the events of the reference history (a watch from the first revision after everything healed);
- durability: every acknowledged append is in the final state with its value, and nothing the store refused for
  sure is; every acknowledged write is in the reference history at the revision it was answered with;
- leases: no lease is gone sooner than its TTL after a keepalive was sent for it (all on this machine's monotonic
  clock, which clients and masters share);
- availability: the share of time in which writes succeeded, and the longest stretch without one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from kvstore.client import b64
from raftkube.linearizability import FAILED, OK, Op
from raftkube.workload import value_for

Event = tuple[int, str, str, str]  # (revision, key, type, value)


@dataclass
class WatchDiff:
    """How one watcher's events differ from the reference history over the revisions it covered."""
    duplicates: list[Event] = field(default_factory=list)
    disordered: list[tuple[Event, Event]] = field(default_factory=list)  # (before, after)
    missing: list[Event] = field(default_factory=list)
    extra: list[Event] = field(default_factory=list)


def watch_diff(events: list[Event], start_revision: int, reference: list[Event]) -> WatchDiff:
    diff = WatchDiff()
    for before, after in zip(events, events[1:]):
        if (after[0], after[1]) == (before[0], before[1]):
            diff.duplicates.append(after)
        elif (after[0], after[1]) < (before[0], before[1]):
            diff.disordered.append((before, after))
    if not events:
        return diff
    last = events[-1][0]
    expected = [e for e in reference if start_revision <= e[0] <= last]
    seen = set(events)
    diff.missing = [e for e in expected if e not in seen]
    diff.extra = sorted(seen - set(expected))
    return diff


def check_watch(events: list[Event], start_revision: int, reference: list[Event]) -> list[str]:
    """Anomalies of one watcher's events against the reference history (empty: none)."""
    diff = watch_diff(events, start_revision, reference)
    problems = [f"duplicate event at revision {e[0]} ({e[1]})" for e in diff.duplicates]
    problems += [f"revision {after[0]} after {before[0]}: out of order" for before, after in diff.disordered]
    if diff.missing:
        first = diff.missing[0]
        problems.append(f"{len(diff.missing)} event(s) missed, first at revision {first[0]} ({first[1]})")
    if diff.extra:
        first = diff.extra[0]
        problems.append(f"{len(diff.extra)} event(s) not in the history, first at revision {first[0]} ({first[1]})")
    return problems


def lost_writes(appends: Iterable[Any], present: dict[str, bytes]) -> list[tuple[Any, bytes | None]]:
    """The appends whose outcome the final state contradicts, each with what the final state holds for its key:
    acknowledged but absent or different, or reported failed but there. `appends` have .key, .size and .outcome;
    `present` maps every set key in the final state to its value."""
    wrong = []
    for a in appends:
        found = present.get(a.key)
        if (a.outcome == OK and found != value_for(a.key, a.size)) or (a.outcome == FAILED and found is not None):
            wrong.append((a, found))
    return wrong


def check_durability(appends: Iterable[Any], present: dict[str, bytes]) -> list[str]:
    problems = []
    for a, found in lost_writes(appends, present):
        if a.outcome == FAILED:
            problems.append(f"write {a.key} was reported failed but is there")
        elif found is None:
            problems.append(f"acknowledged write {a.key} is lost")
        else:
            problems.append(f"acknowledged write {a.key} has another value ({len(found)} bytes, {a.size} written)")
    return problems


def acknowledged_writes(appends: Iterable[Any], history: Iterable[Op]) -> list[tuple[int, str, bytes]]:
    """(revision, key, value) of every write answered ok: appends, register writes, and cas whose compare held."""
    writes = [(a.revision, a.key, value_for(a.key, a.size)) for a in appends if a.outcome == OK and a.revision]
    return writes + [(op.revision, op.key, str(op.value).encode()) for op in history
                     if op.kind != "read" and op.outcome == OK and op.revision]


def check_revisions(acknowledged: Iterable[tuple[int, str, bytes]], reference: list[Event]) -> list[str]:
    """Each acknowledged write, (revision, key, value), against the reference history's event at that revision.
    A write answered ok and then lost can hide from the other checks: a later write to its key leaves the
    register's history linearizable and the final state right. Its revision cannot hide: a master that applied
    a write nobody committed gave it a revision the cluster gave another write."""
    at: dict[int, list[Event]] = {}
    for e in reference:
        at.setdefault(e[0], []).append(e)
    problems = []
    for revision, key, value in acknowledged:
        there = at.get(revision, [])
        if not any(e[1] == key and e[2] == "PUT" and e[3] == b64(value) for e in there):
            held = ", ".join(f"{e[2]} {e[1]}" for e in there) or "nothing"
            problems.append(f"acknowledged write {key} at revision {revision} is not in the history "
                            f"(revision {revision} holds {held})")
    return problems


def early_expiries(logs: Iterable[Any]) -> list[tuple[Any, float, float]]:
    """(lease log, when the last keepalive before it went was sent, when it was found gone) for every lease gone
    sooner than its TTL after a keepalive. `logs` have .lease, .ttl, .granted and .keepalives [(sent, answered,
    TTL or None for no answer)]."""
    early = []
    for log in logs:
        kept = log.granted  # the lease lives at least TTL past the sending of its last refresh
        for sent, answered, ttl in log.keepalives:
            if ttl == 0 and answered < kept + log.ttl:
                early.append((log, kept, answered))
            if ttl:
                kept = sent
    return early


def check_leases(logs: Iterable[Any]) -> list[str]:
    return [f"lease {log.lease} was gone {answered - kept:.2f}s after a keepalive (TTL {log.ttl}s)"
            for log, kept, answered in early_expiries(logs)]


def availability(writes: Iterable[Op | Any], start: float, end: float, window: float = 0.1) -> dict[str, float]:
    """The share of `window`-long slices of [start, end] in which some write completed ok, and the longest gap
    between ok writes (from the start, to the end)."""
    done = sorted(w.ret for w in writes if w.outcome == OK and start <= w.ret <= end)
    slices = max(1, int((end - start) / window))
    busy = {int((t - start) / window) for t in done}
    edges = [start, *done, end]
    longest = max(b - a for a, b in zip(edges, edges[1:]))
    return {"share": len(busy & set(range(slices))) / slices, "longest_gap": longest}
