"""The labs: each switches one of the store's safety mechanisms off (`raftkube master --lab NAME`,
kvstore/mechanisms.py) and names the campaign (raftkube/campaign.py: clients, faults) that exposes it: which
guarantee should break, which checker sees it, and the file and function whose mechanism is off. `raftkube lab run
NAME` (raftkube/lab.py) runs one; docs/labs.md has an exercise for each.
"""
from __future__ import annotations

from dataclasses import dataclass

from raftkube.campaign import Plan

# Clients for the register and durability labs: no watchers, leases or big values (less for 2 cores to do).
REGISTERS = dict(watchers=0, leases=0, big_values=0.0, check_budget=20.0)


@dataclass(frozen=True)
class Lab:
    name: str  # as `--lab NAME` takes it (kvstore/mechanisms.py LABS)
    title: str
    off: str  # the mechanism that is switched off, and what it is for
    where: str  # the file and function that implement it
    run: str  # how the campaign exposes it
    expect: tuple[str, ...]  # the finding kinds (raftkube/findings.py GUARANTEES) that show it
    plan: Plan


LABS = [
    Lab("stale-reads", "serve linearizable reads without ReadIndex",
        "A linearizable read gets a read index from a leader that a majority confirms, and waits until this master "
        "has applied it, so it sees every write acknowledged before it began. Switched off, every master answers "
        "from its own replica.",
        "kvstore/store.py: Store.range (ReadIndex: Store.read_index, kvstore/read_index.py)",
        "one follower is cut off from the other masters (its clients still reach it) for the whole run; clients read, "
        "write and compare-and-swap eight keys through every master",
        ("linearizability",), Plan(seconds=12, faults=(), held=("partition-follower",), **REGISTERS)),
    Lab("early-ack", "acknowledge a write before it commits",
        "A write is answered only once a majority of masters has it on disk and this master has applied it. "
        "Switched off, a put or txn is answered as soon as this master proposes it, with what it would do to this "
        "master's state.",
        "kvstore/store.py: Store._propose (the answer normally comes from the batch's callback, Store._on_batch_done)",
        "the leader is cut off from the other masters again and again while its clients keep writing to it",
        ("linearizability", "durability"),
        Plan(seconds=14, faults=("partition-leader",), healthy=1.5, faulty=2.5, **REGISTERS)),
    Lab("skip-fsync", "acknowledge writes that are not on disk, then crash every master at once",
        "Every master fdatasyncs its journal before it counts an entry as its own: a follower before it acknowledges "
        "it, the leader before it counts itself in a majority. Switched off, nothing waits for the disk; the "
        "journal's bytes stay in the process (a power cut loses the page cache) until a writeback every 5 s.",
        "kvstore/disk_sync.py: DiskSync.when_durable and DiskSync.needs_sync (used by kvstore/replica.py _Pacer)",
        "every master is killed at once (kill -9, standing for a power cut) and restarted, twice",
        ("durability",),
        Plan(seconds=12, faults=("kill-all",), healthy=4.0, faulty=0.5, rounds=2, snapshot_entries=100_000,
             **REGISTERS)),
    Lab("deposed-leader", "let a deposed leader keep serving",
        "A leader that has heard from no majority for leaderFallbackTimeout steps down, and even a leader's "
        "linearizable reads wait for a ReadIndex round, which only a leader a majority follows completes. Switched off, "
        "a leader never steps down and answers linearizable reads from its own state, trusting that it still leads.",
        "kvstore/replica.py: Replica (leaderFallbackTimeout, in pysyncobj's _onTick) and kvstore/store.py: "
        "Store._reads_locally",
        "the leader is cut off from the other masters for the whole run, its clients still reaching it; the others "
        "elect a new leader and go on writing",
        ("linearizability",), Plan(seconds=12, faults=(), held=("partition-leader",), **REGISTERS)),
    Lab("drop-watch-event", "drop a watch event now and then",
        "A watch hands every event in its range to its client once, in revision order: the hub passes each applied "
        "batch to every watcher from its next revision on. Switched off, the hub leaves out one event in 50.",
        "kvstore/watch.py: WatchHub.publish",
        "two watchers follow the whole keyspace through different masters while clients write; no faults",
        ("watch",), Plan(seconds=10, faults=(), watchers=2, leases=0, big_values=0.0, check_budget=20.0)),
    Lab("follower-clock", "expire leases on a follower's clock",
        "When a lease runs out is each master's own business, on its monotonic clock, and a new leader first gives "
        "every lease a full TTL. Switched off, deadlines are on the wall clock and a new leader keeps the ones it "
        "noted as a follower.",
        "kvstore/lessor.py: Lessor (its clock and Lessor.promote, called by kvstore/leader_duties.py "
        "LeaderDuties.tick)",
        "four clients keep 10 s leases alive every second; the followers' wall clocks jump an hour forward "
        "(`date -s`) and the leader is killed, so one of them takes over",
        ("lease",),
        Plan(seconds=14, faults=("clock-step-failover",), healthy=2.5, faulty=3.0, clients=2, watchers=0, leases=4,
             lease_ttl=10, big_values=0.0, check_budget=20.0)),
    Lab("wiped-member", "let an empty-data member rejoin under its old name",
        "Each data directory has its own member id, carried by every Raft message; a master restarted on a wiped "
        "directory is refused and must be removed and added back. Switched off, it is taken for the member it was "
        "and votes with an empty log.",
        "kvstore/member_identity.py: MemberIdentity.check (used by kvstore/replica.py "
        "Replica._SyncObj__onMessageReceived)",
        "issue 16's sequence: kill m_a; the other two acknowledge writes; kill both, wipe one (m_b) and start it "
        "again; restart m_a: m_a and the empty m_b are a majority; then the third comes back",
        ("durability", "linearizability"),
        Plan(seconds=14, faults=("wipe-rejoin",), healthy=1.0, faulty=1.0, rounds=1, **REGISTERS)),
]


def find(name: str) -> Lab:
    for lab in LABS:
        if lab.name == name:
            return lab
    raise KeyError(f"no lab {name!r}; `raftkube lab list` names them")
