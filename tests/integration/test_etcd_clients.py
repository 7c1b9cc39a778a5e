"""etcd client libraries from PyPI, unchanged: python-etcd3 on the gRPC API and etcd3gw on the JSON gateway (it
parses /version as MAJOR.MINOR.PATCH before its first request), against three masters whose KV ports want the
operator's client certificate, and refused without it; aetcd, which cannot speak TLS, against a master started by
hand without KV TLS; and bad gRPC input, which gets InvalidArgument and changes nothing."""
import asyncio
import json
import urllib.request

import aetcd
import etcd3gw
import grpc
import pytest

from kvstore.client import KVClient
from kvstore.etcdpb import message
from raftkube import kv_pki
from tests.integration.cluster import Cluster, hand_started_master
from tests.integration.python_etcd3 import run


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("clients") / "cluster"), 3)
    yield c
    c.stop()


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return host, int(port)


# -- python-etcd3, over TLS with the operator's client certificate ------------------------------------------------

def test_python_etcd3_puts_gets_and_swaps_in_a_transaction(cluster):
    got = run('''
        client = connect(args["endpoint"], args["tls"])
        client.put("lib/a", "1")
        client.put("lib/b", "2")
        value, meta = client.get("lib/a")
        prefix = [v.decode() for v, _ in client.get_prefix("lib/")]
        t = client.transactions
        won = client.transaction(compare=[t.value("lib/a") == "1"], success=[t.put("lib/a", "won")],
                                 failure=[t.put("lib/a", "lost")])[0]
        lost = client.transaction(compare=[t.value("lib/a") == "1"], success=[t.put("lib/a", "again")],
                                  failure=[t.get("lib/b")])[0]
        result = [value.decode(), meta.version, prefix, won, lost, client.get("lib/a")[0].decode(),
                  client.delete_prefix("lib/").deleted]
    ''', endpoint=cluster.master("m2")["grpc"], tls=cluster.kv_files)
    assert got == ["1", 1, ["1", "2"], True, False, "won", 2]


def test_python_etcd3_watches_a_prefix_from_a_revision_written_through_another_master(cluster):
    got = run('''
        client = connect(args["watcher"], args["tls"])
        writer = connect(args["writer"], args["tls"])
        first = client.put("libw/1", "one").header.revision
        events, cancel = client.watch_prefix("libw/", start_revision=first)
        writer.put("libw/2", "two")
        writer.delete("libw/1")
        result = [[type(event).__name__, event.key.decode()] for event in (next(events) for _ in range(3))]
        cancel()
    ''', watcher=cluster.master("m2")["grpc"], writer=cluster.master("m3")["grpc"], tls=cluster.kv_files)
    assert got == [["PutEvent", "libw/1"], ["PutEvent", "libw/2"], ["DeleteEvent", "libw/1"]]


def test_python_etcd3_leases_keep_keys_until_revoked(cluster):
    got = run('''
        client = connect(args["endpoint"], args["tls"])
        lease = client.lease(30)
        client.put("libl/k", "v", lease=lease)
        refreshed = lease.refresh()[0].TTL
        granted, ttl, keys = lease.granted_ttl, lease.remaining_ttl, [k.decode() for k in lease.keys]
        lease.revoke()
        result = [refreshed, granted, 0 < ttl <= 30, keys, client.get("libl/k")[0], lease.remaining_ttl]
    ''', endpoint=cluster.master("m1")["grpc"], tls=cluster.kv_files)
    assert got == [30, 30, True, ["libl/k"], None, -1]


def test_python_etcd3_status_members_and_snapshot(cluster, tmp_path):
    got = run('''
        client = connect(args["endpoint"], args["tls"])
        status = client.status()
        members = list(client.members)
        with open(args["file"], "wb") as f:
            client.snapshot(f)
        result = [status.version, status.leader.id in {m.id for m in members}, sorted(m.name for m in members),
                  sorted(u for m in members for u in m.client_urls)]
    ''', endpoint=cluster.master("m3")["grpc"], tls=cluster.kv_files, file=str(tmp_path / "s.db"))
    assert got == ["3.4.0", True, ["m1", "m2", "m3"], sorted(cluster.master(n)["grpc"] for n in cluster.names)]
    assert (tmp_path / "s.db").stat().st_size % 512 == 32


@pytest.mark.parametrize("who", ["no client certificate", "another CA's client certificate"])
def test_python_etcd3_without_the_clusters_client_certificate_is_refused(cluster, tmp_path, who):
    tls = {"ca": cluster.kv_files["ca"]}
    if who.startswith("another"):
        kv_pki.ensure(str(tmp_path / "other"), {})
        tls.update(kv_pki.cluster_entry(str(tmp_path / "other")), ca=cluster.kv_files["ca"])
    got = run('''
        client = connect(args["endpoint"], args["tls"])
        try:
            client.put("refused/python-etcd3", "v")
            result = "written"
        except etcd3.exceptions.ConnectionFailedError as exc:
            result = type(exc).__name__
    ''', endpoint=cluster.master("m1")["grpc"], tls=tls)
    assert got == "ConnectionFailedError"
    assert asyncio.run(_get(cluster, b"refused/python-etcd3")) is None


async def _get(cluster, key: bytes) -> bytes | None:
    async with KVClient(cluster.master("m1")["kv"], tls=cluster.kv_tls()) as kv:
        return await kv.get(key)


# -- etcd3gw on the JSON gateway -------------------------------------------------------------------------------------

def test_the_json_gateway_reports_a_numeric_version_and_etcd3gw_works(cluster, monkeypatch):
    # requests takes these over a session's own CA (its `verify`): etcd3gw's ca_cert would be ignored
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    url = cluster.master("m1")["kv"]
    with urllib.request.urlopen(url + "/version", timeout=5, context=cluster.kv_tls()) as r:
        version = json.load(r)
    assert version["etcdserver"] == "3.4.0" and version["etcdcluster"] == "3.4.0" and version["raftkube"]
    host, port = _address(url)
    files = cluster.kv_files
    client = etcd3gw.Etcd3Client(host=host, port=port, protocol="https", ca_cert=files["ca"], cert_key=files["key"],
                                 cert_cert=files["cert"], api_path=None)  # discovers /v3/ from /version
    assert client.put("gw/key", "value")
    assert client.get("gw/key") == [b"value"]
    assert client.api_path == "/v3/"
    lease = client.lease(30)  # a refresh is one POST of the keepalive stream
    client.put("gw/leased", "v", lease=lease)
    assert (lease.refresh(), lease.keys()) == (30, [b"gw/leased"])
    assert lease.revoke() and client.get("gw/leased") == []
    assert lease.refresh() == -1  # a gone lease's keepalive has no TTL field, as etcd's gateway omits a zero
    with client.lock(id="gw-lock", ttl=10) as held:  # a lease and a compare-and-swap on create_revision
        assert held.is_acquired() and not client.lock(id="gw-lock", ttl=10).acquire()
    assert client.lock(id="gw-lock", ttl=10).acquire()
    refused = etcd3gw.Etcd3Client(host=host, port=port, protocol="https", ca_cert=files["ca"], api_path="/v3/")
    with pytest.raises(etcd3gw.exceptions.ConnectionFailedError):
        refused.put("gw/refused", "value")
    assert client.get("gw/refused") == []


# -- gRPC: bad input ---------------------------------------------------------------------------------------------------

def _credentials(files: dict[str, str]) -> grpc.ChannelCredentials:
    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(read(files["ca"]), read(files["key"]), read(files["cert"]))


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
    endpoint = cluster.master("m1")["grpc"].split("://", 1)[1]
    async with grpc.aio.secure_channel(endpoint, _credentials(cluster.kv_files)) as channel:
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


# -- aetcd (no TLS in it) on a master started by hand, whose KV port is plain -----------------------------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    with hand_started_master(str(tmp_path_factory.mktemp("plain"))) as started:
        yield started


@pytest.fixture
async def etcd(plain):
    host, port = _address(plain[0])
    async with aetcd.Client(host=host, port=port, timeout=10) as client:
        yield client


def test_a_master_started_without_kv_flags_serves_plain_http_and_says_so(plain):
    kv, log = plain
    with urllib.request.urlopen(kv + "/health", timeout=5) as r:
        assert json.load(r) == {"health": "true"}
    with open(log) as f:
        assert "no --kv-cert-file: the KV port (127.0.0.1:" in f.read()


async def test_aetcd_puts_gets_swaps_and_watches(etcd):
    first = (await etcd.put(b"lib/a", b"1")).header.revision
    await etcd.put(b"lib/b", b"2")
    got = await etcd.get(b"lib/a")
    assert got.value == b"1" and got.version == 1
    assert [kv.value for kv in await etcd.get_prefix(b"lib/")] == [b"1", b"2"]
    t = etcd.transactions
    ok, _ = await etcd.transaction(compare=[t.value(b"lib/a") == b"1"], success=[t.put(b"lib/a", b"won")],
                                   failure=[t.put(b"lib/a", b"lost")])
    assert ok and (await etcd.get(b"lib/a")).value == b"won"
    watch = await etcd.watch(b"lib/", range_end=b"lib0", start_revision=first)
    seen = []
    async for event in watch:
        seen.append((event.kind, event.kv.key))
        if len(seen) == 3:
            break
    await watch.cancel()
    assert seen == [("PUT", b"lib/a"), ("PUT", b"lib/b"), ("PUT", b"lib/a")]


async def test_aetcd_leases_status_and_snapshot(etcd, tmp_path):
    lease = await etcd.lease(30)
    await etcd.put(b"libl/k", b"v", lease=lease)
    assert (await lease.refresh()).TTL == 30
    await lease.revoke()
    assert await etcd.get(b"libl/k") is None
    status = await etcd.status()
    assert status.version == "3.4.0" and len([m async for m in etcd.members()]) == 1
    with open(tmp_path / "s.db", "wb") as f:
        await etcd.snapshot(f)
    assert (tmp_path / "s.db").stat().st_size % 512 == 32
