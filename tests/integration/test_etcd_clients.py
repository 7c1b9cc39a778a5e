"""etcd client libraries from PyPI, unchanged, against three masters: aetcd on the gRPC API, etcd3gw on the JSON
gateway (it parses /version as MAJOR.MINOR.PATCH before its first request); and bad gRPC input, which gets
InvalidArgument and changes nothing."""
import asyncio
import json
import urllib.request

import aetcd
import etcd3gw
import grpc
import pytest

from kvstore.etcdpb import message
from tests.integration.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("clients") / "cluster"), 3)
    yield c
    c.stop()


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return host, int(port)


@pytest.fixture
async def etcd(cluster):
    host, port = _address(cluster.master("m2")["grpc"])
    async with aetcd.Client(host=host, port=port, timeout=10) as client:
        yield client


async def test_aetcd_puts_gets_and_swaps_in_a_transaction(etcd):
    await etcd.put(b"lib/a", b"1")
    await etcd.put(b"lib/b", b"2")
    got = await etcd.get(b"lib/a")
    assert got.value == b"1" and got.version == 1
    assert [kv.value for kv in await etcd.get_prefix(b"lib/")] == [b"1", b"2"]
    t = etcd.transactions
    ok, _ = await etcd.transaction(compare=[t.value(b"lib/a") == b"1"], success=[t.put(b"lib/a", b"won")],
                                   failure=[t.put(b"lib/a", b"lost")])
    lost, _ = await etcd.transaction(compare=[t.value(b"lib/a") == b"1"], success=[t.put(b"lib/a", b"again")],
                                     failure=[t.get(b"lib/b")])
    assert ok and not lost and (await etcd.get(b"lib/a")).value == b"won"
    assert (await etcd.delete_prefix(b"lib/")).deleted == 2


async def test_aetcd_watches_a_prefix_from_a_revision(etcd, cluster):
    first = (await etcd.put(b"libw/1", b"one")).header.revision
    writer_host, writer_port = _address(cluster.master("m3")["grpc"])
    watch = await etcd.watch(b"libw/", range_end=b"libw0", start_revision=first)
    seen = []

    async def collect():
        async for event in watch:
            seen.append((event.kind, event.kv.key))
            if len(seen) == 3:
                return

    task = asyncio.create_task(collect())
    async with aetcd.Client(host=writer_host, port=writer_port, timeout=10) as writer:
        await writer.put(b"libw/2", b"two")
        await writer.delete(b"libw/1")
    await asyncio.wait_for(task, 15)
    await watch.cancel()
    assert seen == [("PUT", b"libw/1"), ("PUT", b"libw/2"), ("DELETE", b"libw/1")]


async def test_aetcd_leases_keep_keys_until_revoked(etcd):
    lease = await etcd.lease(30)
    await etcd.put(b"libl/k", b"v", lease=lease)
    assert (await lease.refresh()).TTL == 30
    info = await etcd.get_lease_info(lease.id)
    assert info.grantedTTL == 30 and list(info.keys) == [b"libl/k"] and 0 < info.TTL <= 30
    await lease.revoke()
    assert await etcd.get(b"libl/k") is None
    assert (await etcd.get_lease_info(lease.id)).TTL == -1


async def test_aetcd_status_members_and_snapshot(etcd, tmp_path):
    status = await etcd.status()
    members = [m async for m in etcd.members()]
    assert len(members) == 3 and status.leader.id in {m.id for m in members}
    assert status.version == "3.4.0"
    with open(tmp_path / "s.db", "wb") as f:
        await etcd.snapshot(f)
    assert (tmp_path / "s.db").stat().st_size % 512 == 32


def test_the_json_gateway_reports_a_numeric_version_and_etcd3gw_works(cluster):
    url = cluster.master("m1")["kv"]
    with urllib.request.urlopen(url + "/version", timeout=5) as r:
        version = json.load(r)
    assert version["etcdserver"] == "3.4.0" and version["etcdcluster"] == "3.4.0" and version["raftkube"]
    host, port = _address(url)
    client = etcd3gw.Etcd3Client(host=host, port=port, api_path=None)  # discovers /v3/ from /version
    assert client.put("gw/key", "value")
    assert client.get("gw/key") == [b"value"]
    assert client.api_path == "/v3/"


@pytest.mark.parametrize("method,request_type,fields", [
    ("KV/Put", "PutRequest", {"value": b"no key"}),
    ("KV/Range", "RangeRequest", {"key": b"a", "sort_order": 9}),
    ("KV/Txn", "TxnRequest", {"success": [{"request_put": {"key": b"d"}}, {"request_put": {"key": b"d"}}]}),
    ("KV/Put", "PutRequest", {"key": b"big", "value": b"x" * (3 << 19)}),
    ("KV/Compact", "CompactionRequest", {"revision": 1 << 40}),
    ("Lease/LeaseGrant", "LeaseGrantRequest", {"TTL": 10, "ID": -5}),
    ("Cluster/MemberAdd", "MemberAddRequest", {"peerURLs": ["not a url"]}),
    ("Cluster/MemberRemove", "MemberRemoveRequest", {"ID": 12345}),
    ("Maintenance/MoveLeader", "MoveLeaderRequest", {"targetID": 1}),
    ("Auth/Authenticate", "AuthenticateRequest", {"name": "root", "password": "x"}),
])
async def test_bad_grpc_requests_get_etcds_error_and_change_nothing(cluster, method, request_type, fields):
    async with grpc.aio.insecure_channel(cluster.master("m1")["grpc"].split("://", 1)[1]) as channel:
        call = channel.unary_unary(f"/etcdserverpb.{method}",
                                   request_serializer=message(f"etcdserverpb.{request_type}").SerializeToString)
        status = channel.unary_unary("/etcdserverpb.Maintenance/Status",
                                     request_serializer=message("etcdserverpb.StatusRequest").SerializeToString,
                                     response_deserializer=message("etcdserverpb.StatusResponse").FromString)
        before = (await status(message("etcdserverpb.StatusRequest")())).header.revision
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(message(f"etcdserverpb.{request_type}")(**fields), timeout=10)
        assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE,
                                    grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
        assert err.value.details().startswith("etcdserver: ")
        assert (await status(message("etcdserverpb.StatusRequest")())).header.revision == before
