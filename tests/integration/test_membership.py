"""Membership changes at runtime: 3 -> 5 -> 7 masters and back to 3, the leader removed on the way, writes going on
throughout; a master restarted with stale --peers flags takes the cluster's topology."""
import asyncio
import subprocess
import sys

import pytest

from kvstore.client import EtcdError
from raftkube import cluster_file
from tests.integration.cluster import TRANSIENT, eventually


async def member(cluster, *args):
    return await asyncio.to_thread(_member, cluster, *args)  # the writer keeps running meanwhile


def _member(cluster, *args):
    out = subprocess.run([sys.executable, "-m", "raftkube", "member", *args, "--state-dir", cluster.state_dir],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cluster.info = cluster_file.read(cluster.state_dir)
    return out.stdout


async def _writer(cluster, stop: asyncio.Event, acked: list, failed: list):
    i = 0
    first = list(cluster.names)  # the original masters, while they are members
    while not stop.is_set():
        i += 1
        live = [n for n in first if n in cluster.names]
        name = live[i % len(live)]
        try:
            await cluster.kv(name, timeout=5).put(f"w{i}".encode(), b"x")
            acked.append(i)
        except TRANSIENT as exc:
            failed.append((name, repr(exc)))
        await asyncio.sleep(0.01)


async def _members(cluster, name):
    res = await cluster.kv(name).call("/v3/cluster/member/list", {})
    return sorted(m["name"] for m in res["members"] if m.get("name"))


async def test_grow_to_seven_and_shrink_to_three_removing_the_leader(cluster):
    await cluster.kv("m1").put(b"before", b"1")
    for path, body, status in [("add", {"peerURLs": ["http://nohost"]}, 400), ("add", {"peerURLs": "x"}, 400),
                               ("add", {"peerURLs": [f"http://{cluster.master('m2')['raft']}"]}, 412),
                               ("remove", {"ID": "12345"}, 404)]:
        with pytest.raises(EtcdError) as bad:
            await cluster.kv("m1").call(f"/v3/cluster/member/{path}", body)
        assert bad.value.status == status, (path, body, bad.value.body)
    assert len(await _members(cluster, "m1")) == 3  # bad requests changed nothing
    stop, acked, failed = asyncio.Event(), [], []
    writer = asyncio.create_task(_writer(cluster, stop, acked, failed))
    try:
        for _ in range(4):  # 3 -> 5 -> 7, one at a time
            await member(cluster, "add")
        assert cluster.names == ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
        for name in ("m4", "m5", "m6", "m7"):  # the newcomers caught up and serve linearizable reads
            assert await eventually(lambda: cluster.kv(name).get(b"before"), timeout=30, what=f"{name} serving")
        await eventually(lambda: _has_all(cluster, "m1", 7), timeout=20, what="seven members announced")

        leader = await cluster.leader()
        await member(cluster, "remove", leader)  # the leader hands over first
        assert leader not in cluster.names
        new_leader = await cluster.leader()
        assert new_leader != leader
        for _ in range(3):  # 6 -> 3, newest first (the writer keeps to the first three)
            other = next(n for n in reversed(cluster.names) if n != new_leader)
            await member(cluster, "remove", other)
        assert len(cluster.names) == 3
        await eventually(lambda: _count(cluster, new_leader, 3), timeout=20, what="three members listed")
    finally:
        stop.set()
        await writer
    # Writes through the masters that stayed went on; only the removed ones refused them at the end.
    lost = [f for f in failed if f[0] in cluster.names]
    assert len(acked) > 50 and len(lost) <= len(acked) // 20, lost[:5]

    # A survivor restarted with its original command line (whose --peers name removed masters) takes the
    # cluster's topology from its data directory; then any single master can die and writes still commit.
    survivor = next(n for n in cluster.names if n in ("m1", "m2", "m3"))
    cluster.restart(survivor)
    await eventually(lambda: _count(cluster, survivor, 3), timeout=30, what=f"{survivor} back with 3 members")
    victim = next(n for n in cluster.names if n != survivor)
    cluster.kill(victim)
    rest = [n for n in cluster.names if n != victim]
    await eventually(lambda: cluster.kv(rest[0]).put(b"after", b"1"), timeout=30, what="a write with 2 of 3")


async def _has_all(cluster, name, n):
    return len(await _members(cluster, name)) == n


async def _count(cluster, name, n):
    res = await cluster.kv(name).call("/v3/cluster/member/list", {})
    return len(res["members"]) == n
