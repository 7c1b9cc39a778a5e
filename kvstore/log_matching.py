"""Raft's log matching on a follower: keep what a leader resends, drop only from a real conflict.

Raft (§5.3, Figure 2, AppendEntries rule 3): "If an existing entry conflicts with a new one (same
index but different terms), delete the existing entry and all that follow it." pysyncobj 0.3.17
instead deletes the follower's whole tail after `prevLogIdx` on every append_entries, heartbeats
included, then appends what the message carries. A leader resends entries whenever it moves a
follower's next index back (a late acknowledgement, a reconnection), and one message carries at
most 64 KiB: the follower then drops entries it has already acknowledged, and if the leader dies
before it resends them all, an entry committed with this follower's vote can be lost.

`plan_append` looks at a message before pysyncobj does and rewrites it so that pysyncobj's own
handler only ever deletes from the first conflicting entry:

    our log:   1  2  3  4  5  6  7        (all term 1)
    message:   prev=3, entries 4 5        (a resend; they match ours)
    rewritten: prev=5, entries -          -> pysyncobj would now drop 6 and 7, so instead the
               message goes on as a heartbeat and we acknowledge 5 ourselves (`ack`).

    our log:   1  2  3  4  5              (a resend that ends where our log ends)
    message:   prev=3, entries 4 5
    rewritten: a heartbeat, ack 5         -> as sent, pysyncobj deletes 4 and 5 and writes them again

    our log:   1  2  3  4  5  6  7        (6 and 7 of term 1, never committed)
    message:   prev=3, entries 4 5 6' 7'  (6' and 7' of term 2)
    rewritten: prev=5, entries 6' 7'      -> pysyncobj deletes from 6, appends 6' 7'.

The commit index a message may move us to is capped at the last entry it vouches for
(`prevLogIdx` + its entries): entries we keep past that point are not known to match the leader's.
A message with no log position, a piece of a snapshot, vouches for none (`unvouched`).

Pure: no pysyncobj, no I/O; kvstore/replica.py applies the plan.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj keeps them
EntryAt = Callable[[int], "Entry | None"]  # our log's entry at an index, or None


@dataclass
class AppendPlan:
    message: dict  # what pysyncobj's handler is given instead of the original
    ack: int | None = None  # when set, pysyncobj will not answer: acknowledge up to this index ourselves


def held_prefix(entry_at: EntryAt, entries: list[Entry]) -> int:
    """How many leading `entries` our log already holds, at the same index with the same term."""
    n = 0
    for _, idx, term in entries:
        have = entry_at(idx)
        if have is None or have[2] != term:
            break
        n += 1
    return n


def plan_append(message: dict, entry_at: EntryAt, last_index: int) -> AppendPlan:
    """The plan for one regular append_entries message (one with `prevLogIdx` and its entries)."""
    entries: list[Entry] = list(message.get("entries") or [])
    prev_idx, prev_term = message["prevLogIdx"], message["prevLogTerm"]
    vouched = prev_idx + len(entries)  # the last index this message says matches the leader's log
    out = dict(message, commit_index=min(message["commit_index"], vouched))
    held = held_prefix(entry_at, entries)
    if held < len(entries):  # something new or conflicting follows what we hold: pysyncobj cuts there
        if held:
            _, prev_idx, prev_term = entries[held - 1]
            out.update(prevLogIdx=prev_idx, prevLogTerm=prev_term, entries=entries[held:])
        return AppendPlan(out)
    prev = entry_at(prev_idx)
    if (last_index <= vouched and not entries) or prev is None or prev[2] != prev_term:
        return AppendPlan(out)  # a heartbeat at our end, or a mismatch pysyncobj reports
    del out["prevLogIdx"], out["prevLogTerm"]  # a heartbeat to pysyncobj: term, leader, commit only
    out.pop("entries", None)
    return AppendPlan(out, ack=vouched)


def unvouched(message: dict, commit_index: int) -> dict:
    """An append_entries with no log position (no `prevLogIdx`): a piece of the leader's snapshot, which
    pysyncobj sends in pieces of 64 KiB. It may move our commit index nowhere. pysyncobj moved it to the
    leader's, capped only by the end of our own log, and the next tick applied our log up to there before the
    last piece replaced our state. A piece says nothing about our entries, and a follower sent a snapshot is one
    whose log may end in entries nobody committed: a leader cut off from the others, still taking writes, then
    caught up by the new leader's snapshot, applied those writes (a campaign's watch saw one, at a revision the
    cluster gave another write) and answered their clients that they were done. The snapshot, once loaded, is
    committed state (`Replica._SyncObj__loadDumpFile` moves the commit index to it)."""
    return dict(message, commit_index=min(message["commit_index"], commit_index))
