"""The API server's WebSocket relay to a kubelet (api/pod_proxy.py): when the kubelet ends a session the client gets
the kubelet's close code and reason, never aiohttp's 1006, which no close frame may carry (the official Python
client's port-forward thread dies on it, and its sockets never see their end of file)."""
import os

import aiohttp
from aiohttp import WSMsgType, web

from api import pod_proxy
from api.kubelet_client import tls_context
from node.kubelet_auth import ClientCertificate
from raftkube import certs


def test_a_close_frame_is_passed_on_as_sent_and_a_vanished_side_as_going_away():
    close = aiohttp.WSMessage(WSMsgType.CLOSE, 1000, "every connection has ended")
    assert pod_proxy.passed_on(close) == (1000, "every connection has ended")
    assert pod_proxy.passed_on(aiohttp.WSMessage(WSMsgType.CLOSE, 4000, None)) == (4000, "")
    for ended in (aiohttp.WSMessage(WSMsgType.CLOSED, None, None), aiohttp.WSMessage(WSMsgType.ERROR, OSError(), None),
                  aiohttp.WSMessage(WSMsgType.CLOSE, 1006, ""), aiohttp.WSMessage(WSMsgType.CLOSE, 0, "")):
        assert pod_proxy.passed_on(ended) == (aiohttp.WSCloseCode.GOING_AWAY, "")


async def test_the_client_hears_the_kubelets_own_close_over_tls(tmp_path):
    """The kubelet closes while it also reads the client (node/port_forward_channels.py), so it drops its end right
    after its close frame and the relay's reply to that frame cannot be written: the relay's socket says 1006."""
    pki = certs.ensure(str(tmp_path / "pki"), ["m1"])
    serving = str(tmp_path / "n1.crt"), str(tmp_path / "n1.key")
    certs.kubelet_serving(os.path.dirname(pki["ca.crt"]), ["n1"], "127.0.0.1", *serving)

    async def kubelet(request: web.Request) -> web.WebSocketResponse:
        """Its data, its close frame, and its end of the connection at once, as a kubelet's aiohttp does when it
        closes while reading (it does not wait for the reply)."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        close = (1000).to_bytes(2, "big") + b"done"
        request.transport.write(b"\x82\x07\x00answer" + b"\x88" + bytes([len(close)]) + close)
        request.transport.close()
        return ws

    async def relay(request: web.Request) -> web.WebSocketResponse:
        tls = tls_context(pki["apiserver-kubelet-client.crt"], pki["apiserver-kubelet-client.key"], pki["ca.crt"])
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session, \
                session.ws_connect(f"https://127.0.0.1:{kubelet_port}/") as upstream:
            client = web.WebSocketResponse()
            await client.prepare(request)
            await pod_proxy._relay(client, upstream)
            return client

    runners = []
    try:
        ports = []
        for handler, tls in ((kubelet, ClientCertificate(*serving, pki["ca.crt"]).context), (relay, None)):
            app = web.Application()
            app.router.add_get("/", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
            await site.start()
            ports.append(site._server.sockets[0].getsockname()[1])
        kubelet_port, relay_port = ports
        async with aiohttp.ClientSession() as session, session.ws_connect(f"http://127.0.0.1:{relay_port}/") as ws:
            assert (await ws.receive(timeout=10)).data == b"\x00answer"
            closing = await ws.receive(timeout=10)
            assert (closing.type, closing.data, closing.extra) == (WSMsgType.CLOSE, 1000, "done")
    finally:
        for runner in runners:
            await runner.cleanup()
