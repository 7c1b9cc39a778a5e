"""The etcd v3 JSON gateway as an etcd client meets it: shapes, errors, compaction, leases."""
import asyncio
import base64
import json
import os
import pickle
import socket
import ssl
import struct
import zlib

import pytest

from api import bootstrap_policy
from api.registry import DEFAULT_NAMESPACES
from kvstore.client import EtcdError, KVClient, b64
from raftkube import failpoints
from tests.integration.cluster import Cluster, eventually


@pytest.fixture(scope="module")
def kv_cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("gateway") / "cluster"), 3,
                master_flags=("--watch-progress-interval", "0.5", "--enable-failpoints"))  # clock_step
    asyncio.run(settled(c.master("m2")["kv"], c.kv_tls()))
    yield c
    c.stop()


@pytest.fixture
async def kv(kv_cluster):
    async with KVClient(kv_cluster.master("m2")["kv"], tls=kv_cluster.kv_tls()) as client:
        yield client


async def settled(endpoint: str, tls: ssl.SSLContext) -> None:
    """Until the masters' own start-up writes (default namespaces, bootstrap RBAC policy) are all in, and none came
    for a second: the tests that check a refused request changes no revision must not count them."""
    wanted = [f"/registry/namespaces/{name}".encode() for name in DEFAULT_NAMESPACES]
    wanted += [f"/registry/rbac.authorization.k8s.io/clusterroles/{r['metadata']['name']}".encode()
               for r in bootstrap_policy.cluster_roles()]
    wanted += [f"/registry/rbac.authorization.k8s.io/clusterrolebindings/{b['metadata']['name']}".encode()
               for b in bootstrap_policy.cluster_role_bindings()]
    async with KVClient(endpoint, tls=tls) as kv:
        async def all_in() -> bool:
            return all([await kv.get(key) is not None for key in wanted])

        await eventually(all_in, timeout=60, what="the default namespaces and the bootstrap policy")
        last = [await revision(kv)]

        async def still() -> bool:
            await asyncio.sleep(1.0)
            now = await revision(kv)
            unchanged, last[0] = now == last[0], now
            return unchanged

        await eventually(still, timeout=60, what="no writes for a second")


async def raw_post(kv: KVClient, path: str, data: bytes) -> tuple[int, dict]:
    async with kv.session.post(kv.endpoint + path, data=data) as r:
        text = await r.text()
        return r.status, json.loads(text) if text.strip() else {}


async def revision(kv: KVClient) -> int:
    return int((await kv.status())["header"]["revision"])


@pytest.mark.parametrize("path,body,status", [
    ("/v3/kv/put", b'{"key": "Zm9v", "value":', 400),                       # malformed JSON
    ("/v3/kv/put", b'{"key": "Zm9v!!", "value": "YmFy"}', 400),             # bad base64
    ("/v3/kv/put", b'{"key": "YS8", "value": "YmFy"}', 400),                # base64 without padding
    ("/v3/kv/put", b'{"value": "YmFy"}', 400),                              # no key
    ("/v3/kv/put", b'["not", "an", "object"]', 400),
    ("/v3/kv/put", b'{"key": "Zm9v", "lease": "12abc"}', 400),              # not an int64
    ("/v3/kv/put", b'{"key": "Zm9v", "lease": "424242"}', 404),             # no such lease
    ("/v3/kv/txn", b'{"success": [{"request_frobnicate": {}}]}', 400),      # unknown operation
    ("/v3/kv/txn", b'{"success": [{"request_put": {"key": "YQ=="}}, {"request_put": {"key": "YQ=="}}]}', 400),
    ("/v3/kv/range", b'{"key": "Zm9v", "sort_order": "SIDEWAYS"}', 400),
    ("/v3/kv/compaction", b'{"revision": "999999999"}', 400),               # future revision
    ("/v3/kv/nope", b'{}', 404),
    ("/v3/watch", b'{"create_request": {"key": "Zm9v"}} {"oops"', 400),
])
async def test_bad_input_gets_a_4xx_and_changes_nothing(kv, path, body, status):
    before = await revision(kv)
    code, answer = await raw_post(kv, path, body)
    assert code == status, answer
    assert answer.get("message") and answer.get("code")
    assert await revision(kv) == before


async def test_a_request_over_1_5_mib_is_refused_and_changes_nothing(kv):
    before = await revision(kv)
    big = json.dumps({"key": b64(b"big"), "value": b64(os.urandom(1600 * 1024))}).encode()
    code, answer = await raw_post(kv, "/v3/kv/put", big)
    assert code == 400 and answer["message"] == "etcdserver: request is too large"
    assert await revision(kv) == before and await kv.get(b"big") is None


async def test_shapes_follow_etcds_gateway(kv):
    put = await kv.put(b"shape", b"v1")
    assert set(put) == {"header"} and set(put["header"]) == {"cluster_id", "member_id", "revision", "raft_term"}
    assert isinstance(put["header"]["revision"], str)
    empty = await kv.range(b"no-such-key")
    assert set(empty) == {"header"}  # no kvs, no count: defaults are left out
    again = await kv.put(b"shape", b"v2", prev_kv=True)
    assert base64.b64decode(again["prev_kv"]["value"]) == b"v1"
    failed = await kv.txn([{"key": b64(b"shape"), "target": "VALUE", "result": "EQUAL", "value": b64(b"nope")}],
                          [{"request_put": {"key": b64(b"x"), "value": b64(b"y")}}],
                          [{"request_range": {"key": b64(b"shape")}}])
    assert "succeeded" not in failed
    inner = failed["responses"][0]["response_range"]
    assert set(inner["header"]) == {"revision"} and inner["count"] == "1"


async def test_compare_and_swap_lets_one_writer_win(kv):
    await kv.put(b"cas", b"0")
    rev = int((await kv.range(b"cas"))["kvs"][0]["mod_revision"])
    results = await asyncio.gather(*(kv.cas(b"cas", rev, b"%d" % i) for i in range(8)))
    assert results.count(True) == 1


async def test_compacted_revisions_get_etcds_error_in_reads_and_watches(kv):
    first = await kv.put(b"comp", b"1")
    old = int(first["header"]["revision"])
    await kv.put(b"comp", b"2")
    latest = await kv.put(b"comp", b"3")
    await kv.compact(int(latest["header"]["revision"]))
    with pytest.raises(EtcdError) as err:
        await kv.range(b"comp", revision=old)
    assert err.value.status == 400 and err.value.code == 11
    assert "compacted" in err.value.body["message"]
    messages = kv.watch(b"comp", start_revision=old)
    assert (await messages.__anext__()).get("created") is True
    cancel = await messages.__anext__()
    assert cancel["canceled"] is True and cancel["compact_revision"] == latest["header"]["revision"]
    await messages.aclose()


async def test_an_expired_lease_deletes_its_keys_and_watchers_see_it(kv, kv_cluster):
    lease = await kv.lease_grant(2)
    await kv.put(b"leased", b"v", lease=lease)
    other = KVClient(kv_cluster.master("m3")["kv"], tls=kv_cluster.kv_tls())
    try:
        start = await revision(other)
        deleted = asyncio.Event()

        async def watch():
            async for msg in other.watch(b"leased", start_revision=start):
                if any(ev.get("type") == "DELETE" for ev in msg.get("events", [])):
                    deleted.set()
                    return

        task = asyncio.create_task(watch())
        await asyncio.wait_for(deleted.wait(), timeout=15)
        task.cancel()
        assert await kv.get(b"leased") is None
        ttl = await kv.call("/v3/lease/timetolive", {"ID": str(lease)})
        assert ttl["TTL"] == "-1"
    finally:
        await other.close()


async def test_a_wall_clock_step_on_the_leader_expires_no_lease(kv, kv_cluster):
    """Lease deadlines live on the leader's monotonic clock (kvstore/lessor.py): `date -s` an hour ahead on the
    leader (the clock_step failpoint) leaves a 30 s lease alone; with wall-clock expiry it died at once."""
    lease = await kv.lease_grant(30)
    await kv.put(b"clock-step", b"v", lease=lease)
    leader = kv_cluster.master(await kv_cluster.leader())
    failpoints.failpoint(leader, {"clock_step": 3600}, kv_cluster.kv_tls())
    try:
        async def ttl_left() -> int:
            return int((await kv.call("/v3/lease/timetolive", {"ID": str(lease)}))["TTL"])

        # Two seconds of the leader's lease duties (one pass every 0.5 s) after the step:
        await eventually(lambda: _at_most(ttl_left, 28), timeout=10, what="two seconds of the lease's life")
        assert await kv.get(b"clock-step") == b"v"
        assert 25 <= await ttl_left() <= 28
    finally:
        failpoints.failpoint(leader, {"clock_step": -3600}, kv_cluster.kv_tls())


async def _at_most(read, value) -> bool:
    return await read() <= value


async def test_keepalive_keeps_a_lease_and_revoke_ends_it(kv):
    lease = await kv.lease_grant(3)
    await kv.put(b"kept", b"v", lease=lease)
    loop = asyncio.get_running_loop()
    until = loop.time() + 5
    while loop.time() < until:  # outlive the TTL by keeping it alive
        reply = await kv.call("/v3/lease/keepalive", {"ID": str(lease)})
        assert reply["result"]["TTL"] == "3"
        await asyncio.sleep(0.5)
    assert await kv.get(b"kept") == b"v"
    listed = await kv.call("/v3/lease/leases", {})
    assert {"ID": str(lease)} in listed["leases"]
    await kv.call("/v3/lease/revoke", {"ID": str(lease)})
    assert await kv.get(b"kept") is None


async def test_member_list_and_status_name_every_master(kv, kv_cluster):
    members = await eventually(lambda: _three_members(kv), what="every master announced")
    assert sorted(m["name"] for m in members) == ["m1", "m2", "m3"]
    status = await kv.status()
    assert status["leader"] in {m["ID"] for m in members}
    assert int(status["raftAppliedIndex"]) > 0


async def _three_members(kv):
    members = (await kv.call("/v3/cluster/member/list", {}))["members"]
    return members if len(members) == 3 and all(m.get("name") for m in members) else None


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


async def test_a_raw_pickle_on_the_raft_port_has_no_effect(kv, kv_cluster, tmp_path):
    """pysyncobj unpickles what peers send; with the cluster secret an outsider's pickle is never loaded."""
    _Exploit.marker = tmp_path / "pwned"
    before = await revision(kv)
    host, port = kv_cluster.master("m1")["raft"].rsplit(":", 1)
    forged = [_Exploit(), {"type": "apply_command", "command": b"\x00" * 8},
              {"type": "append_entries", "term": 10**6, "commit_index": 10**6, "entries": []}]
    for message in forged:
        data = zlib.compress(pickle.dumps(message))
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(struct.pack("i", len(data)) + data)
            s.settimeout(2)
            try:
                s.recv(1024)  # the master hangs up on us
            except (socket.timeout, ConnectionError):
                pass
    assert not _Exploit.marker.exists()
    await kv.put(b"after-attack", b"ok")
    assert await revision(kv) == before + 1
    status = await kv.status()
    assert int(status["raftTerm"]) < 10**6


async def test_an_idle_watch_gets_progress_notifications_at_the_current_revision(kv, kv_cluster):
    other = KVClient(kv_cluster.master("m1")["kv"], tls=kv_cluster.kv_tls())
    try:
        messages = kv.watch(b"quiet/", b"quiet0", progress_notify=True)
        assert (await messages.__anext__()).get("created")
        head = int((await other.put(b"elsewhere", b"x"))["header"]["revision"])
        progress = await asyncio.wait_for(messages.__anext__(), timeout=10)
        while int(progress["header"]["revision"]) < head:  # it catches up with writes elsewhere
            progress = await asyncio.wait_for(messages.__anext__(), timeout=10)
        assert "events" not in progress and "created" not in progress
        await messages.aclose()
    finally:
        await other.close()
