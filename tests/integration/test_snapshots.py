"""Snapshots: a master that missed more than the leader's log catches up from a snapshot (Raft §7)."""
import asyncio
import contextlib
import os

import aiohttp
import pytest

from kvstore.client import EtcdError
from tests.integration.cluster import Cluster, eventually


@pytest.fixture
async def small_log_cluster(tmp_path):
    c = Cluster(str(tmp_path / "cluster"), 3, master_flags=("--snapshot-entries", "50"))
    try:
        yield c
    finally:
        await c.close_clients()
        c.stop()


async def _count(cluster, name, serializable=True):
    res = await cluster.kv(name).range(b"s/", b"s0", serializable=serializable, count_only=True)
    return int(res.get("count", 0))


async def test_a_lagging_master_catches_up_from_a_snapshot_and_serves_watches(small_log_cluster):
    c = small_log_cluster
    leader = await c.leader()
    lagging = next(n for n in c.names if n != leader)
    writer = next(n for n in c.names if n not in (leader, lagging))
    c.kill(lagging)
    for i in range(400):  # one at a time: one Raft entry each, so the log outgrows 50 entries
        await c.kv(writer).put(b"s/%04d" % i, b"v%d" % i)
    snapshot = os.path.join(c.master(leader)["data_dir"], "raft.snapshot")
    await eventually(lambda: asyncio.sleep(0, os.path.exists(snapshot)), what="the leader took a snapshot")
    head = int((await c.kv(writer).status())["header"]["revision"])
    c.restart(lagging)
    await eventually(lambda: _count_is(c, lagging, 400), timeout=30, what="the restarted master caught up")
    # Its history holds what the snapshot carried: a watch from a recent revision replays it.
    messages = c.kv(lagging).watch(b"s/", b"s0", start_revision=head - 5)
    first = await messages.__anext__()
    assert first.get("created")
    replay = await messages.__anext__()
    assert [int(e["kv"]["mod_revision"]) for e in replay["events"]] == list(range(head - 5, head + 1))
    await messages.aclose()

    for name in c.names:  # and after everyone restarts from snapshot + journal, all is there
        c.kill(name)
    for name in c.names:
        c.restart(name)
    await c.close_clients()
    await eventually(lambda: _count_is(c, lagging, 400, serializable=False), timeout=30, what="restart from snapshots")


async def _count_is(cluster, name, n, serializable=True):
    return await _count(cluster, name, serializable) == n


async def test_a_master_whose_snapshot_will_not_load_stops_instead_of_serving_without_it(small_log_cluster):
    """pysyncobj logged a snapshot that failed to load and went on with an empty state: the journal starts past
    the snapshot, so nothing applied, and the master answered serializable reads from nothing. It stops now."""
    c = small_log_cluster
    leader = await c.leader()
    follower = next(n for n in c.names if n != leader)
    for i in range(120):
        await c.kv(leader).put(b"s/%04d" % i, b"v%d" % i)
    snapshot = os.path.join(c.master(follower)["data_dir"], "raft.snapshot")
    await eventually(lambda: asyncio.sleep(0, os.path.exists(snapshot)), what="the follower took a snapshot")
    await eventually(lambda: _count_is(c, follower, 120), what="the follower applied every put")
    c.kill(follower)
    with open(snapshot, "r+b") as f:  # a disk that gives back garbage
        f.write(b"\0" * 64)
    pid = c.restart(follower)
    answered = []  # the counts it served meanwhile, if any

    async def exit_status() -> int | None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError, aiohttp.ClientError, EtcdError, asyncio.TimeoutError):
            answered.append(await _count(c, follower))
        return None

    assert await eventually(exit_status, timeout=20, what="the master stopping") == 2
    assert set(answered) <= {120}
    with open(os.path.join(c.state_dir, "logs", f"{follower}.log")) as f:
        log = f.read()
    assert f"the snapshot {snapshot} did not load" in log and "member add" in log
    await c.kv(leader).put(b"s/after", b"v")  # the other two go on
