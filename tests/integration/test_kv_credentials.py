"""A master as `up` starts it takes KV requests (the JSON gateway, gRPC, /metrics, /debug/failpoints) only from
clients with a certificate the cluster's KV CA signed for clients: plain HTTP, TLS without a certificate, another
CA's client certificate and this CA's serving certificate are all refused, and none of them changes anything."""
import json

import aiohttp
import grpc
import pytest

from kvstore import tls
from kvstore.client import KVClient, b64
from kvstore.etcdpb import message
from raftkube import kv_pki
from tests.integration.cluster import Cluster
from tests.integration.etcdctl import etcdctl

PutRequest = message("etcdserverpb.PutRequest")
PutResponse = message("etcdserverpb.PutResponse")
KEY = b"refused/key"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("credentials") / "cluster"), 1, ("--enable-failpoints",))  # served, refused
    yield c
    c.stop()


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> dict[str, str]:
    """Another cluster's KV PKI: its operator certificate, with this cluster's CA to check the master by."""
    directory = str(tmp_path_factory.mktemp("other") / "pki")
    kv_pki.ensure(directory, {})
    return kv_pki.cluster_entry(directory)


def _wrong_credentials(cluster, other_ca) -> dict[str, dict[str, str]]:
    """Files a client might present: none, another CA's client certificate, this CA's serving certificate."""
    ca = cluster.kv_files["ca"]
    server_crt, server_key = kv_pki.pair(kv_pki.directory(cluster.state_dir), kv_pki.server_leaf("m1"))
    return {"no certificate": {"ca": ca},
            "another CA's client certificate": {**other_ca, "ca": ca},
            "this CA's serving certificate": {"ca": ca, "cert": server_crt, "key": server_key}}


WRONG = ["no certificate", "another CA's client certificate", "this CA's serving certificate"]
ROUTES = [("POST", "/v3/kv/put", json.dumps({"key": b64(KEY), "value": b64(b"v")})),
          ("GET", "/metrics", None), ("GET", "/health", None),
          ("POST", "/debug/failpoints", json.dumps({"stale_reads": True}))]


async def _stored(cluster) -> list:
    async with KVClient(cluster.master("m1")["kv"], tls=cluster.kv_tls()) as kv:
        return (await kv.range(KEY)).get("kvs", [])


async def _request(url: str, method: str, body: str | None, context) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, data=body, ssl=context,
                                   timeout=aiohttp.ClientTimeout(total=10)) as r:
            await r.read()
            return r.status


@pytest.mark.parametrize("method,path,body", ROUTES, ids=[path for _, path, _ in ROUTES])
async def test_the_gateway_refuses_plain_http_and_wrong_certificates_on_every_route(cluster, other_ca, method, path,
                                                                                    body):
    https = cluster.master("m1")["kv"]
    assert https.startswith("https://")
    with pytest.raises(aiohttp.ClientError):  # plain HTTP: the port wants a TLS handshake first
        await _request("http://" + https.split("://", 1)[1] + path, method, body, False)
    for who, files in _wrong_credentials(cluster, other_ca).items():
        context = tls.client_context(files["ca"], files.get("cert"), files.get("key"))
        with pytest.raises(aiohttp.ClientError):
            await _request(https + path, method, body, context)
            pytest.fail(f"{who}: {method} {path} was served")
    assert await _stored(cluster) == []
    assert await _request(https + "/health", "GET", None, cluster.kv_tls()) == 200  # and with the right one


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def _grpc_put(channel: grpc.aio.Channel) -> None:
    put = channel.unary_unary("/etcdserverpb.KV/Put", request_serializer=PutRequest.SerializeToString,
                              response_deserializer=PutResponse.FromString)
    await put(PutRequest(key=KEY, value=b"v"), timeout=10)


@pytest.mark.parametrize("who", ["plain HTTP/2", *WRONG])
async def test_grpc_refuses_plain_http2_and_wrong_certificates(cluster, other_ca, who):
    endpoint = cluster.master("m1")["grpc"].split("://", 1)[1]
    if who == "plain HTTP/2":
        channel = grpc.aio.insecure_channel(endpoint)
    else:
        files = _wrong_credentials(cluster, other_ca)[who]
        key, crt = files.get("key"), files.get("cert")
        channel = grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(
            _read(files["ca"]), key and _read(key), crt and _read(crt)))
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _grpc_put(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await _stored(cluster) == []


def test_etcdctl_without_the_operators_certificate_is_refused(cluster, other_ca):
    endpoint = cluster.grpc()
    plain = "http://" + endpoint.split("://", 1)[1]
    attempts = {"plain": (plain, []), "no certificate": (endpoint, ["--cacert", cluster.kv_files["ca"]]),
                "another CA's": (endpoint, ["--cacert", cluster.kv_files["ca"], "--cert", other_ca["cert"],
                                            "--key", other_ca["key"]])}
    for who, (where, flags) in attempts.items():
        # refused at the handshake, the put waits out its command timeout (the later --command-timeout wins)
        out = etcdctl(where, "--command-timeout", "2s", "put", KEY.decode(), "v", tls=flags, check=False)
        assert out.returncode != 0 and "deadline exceeded" in out.stderr, (who, out.stderr)
    assert etcdctl(endpoint, "get", KEY.decode(), "--print-value-only", tls=cluster.kv_flags).stdout == ""
