"""What the checkers found in a campaign's records, told so a student can see it: for each broken guarantee, the
smallest history that shows it, the faults that happened meanwhile, and the guarantee in one sentence.

- linearizability: per bad key, `linearizability.minimal_failing`'s sub-history (a timeline, raftkube/timeline.py);
- durability: an acknowledged write the final state lacks, drawn as a register history too: the write answered ok,
  then the checker's read, after every fault was healed, that does not see it; and any acknowledged write that
  the reference history does not hold at the revision it was answered with;
- watches: where a watcher's events leave the reference history (the revision it never got, and its neighbours);
- leases: the lease's keepalives and the answer that found it gone, interleaved with the faults.
Pure functions over the records (raftkube/campaign.py makes them); rendering as text here, as HTML in
raftkube/timeline_html.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raftkube import timeline
from raftkube.history_checks import (Event, acknowledged_writes, check_revisions, early_expiries, lost_writes,
                                     watch_diff)
from raftkube.linearizability import FAILED, OK, UNKNOWN, Op, minimal_failing
from raftkube.workload import Workload

SHOWN = 3  # findings of one kind shown in full
LEASE_STEPS = 12  # lines of a lease's story

GUARANTEES = {
    "linearizability": "linearizability: every operation takes effect at one instant between its call and its "
                       "return, so a read sees the last write that finished before it began",
    "durability": "durability: a write answered ok stays, whatever masters crash and restart afterwards",
    "watch": "watches: a watch delivers every change in its range, once, in revision order",
    "lease": "leases: a lease lives at least its TTL after each keepalive",
}


@dataclass
class Records:
    """What a campaign recorded, and read back once every fault was healed."""
    workload: Workload
    reference: list[Event]  # every event from the campaign's first revision, as a watch from there saw them
    final_values: dict[str, bytes]  # every set key in the final state
    final_read: tuple[float, float]  # when that final read was sent and answered (monotonic)
    faults: list[tuple[float, str]]  # the nemesis's timeline, on the monotonic clock
    bad_keys: list[str]  # the keys the linearizability checker refuted


@dataclass
class Finding:
    kind: str  # a key of GUARANTEES
    summary: str
    ops: list[Op] = field(default_factory=list)  # a register history that shows it (may be empty)
    details: list[str] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)  # what the nemesis did meanwhile (monotonic)

    @property
    def guarantee(self) -> str:
        return GUARANTEES[self.kind]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "guarantee": self.guarantee, "summary": self.summary, "details": self.details,
                "timeline": timeline.render(self.ops) if self.ops else ""}


def find(records: Records) -> list[Finding]:
    return [*_linearizability(records), *_durability(records), *_watches(records), *_leases(records)]


def _around(faults: list[tuple[float, str]], start: float, end: float) -> list[tuple[float, str]]:
    """The faults between `start` and `end`, and the last one before `start` (it may still be in force)."""
    before = [(t, text) for t, text in faults if t < start][-1:]
    return before + [(t, text) for t, text in faults if start <= t <= end]


def _span(ops: list[Op]) -> tuple[float, float]:
    finite = [op.ret for op in ops if op.outcome != UNKNOWN]
    return min(op.call for op in ops), max(finite + [op.call for op in ops])


def _linearizability(records: Records) -> list[Finding]:
    found = []
    for key in records.bad_keys[:SHOWN]:
        ops = [op for op in records.workload.history if op.key == key]
        minimal = minimal_failing(ops, budget=10.0)
        checked = sum(1 for op in ops if op.outcome != FAILED)
        found.append(Finding("linearizability", f"key {key}: no order of these {len(minimal)} operations (of the "
                                                f"{checked} on {key}) fits one register", minimal,
                             faults=_around(records.faults, *_span(minimal))))
    return found


def register_history(records: Records) -> list[Op]:
    """Everything the clients did as one register history: the register clients' operations, and each append as a
    write of its own key (its value standing for its size), read once more by the checker at the end."""
    ops = list(records.workload.history)
    for append in records.workload.appends:
        ops += _as_register(records, append)
    return ops


def _as_register(records: Records, append: Any) -> list[Op]:
    present = records.final_values.get(append.key)
    return [Op(append.key, "write", append.call, append.ret, append.outcome, append.size, client=append.client,
               via=append.via),
            Op(append.key, "read", *records.final_read, OK, None if present is None else len(present),
               client=timeline.CHECKER)]


def _durability(records: Records) -> list[Finding]:
    wrong = lost_writes(records.workload.appends, records.final_values)
    found = []
    for append, present in wrong[:1]:  # alike, and each drawn with every fault since: one is enough
        what = "reported failed, yet the final state has it" if append.outcome == FAILED else (
            "answered ok, then missing from the final state" if present is None else
            f"answered ok, then {len(present)} bytes in the final state where {append.size} were written")
        found.append(Finding("durability", f"{append.key}: {what} ({len(wrong)} such write(s) in all; a value is "
                                           "drawn as its size in bytes)", _as_register(records, append),
                             faults=_around(records.faults, append.call, records.final_read[0])))
    misplaced = check_revisions(acknowledged_writes(records.workload.appends, records.workload.history),
                                records.reference)
    if misplaced:
        found.append(Finding("durability", f"{len(misplaced)} acknowledged write(s) not in the history at the "
                                           "revision they were answered with", details=misplaced[:SHOWN]))
    return found


def _event(e: Event) -> str:
    return f"revision {e[0]} {e[2]} {e[1]}"


def _watches(records: Records) -> list[Finding]:
    found = []
    for number, log in enumerate(records.workload.watch_logs):
        diff = watch_diff(log.events, log.start_revision, records.reference)
        if not (diff.missing or diff.extra or diff.duplicates or diff.disordered):
            continue
        details = [f"duplicate: {_event(e)}" for e in diff.duplicates[:SHOWN]]
        details += [f"out of order: {_event(after)} after {_event(before)}" for before, after in diff.disordered[:SHOWN]]
        details += [f"never delivered: {_event(e)}; the watch went {_neighbours(log.events, e[0])}"
                    for e in diff.missing[:SHOWN]]
        details += [f"not in the history: {_event(e)}" for e in diff.extra[:SHOWN]]
        found.append(Finding("watch", f"watcher {number} (from revision {log.start_revision}, {len(log.events)} "
                                      f"events): {len(diff.missing)} missed, {len(diff.extra)} invented, "
                                      f"{len(diff.duplicates)} repeated, {len(diff.disordered)} out of order",
                             details=details))
    return found[:SHOWN]


def _neighbours(events: list[Event], revision: int) -> str:
    before = [e for e in events if e[0] < revision][-1:]
    after = [e for e in events if e[0] > revision][:1]
    return " -> ".join([_event(e) for e in before] + ["(gap)"] + [_event(e) for e in after])


def _leases(records: Records) -> list[Finding]:
    found = []
    for log, kept, gone in early_expiries(records.workload.lease_logs)[:SHOWN]:
        steps = [(log.granted, f"granted lease {log.lease}, TTL {log.ttl}s")]
        steps += [(sent, f"keepalive sent; answer after {answered - sent:.2f}s: "
                         + ("no answer" if ttl is None else "gone" if ttl == 0 else f"TTL {ttl}s"))
                  for sent, answered, ttl in log.keepalives if sent <= gone]
        steps += [(t, f"nemesis: {text}") for t, text in _around(records.faults, log.granted, gone)]
        origin = log.granted
        details = [f"+{t - origin:7.2f}s  {text}" for t, text in sorted(steps)]
        if len(details) > LEASE_STEPS:  # the grant, then the last steps before it was found gone
            details = [details[0], "   ...", *details[-LEASE_STEPS + 1:]]
        found.append(Finding("lease", f"lease {log.lease} was found gone {gone - kept:.2f}s after a keepalive was sent "
                                      f"for it, though its TTL is {log.ttl}s", details=details))
    return found


def render(findings: list[Finding]) -> str:
    """Every finding as text: what broke, the history that shows it, what the nemesis did meanwhile."""
    if not findings:
        return "the checkers found nothing wrong"
    lines = []
    for n, f in enumerate(findings, 1):
        lines += [f"ANOMALY {n} of {len(findings)}: {f.guarantee}", f"  {f.summary}"]
        if f.ops:
            lines += ["  the smallest history that shows it:",
                      *(f"    {line}" if line else "" for line in timeline.render(f.ops).splitlines())]
            origin = min(op.call for op in f.ops)
            if f.faults:
                lines += ["  what the nemesis did (the last fault before the first call, then those meanwhile):"]
                lines += [f"    {t - origin:+8.3f}s  {text}" for t, text in f.faults]
        lines += [f"    {line}" for line in f.details]
    return "\n".join(lines)
