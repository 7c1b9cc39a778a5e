"""`raftkube restore SNAPSHOT --data-dir D`: seed one master's data directory from `etcdctl snapshot save`'s file.

etcd's order is kept: restore the same file into the data directory of every master of the new cluster, then
start them (or let `raftkube up --restore SNAPSHOT` do both for a local cluster). Each master then starts from
the snapshot's keys, leases and revision instead of an empty store, and its first log compaction makes that state
part of its own Raft snapshot, so a master added later receives it like any other state.

    etcdctl --cacert CA --cert CRT --key KEY --endpoints https://127.0.0.1:2378 snapshot save backup.db   # kv_tls's
    raftkube restore backup.db --data-dir new/m1     # ... and m2, m3: then start the masters on new/m*
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil

from kvstore import backup
from kvstore.errors import KVFailure
from kvstore.mvcc import StateMachine

PENDING = "restore.snapshot"  # in a data dir: the state to start from, until the first Raft snapshot holds it
RAFT_FILES = ("raft.journal", "raft.snapshot")
COMPACTION_RETRY = 1.0

log = logging.getLogger("raftkube.restore")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshot", help="a file from `etcdctl snapshot save` against a raftkube cluster")
    p.add_argument("--data-dir", required=True, help="the new master's data directory (empty or absent)")


def prepare(snapshot: str, data_dir: str) -> int:
    """Check the file and place it in `data_dir`; the snapshot's revision. SystemExit says what is wrong."""
    try:
        with open(snapshot, "rb") as f:
            revision = backup.load(f.read()).revision
    except OSError as exc:
        raise SystemExit(f"raftkube restore: cannot read {snapshot}: {exc.strerror}") from None
    except backup.BadSnapshot as exc:
        raise SystemExit(f"raftkube restore: {snapshot}: {exc}") from None
    existing = [f for f in RAFT_FILES if os.path.exists(os.path.join(data_dir, f))]
    if existing:
        raise SystemExit(f"raftkube restore: {data_dir} already holds a master's data ({', '.join(existing)}); "
                         "restore into a new, empty data directory")
    os.makedirs(data_dir, exist_ok=True)
    shutil.copyfile(snapshot, os.path.join(data_dir, PENDING))
    return revision


def pending(data_dir: str) -> StateMachine | None:
    """The state a master must start from, if its data dir was restored and no Raft snapshot holds it yet."""
    path = os.path.join(data_dir, PENDING)
    if not os.path.exists(path):
        return None
    if os.path.exists(os.path.join(data_dir, "raft.snapshot")):
        os.remove(path)  # the Raft snapshot holds the restored state and everything after it
        return None
    with open(path, "rb") as f:
        return backup.load(f.read())


async def settle(replica, store, data_dir: str) -> None:
    """Have the restored state written into this master's Raft snapshot (log compaction needs an applied entry
    after the first, so wait for one), then forget the file."""
    dump = os.path.join(data_dir, "raft.snapshot")
    while not os.path.exists(dump):
        try:
            await store.read_index()
        except KVFailure:
            pass  # no quorum yet
        replica.forceLogCompaction()
        await asyncio.sleep(COMPACTION_RETRY)
    os.remove(os.path.join(data_dir, PENDING))
    log.info("the restored state is in %s; %s removed", dump, PENDING)


def run(args: argparse.Namespace) -> int:
    revision = prepare(args.snapshot, args.data_dir)
    print(f"restored {args.snapshot} (revision {revision}) into {args.data_dir}; start the master on it, "
          "and do the same for every master of the new cluster")
    return 0
