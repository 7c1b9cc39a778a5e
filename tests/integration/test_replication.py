"""Three real masters: replication, failover, quorum loss and durability, with real kills (Raft §5)."""
import asyncio
import json
import os
import shutil
import signal

import aiohttp
import pytest

from kvstore.client import EtcdError
from raftkube import up
from tests.integration.cluster import TRANSIENT, eventually


async def test_a_write_on_a_follower_is_read_on_every_master(cluster):
    leader = await cluster.leader()
    follower = next(n for n in cluster.names if n != leader)
    res = await cluster.kv(follower).put(b"greeting", b"hello")
    revision = int(res["header"]["revision"])
    for name in cluster.names:
        # linearizable read: sees the write at once, on any master
        assert await cluster.kv(name).get(b"greeting") == b"hello"
        # serializable read: each replica catches up to the revision on its own
        await eventually(lambda n=name: _serializable_at(cluster, n, revision), what=f"{name} applied")


async def _serializable_at(cluster, name, revision):
    res = await cluster.kv(name).range(b"greeting", serializable=True)
    return int(res["header"]["revision"]) >= revision and res["kvs"][0]


async def test_leader_kill_writes_go_on_and_no_acknowledged_write_is_lost(cluster):
    """Kill -9 the leader while clients write through every master; every acked write survives."""
    leader = await cluster.leader()
    acked: dict[bytes, bytes] = {}
    stop = asyncio.Event()

    async def writer(name: str, wid: int) -> None:
        i = 0
        while not stop.is_set():
            key, value = b"w%d/%05d" % (wid, i), b"v%d" % i
            try:
                await cluster.kv(name).put(key, value)
                acked[key] = value
            except TRANSIENT:
                pass  # failed or unknown: not acknowledged
            i += 1

    survivors = [n for n in cluster.names if n != leader]
    writers = [asyncio.create_task(writer(n, i)) for i, n in enumerate(cluster.names * 2)]
    await eventually(lambda: asyncio.sleep(0, len(acked) > 50), what="writes before the kill")
    cluster.kill(leader)
    before = len(acked)
    await eventually(lambda: asyncio.sleep(0, len(acked) > before + 50), timeout=15, what="writes after the kill")
    stop.set()
    await asyncio.gather(*writers)
    new_leader = await cluster.leader(among=survivors)
    assert new_leader != leader
    res = await cluster.kv(survivors[0]).range(b"w", b"x")
    stored = {_unb64(kv["key"]): _unb64(kv.get("value")) for kv in res.get("kvs", [])}
    missing = {k for k in acked if stored.get(k) != acked[k]}
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:3]}"


def _unb64(text):
    import base64
    return base64.b64decode(text or "")


async def test_without_quorum_writes_fail_fast_and_serializable_reads_answer(cluster):
    await cluster.kv("m1").put(b"k", b"before")
    lease = await cluster.kv("m1").lease_grant(60)
    cluster.kill("m2")
    cluster.kill("m3")
    lone = cluster.kv("m1", timeout=10)  # a hung write would end in the client's timeout, not a 503
    with pytest.raises(EtcdError) as err:
        await lone.put(b"k", b"after")
    assert err.value.status == 503 and err.value.code == 14
    assert "no quorum" in err.value.body["message"]  # how fast: bench/kv.py's "no quorum" row
    with pytest.raises(EtcdError) as err:
        await lone.range(b"k")  # a linearizable read needs a quorum too
    assert err.value.status == 503
    assert await lone.get(b"k", serializable=True) == b"before"
    await _keepalive_fails_as_etcds_gateway_says(lone, lease)
    await _health_says_not_ready_but_alive(cluster, "m1")

    cluster.restart("m2")  # one back: a majority again
    await eventually(lambda: lone.put(b"k", b"again"), timeout=20, what="writes after a restart")
    assert await cluster.kv("m2").get(b"k") == b"again"


async def _keepalive_fails_as_etcds_gateway_says(kv, lease: int) -> None:
    """The keepalive stream's status is the error's, and its one line grpc-gateway's stream error. It was a 200
    stream with a second status line written into its body: no client could read that."""
    async with kv.session.post(kv.endpoint + "/v3/lease/keepalive", json={"ID": str(lease)}) as r:
        assert r.status == 503
        [line] = (await r.read()).splitlines()
    failed = json.loads(line)["error"]
    assert (failed["grpc_code"], failed["http_code"], failed["http_status"]) == (14, 503, "Service Unavailable")
    assert "no quorum" in failed["message"]
    with pytest.raises(EtcdError) as err:
        await kv.lease_keepalive(lease)
    assert err.value.status == 503 and err.value.code == 14


async def _health_says_not_ready_but_alive(cluster, name: str) -> None:
    """kube-apiserver's health answers: /readyz fails on its etcd check (500, every check's line, no reason
    given), /livez still passes (a load balancer reaches the master and hears "no quorum" from it)."""
    async with aiohttp.ClientSession(base_url=cluster.master(name)["api"],
                                     connector=aiohttp.TCPConnector(ssl=cluster.tls())) as api:
        async with api.get("/readyz") as r:
            assert r.status == 500
            assert await r.text() == ("[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n"
                                      "readyz check failed\n")
        async with api.get("/readyz?exclude=etcd") as r:
            assert r.status == 200 and await r.text() == "ok"
        async with api.get("/livez?verbose") as r:
            assert r.status == 200 and await r.text() == "[+]ping ok\n[+]log ok\nlivez check passed\n"


async def test_every_acknowledged_write_survives_kill_9_of_every_master(cluster):
    acked = {}
    for i in range(200):
        key = b"d/%03d" % i
        await cluster.kv(cluster.names[i % 3]).put(key, b"%d" % i)
        acked[key] = b"%d" % i
    for name in cluster.names:
        cluster.kill(name)
    for name in cluster.names:
        cluster.restart(name)
    await cluster.close_clients()
    res = await eventually(lambda: cluster.kv("m3").range(b"d/", b"d0"), timeout=30, what="a restarted quorum")
    stored = {_unb64(kv["key"]): _unb64(kv.get("value")) for kv in res["kvs"]}
    assert stored == acked
    assert int(res["header"]["revision"]) >= 201


async def test_a_master_restarted_on_a_wiped_data_dir_is_refused_and_the_write_survives(cluster):
    """Kill m1; W acknowledged by m2 and m3; kill m3; kill m2, wipe its data dir, restart it with its command
    line; restart m1. m1 and the empty m2 must not elect a leader without W: m1 refuses m2, which exits saying
    how to come back; once m3 returns, W is there."""
    cluster.kill("m1")
    await eventually(lambda: cluster.kv("m2").put(b"W", b"acknowledged"), timeout=20, what="W acknowledged")
    cluster.kill("m3")
    cluster.kill("m2")
    shutil.rmtree(cluster.master("m2")["data_dir"])
    wiped = cluster.restart("m2")
    cluster.restart("m1")
    await eventually(lambda: _gone(wiped), timeout=20, what="the wiped m2 giving up")
    with open(os.path.join(cluster.state_dir, "logs", "m2.log")) as f:
        assert "member remove" in f.read()
    cluster.restart("m3")
    await cluster.close_clients()
    assert await eventually(lambda: cluster.kv("m1").get(b"W"), timeout=30, what="a leader with W") == b"acknowledged"


async def _gone(pid: int) -> bool:
    return not up.is_running(pid)


async def test_a_watch_on_a_survivor_sees_every_event_once_in_order_across_the_leaders_death(cluster):
    leader = await cluster.leader()
    watcher_on = next(n for n in cluster.names if n != leader)
    writer_on = next(n for n in cluster.names if n not in (leader, watcher_on))
    start = int((await cluster.kv(writer_on).status())["header"]["revision"]) + 1
    seen: list[int] = []
    written: list[int] = []

    async def watch() -> None:
        async for msg in cluster.kv(watcher_on).watch(b"e/", b"e0", start_revision=start):
            for ev in msg.get("events", []):
                seen.append(int(ev["kv"]["mod_revision"]))

    task = asyncio.create_task(watch())

    counter = iter(range(10**6))

    async def write(n: int) -> None:
        for _ in range(n):
            try:  # a new key each time, so each revision stays visible in the final range
                res = await cluster.kv(writer_on).put(b"e/%d" % next(counter), b"x")
                written.append(int(res["header"]["revision"]))
            except TRANSIENT:
                pass

    await write(30)
    cluster.kill(leader)
    await write(30)
    await eventually(lambda: asyncio.sleep(0, written and seen[-1:] == written[-1:]), what="the watch caught up")
    task.cancel()
    assert seen == sorted(set(seen)), "events repeated or out of order"
    assert set(written) <= set(seen), "acknowledged writes missing from the watch"
    # No gap: every revision from the start on that touched e/ is there.
    res = await cluster.kv(writer_on).range(b"e/", b"e0")
    assert sorted(int(kv["mod_revision"]) for kv in res["kvs"]) == seen


async def test_paused_leader_is_replaced_and_rejoins(cluster):
    leader = await cluster.leader()
    others = [n for n in cluster.names if n != leader]
    cluster.kill(leader, signal.SIGSTOP)
    try:
        new = await cluster.leader(among=others)
        assert new != leader
        await cluster.kv(others[0]).put(b"p", b"while paused")
    finally:
        cluster.kill(leader, signal.SIGCONT)
    await eventually(lambda: _value_is(cluster, leader, b"p", b"while paused"), what="the old leader caught up")


async def _value_is(cluster, name, key, value):
    return await cluster.kv(name).get(key) == value
