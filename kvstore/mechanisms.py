"""Which of the store's safety mechanisms run: all of them, unless a lab switched one off.

The labs (`raftkube lab run NAME`, docs/labs.md) each start masters with one mechanism off, run the clients and
faults that expose it, and show what the checkers find. The switch is this value, built once from `raftkube master
--lab NAME` (`without(NAME)`) and handed to the parts that implement each mechanism; nothing else builds one
with a field off, and nothing changes it while the master runs. So a master started without --lab runs every
mechanism, and no request can turn one off. Each field names the code that reads it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Mechanisms:
    # kvstore/store.py Store.range: a linearizable read waits for ReadIndex (Store.read_index, kvstore/read_index.py).
    read_index: bool = True
    # kvstore/store.py Store._propose: a write is answered once a majority has it and this master applied it.
    ack_after_commit: bool = True
    # kvstore/disk_sync.py DiskSync: nothing counts as written before fdatasync says so.
    fsync: bool = True
    # kvstore/replica.py Replica (leaderFallbackTimeout): a leader that hears from no majority steps down; and
    # Store.range: a leader's linearizable reads wait for a majority to confirm it still leads (ReadIndex).
    leader_confirms: bool = True
    # kvstore/watch.py WatchHub.publish: every event reaches every watcher it matches.
    watch_every_event: bool = True
    # kvstore/lessor.py Lessor: deadlines on the monotonic clock, and a full TTL for every lease on promotion.
    monotonic_leases: bool = True
    # kvstore/member_identity.py MemberIdentity.check: a wiped data dir cannot speak as the member it was.
    member_identity: bool = True


ALL = Mechanisms()

# Lab name -> the one field it turns off.
LABS = {
    "stale-reads": "read_index",
    "early-ack": "ack_after_commit",
    "skip-fsync": "fsync",
    "deposed-leader": "leader_confirms",
    "drop-watch-event": "watch_every_event",
    "follower-clock": "monotonic_leases",
    "wiped-member": "member_identity",
}


def without(lab: str | None) -> Mechanisms:
    """Every mechanism, but the one lab `lab` switches off (None: every mechanism)."""
    if lab is None:
        return ALL
    if lab not in LABS:
        raise ValueError(f"no lab {lab!r}; the labs are {', '.join(LABS)}")
    return replace(ALL, **{LABS[lab]: False})
