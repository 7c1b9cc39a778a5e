"""The KV port over TLS (kvstore/kv_port.py, kvstore/tls.py) on a real socket, with the certificates `up` makes
(raftkube/kv_pki.py): ALPN sends gRPC and the JSON gateway to their servers, the HTTP/2 preface still does when a
client names no protocol, and the handshake refuses a client without a certificate the KV CA signed for clients."""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import subprocess

import aiohttp
import grpc
import pytest

from kvstore import http2, kv_port, tls
from kvstore.etcdpb import message
from kvstore.grpc_wire import Method
from raftkube import kv_flags, kv_pki
from tests.unit.kv_port_server import serving

PutRequest = message("etcdserverpb.PutRequest")
PutResponse = message("etcdserverpb.PutResponse")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> str:
    directory = str(tmp_path_factory.mktemp("kv") / "pki")
    kv_pki.ensure(directory, {"m1": kv_pki.LOCAL_NAMES})
    return directory


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> str:
    """Another cluster's KV PKI: its client certificates must not open this one's port."""
    directory = str(tmp_path_factory.mktemp("other") / "pki")
    kv_pki.ensure(directory, {})
    return directory


def client(pki: str, leaf: str | None = kv_pki.OPERATOR, *, ca_dir: str | None = None,
           alpn: tuple[str, ...] = (tls.HTTP1,)) -> ssl.SSLContext:
    """A client context trusting `ca_dir`'s (else `pki`'s) CA, presenting `pki`'s `leaf` (None: no certificate)."""
    crt, key = kv_pki.pair(pki, leaf) if leaf else (None, None)
    return tls.client_context(kv_pki.pair(ca_dir or pki, "ca")[0], crt, key, alpn=alpn)


@pytest.fixture
async def server(pki):
    async def echo(request, call):
        return PutResponse(header={"revision": len(request.value)})

    context = tls.server_context(*kv_pki.pair(pki, kv_pki.server_leaf("m1")),
                                 trusted_ca_file=kv_pki.pair(pki, "ca")[0], client_cert_auth=True)
    async with serving({"/t.T/Echo": Method(echo, PutRequest)}, "gateway", context) as port:
        yield port


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def grpc_echo(port: int, pki: str, leaf: str | None = kv_pki.OPERATOR, *, leaf_pki: str | None = None) -> int:
    """One unary call over grpc.aio's TLS (ALPN "grpc-exp" and h2) trusting `pki`'s CA, with `leaf_pki`'s (else
    `pki`'s) `leaf` as client certificate (None: none)."""
    crt, key = kv_pki.pair(leaf_pki or pki, leaf) if leaf else (None, None)
    credentials = grpc.ssl_channel_credentials(_read(kv_pki.pair(pki, "ca")[0]), key and _read(key),
                                               crt and _read(crt))
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        echo = channel.unary_unary("/t.T/Echo", request_serializer=PutRequest.SerializeToString,
                                   response_deserializer=PutResponse.FromString)
        return (await echo(PutRequest(value=b"abc"), timeout=10)).header.revision


async def gateway(port: int, context: ssl.SSLContext) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"https://127.0.0.1:{port}/hello", ssl=context,
                               timeout=aiohttp.ClientTimeout(total=10)) as r:
            return await r.text()


async def test_alpn_sends_grpc_to_http2_and_http1_to_the_gateway_on_one_port(server, pki):
    assert await grpc_echo(server, pki) == 3
    assert await gateway(server, client(pki)) == "gateway"
    # A client that names both (curl, browsers) is given HTTP/1.1: the gateway speaks nothing else.
    assert await gateway(server, client(pki, alpn=(tls.H2, tls.HTTP1))) == "gateway"


async def test_without_alpn_the_preface_still_tells_http2_from_http1(server, pki):
    assert await gateway(server, client(pki, alpn=())) == "gateway"
    context = client(pki, alpn=())
    reader, writer = await asyncio.open_connection("127.0.0.1", server, ssl=context)
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() is None
    writer.write(http2.PREFACE + http2.frame(http2.SETTINGS, 0, 0))
    first = await asyncio.wait_for(reader.readexactly(9), 10)
    assert first[3] == http2.SETTINGS  # our HTTP/2 connection's opening SETTINGS
    writer.close()


@pytest.mark.parametrize("leaf,other_ca", [(None, False), (kv_pki.OPERATOR, True), (kv_pki.server_leaf("m1"), False)],
                         ids=["no certificate", "another CA's client", "this CA's server certificate"])
async def test_the_handshake_refuses_a_client_without_a_client_certificate_of_this_ca(server, pki, other_pki, leaf,
                                                                                     other_ca):
    leaf_pki = other_pki if other_ca else pki
    with pytest.raises(aiohttp.ClientError):
        await gateway(server, client(leaf_pki, leaf, ca_dir=pki))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_echo(server, pki, leaf, leaf_pki=leaf_pki)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await gateway(server, client(pki)) == "gateway"  # and the port goes on serving


async def test_plain_http_garbage_and_a_silent_client_leave_the_port_serving(server, pki):
    # Fixed garbage, not random: random bytes that happen to begin a plausible TLS record make the server wait, rightly,
    # for the rest until its handshake timeout, which the wait below once equalled (a CI run failed on it).
    for data in (b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", http2.PREFACE, bytes(range(256)) * 16):
        reader, writer = await asyncio.open_connection("127.0.0.1", server)
        writer.write(data)
        # the server closes it, whatever it answered first, within its handshake timeout at the most
        await asyncio.wait_for(reader.read(), kv_port.HANDSHAKE_TIMEOUT + 5)
        writer.close()
    silent = socket.create_connection(("127.0.0.1", server))  # holds a handshake open
    try:
        assert await gateway(server, client(pki)) == "gateway"
        assert await grpc_echo(server, pki) == 3
    finally:
        silent.close()


def test_every_kv_certificate_passes_openssl_strictly_for_its_purpose(pki):
    ca = kv_pki.pair(pki, "ca")[0]
    for leaf, purpose in ((kv_pki.server_leaf("m1"), "sslserver"), (kv_pki.OPERATOR, "sslclient"),
                          (kv_pki.APISERVER, "sslclient")):
        out = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile", ca,
                              kv_pki.pair(pki, leaf)[0]], capture_output=True, text=True)
        assert out.returncode == 0, leaf + out.stdout + out.stderr
    wrong = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", ca,
                            kv_pki.pair(pki, kv_pki.server_leaf("m1"))[0]], capture_output=True, text=True)
    assert wrong.returncode != 0  # a master's serving certificate is no client certificate


def test_keys_are_private_and_a_second_ensure_keeps_what_is_there(pki):
    assert os.stat(pki).st_mode & 0o777 == 0o700
    for leaf in ("ca", kv_pki.OPERATOR, kv_pki.APISERVER, kv_pki.server_leaf("m1")):
        assert os.stat(kv_pki.pair(pki, leaf)[1]).st_mode & 0o777 == 0o600
    before = _read(kv_pki.pair(pki, kv_pki.OPERATOR)[0])
    kv_pki.ensure(pki, {"m1": kv_pki.LOCAL_NAMES, "m4": kv_pki.LOCAL_NAMES})  # `member add` m4
    assert _read(kv_pki.pair(pki, kv_pki.OPERATOR)[0]) == before
    assert os.path.exists(kv_pki.pair(pki, kv_pki.server_leaf("m4"))[0])


def _args(**given: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    kv_flags.add_arguments(p)
    return argparse.Namespace(**{**vars(p.parse_args([])), "name": "m1", "kv_listen": "127.0.0.1:2379", **given})


@pytest.mark.parametrize("given,said", [
    ({"kv_client_cert_auth": True}, "need --kv-cert-file and --kv-key-file"),
    ({"kv_cert_file": "x.crt"}, "go together"),
    ({"kv_cert_file": "/nonexistent.crt", "kv_key_file": "/nonexistent.key"}, "cannot load the certificate"),
    ({"etcd_certfile": "c", "etcd_keyfile": "k"}, "need --etcd-cafile"),
])
def test_bad_kv_flags_stop_the_master_with_a_sentence(given, said):
    with pytest.raises(SystemExit) as stopped:
        kv_flags.server_tls(_args(**given)) if "etcd_certfile" not in given else kv_flags.client_tls(_args(**given))
    assert said in str(stopped.value) and str(stopped.value).startswith("raftkube master m1: ")


def test_client_cert_auth_without_a_trusted_ca_is_refused(pki):
    crt, key = kv_pki.pair(pki, kv_pki.server_leaf("m1"))
    with pytest.raises(SystemExit, match="--kv-trusted-ca-file"):
        kv_flags.server_tls(_args(kv_cert_file=crt, kv_key_file=key, kv_client_cert_auth=True))


def test_no_kv_flags_is_a_plain_port_and_a_warning(caplog):
    with caplog.at_level("WARNING", logger="raftkube.master"):
        assert kv_flags.server_tls(_args()) is None
    assert "plain HTTP without authentication" in caplog.text


def test_a_real_etcds_serving_certificates_are_client_certificates_too(tmp_path):
    """etcd's JSON gateway dials its own gRPC server with its serving certificate (bench/etcd_cluster.py)."""
    pki = str(tmp_path / "pki")
    kv_pki.ensure(pki, {"e1": kv_pki.LOCAL_NAMES}, servers_are_clients=True)
    for purpose in ("sslserver", "sslclient"):
        out = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile",
                              kv_pki.pair(pki, "ca")[0], kv_pki.pair(pki, kv_pki.server_leaf("e1"))[0]],
                             capture_output=True, text=True)
        assert out.returncode == 0, purpose + out.stdout + out.stderr
