"""`raftkube chaos` on a running cluster: name the leader, partition it away, heal, kill, restart."""
import asyncio

import aiohttp
import pytest

from raftkube import cluster_file
from tests.integration.cluster import eventually

MASTER_FLAGS = ("--enable-failpoints",)  # the `cluster` fixture's: partitions are failpoints (`up --enable-failpoints`)


async def test_partitioning_the_leader_moves_leadership_and_heal_brings_it_back(cluster):
    old = cluster.chaos("leader")
    assert old == await cluster.leader()
    others = [n for n in cluster.names if n != old]
    cluster.chaos("partition", old)
    new = await cluster.leader(among=others)
    assert new != old
    put = await cluster.kv(others[0]).put(b"during", b"partition")
    # The cut-off master is alive but cannot commit, and does not see the write.
    assert await cluster.kv(old).get(b"during", serializable=True) is None
    cluster.chaos("heal", old)
    revision = int(put["header"]["revision"])
    await eventually(lambda: _has(cluster, old, b"during", revision), timeout=20, what="the healed master caught up")


async def test_a_follower_partitioned_and_healed_leaves_the_leader_and_its_term_alone(cluster):
    """PreVote: the cut-off follower's election timer runs out again and again, but it raises no term, so when
    the link heals there is no election (pysyncobj alone went from term 1 to 17 here, writes blocked meanwhile)."""
    leader = cluster.chaos("leader")
    term = (await cluster.kv(leader).status())["raftTerm"]
    follower = next(n for n in cluster.names if n != leader)
    rounds = await _metric(cluster, follower, "raftkube_raft_pre_votes_total")
    cluster.chaos("partition", follower)
    await eventually(lambda: _metric_at_least(cluster, follower, "raftkube_raft_pre_votes_total", rounds + 5),
                     timeout=20, what="five election timeouts on the cut-off follower")
    put = await cluster.kv(leader).put(b"while-cut", b"1")
    cluster.chaos("heal", follower)
    await eventually(lambda: _has(cluster, follower, b"while-cut", int(put["header"]["revision"])), timeout=20,
                     what="the healed follower caught up")
    assert await cluster.leader() == leader
    for name in cluster.names:
        assert (await cluster.kv(name).status())["raftTerm"] == term


async def _metric(cluster, name, metric) -> float:
    async with aiohttp.ClientSession() as s:
        async with s.get(cluster.master(name)["kv"] + "/metrics", ssl=cluster.kv_tls()) as r:
            text = await r.text()
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(metric + " "))


async def _metric_at_least(cluster, name, metric, value) -> bool:
    return await _metric(cluster, name, metric) >= value


async def _has(cluster, name, key, revision):
    res = await cluster.kv(name).range(key, serializable=True)
    return int(res["header"]["revision"]) >= revision and res.get("kvs")


async def test_kill_then_restart_records_the_new_pid_and_the_master_serves(cluster):
    before = cluster_file.read(cluster.state_dir)["masters"][2]["pid"]
    cluster.chaos("kill", "m3")
    await cluster.kv("m1").put(b"while-m3-down", b"x")
    cluster.chaos("restart", "m3")
    after = cluster_file.read(cluster.state_dir)["masters"][2]["pid"]
    assert after != before
    await cluster.close_clients()
    await eventually(lambda: _has(cluster, "m3", b"while-m3-down", 0), timeout=20, what="m3 back with the data")


async def test_pause_and_resume(cluster):
    leader = cluster.chaos("leader")
    cluster.chaos("pause", leader)
    others = [n for n in cluster.names if n != leader]
    assert await cluster.leader(among=others) != leader
    cluster.chaos("resume", leader)
    await eventually(lambda: _agreed_by_all(cluster), timeout=20, what="all three agree again")


async def _agreed_by_all(cluster):
    return await cluster.leader() is not None


async def test_partition_with_clients_drops_their_connections_until_heal(cluster):
    victim = "m2"
    cluster.chaos("partition", victim, "--clients")
    with pytest.raises((aiohttp.ClientError, OSError, asyncio.TimeoutError)):  # no answer, not an error answer
        await cluster.kv(victim, timeout=2).get(b"x", serializable=True)
    await cluster.kv("m1").put(b"without-m2", b"1")  # the other two still make a quorum
    cluster.chaos("heal", victim)
    await eventually(lambda: cluster.kv(victim).get(b"without-m2"), timeout=20, what=f"{victim} serving again")
