"""The official Python client's exec and port-forward (kubernetes.stream) against three masters and a process node,
as its own e2e suite uses them: exec's output, text and binary stdin, v5's close of stdin, exit codes, v4 when asked
for; port-forward over v4.channel.k8s.io (two channels a port, the port first) to an echo server and to an HTTP
server, a port where nothing listens. The older subprotocols (channel.k8s.io, base64) and bad input (no ports, a port
that is none, a write to an error channel) are spoken by hand. Pods are bound by hand: these masters run no
scheduler."""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import select
import socket
import struct
import time
import urllib.request

import aiohttp
import pytest

from raftkube import kubeconfig
from tests.integration.cluster import ACCOUNT_CONTROLLERS, Cluster

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.stream import portforward, stream  # noqa: E402

ECHO = """\
import asyncio, sys

async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()

async def main():
    host, ports = sys.argv[1], sys.argv[2:]
    servers = [await asyncio.start_server(echo, host, int(port)) for port in ports]
    print("listening on", *ports, flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))

asyncio.run(main())
"""


def pod(name: str, command: list[str], **spec: object) -> dict:
    container = {"name": "main", "image": "python", "command": command, **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1, "containers": [container], **spec}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("pystream") / "cluster"), 3, ACCOUNT_CONTROLLERS, nodes=1,
                runtime="process", node_flags=("--no-proxy",))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def core(cluster, tmp_path_factory) -> client.CoreV1Api:
    path = kubeconfig.write(str(tmp_path_factory.mktemp("pyhome") / "kubeconfig"), cluster.master("m2")["api"],
                            cluster.token, cluster.ca)
    api = client.CoreV1Api(config.new_client_from_config(config_file=path))
    wait(lambda: "default" in [n.metadata.name for n in api.list_namespace().items], "the default namespace")
    api.create_namespaced_config_map("default", {"metadata": {"name": "echo"}, "data": {"echo.py": ECHO}})
    # the ConfigMap is mounted at /opt: opt/echo.py from the working directory, as root (/) or not ($RAFTKUBE_ROOT)
    api.create_namespaced_pod("default", pod("echo", ["python3", "-u", "opt/echo.py", "$(POD_IP)", "1234", "1235"],
                                             volumes=[{"name": "code", "configMap": {"name": "echo"}}],
                                             container={"volumeMounts": [{"name": "code", "mountPath": "/opt"}]}))
    api.create_namespaced_pod("default", pod("web", ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]))
    api.create_namespaced_pod("default", pod("shell", ["sh", "-c", "exec sleep 3600"]))
    for name, says in (("echo", "listening on"), ("web", "Serving HTTP"), ("shell", "")):
        wait(lambda: running(api, name) and says in api.read_namespaced_pod_log(name, "default"), f"pod {name}")
    return api


def wait(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not seen within {timeout}s"
        time.sleep(0.1)


def running(api: client.CoreV1Api, name: str) -> bool:
    return api.read_namespaced_pod(name, "default").status.phase == "Running"


# -- exec -----------------------------------------------------------------------------------


def test_exec_output_text_and_binary(core):
    """A command's output, read to the end (the client reads until the socket closes), as text and as bytes."""
    out = stream(core.connect_get_namespaced_pod_exec, "shell", "default",
                 command=["/bin/sh", "-c", "echo test string 1"], stderr=False, stdin=False, stdout=True, tty=False)
    assert out == "test string 1\n"
    zipped = stream(core.connect_post_namespaced_pod_exec, "shell", "default",
                    command=["/bin/sh", "-c", 'echo -n "some bytes" | gzip'], stderr=False, stdin=False, stdout=True,
                    tty=False, binary=True)
    assert gzip.decompress(zipped) == b"some bytes"


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
def test_interactive_exec_and_its_exit_code(core, protocol):
    """stdin as the client writes it (text messages), stdout and stderr apart, and the exit code from the Status on
    the error channel; v5 unless the client asks for v4 alone."""
    headers = {} if protocol.startswith("v5") else {"sec-websocket-protocol": protocol}
    resp = stream(core.connect_post_namespaced_pod_exec, "shell", "default", command=["/bin/sh"], stderr=True,
                  stdin=True, stdout=True, tty=False, _preload_content=False, _headers=headers)
    try:
        assert resp.subprotocol == protocol
        resp.write_stdin("echo test string 1\n")
        assert resp.readline_stdout(timeout=30) == "test string 1"
        resp.write_stdin(b"echo test string 2 >&2\n")
        assert resp.readline_stderr(timeout=30) == "test string 2"
        assert not resp.peek_stdout()
        resp.write_stdin("exit 3\n")
        resp.run_forever(timeout=30)
        assert not resp.is_open() and resp.returncode == 3
    finally:
        resp.close()


def test_closing_stdin_ends_a_command_that_reads_to_its_end(core):
    """v5's close of channel 0 (close_channel): `cat` gets its end of file and exits 0; the socket closes."""
    resp = stream(core.connect_post_namespaced_pod_exec, "shell", "default", command=["/bin/sh", "-c", "cat"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    try:
        resp.write_stdin("test-close\n")
        assert resp.readline_stdout(timeout=30) == "test-close"
        resp.close_channel(0)
        resp.run_forever(timeout=30)
        assert not resp.is_open() and resp.returncode == 0
    finally:
        resp.close()


async def raw_exec(cluster: Cluster, protocol: str, command: str) -> list[str | bytes]:
    """Every message of an exec of `sh -c COMMAND` in the shell pod, over `protocol`, until the socket closes."""
    url = (f"{cluster.master('m1')['api']}/api/v1/namespaces/default/pods/shell/exec?command=sh&command=-c"
           f"&command={command}&stdout=true")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token}"}) as session:
        async with session.ws_connect(url, protocols=[protocol], ssl=cluster.tls()) as ws:
            assert ws.protocol == protocol
            return [msg.data async for msg in ws if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)]


async def test_the_older_subprotocols_as_upstream_speaks_them(cluster, core):
    """channel.k8s.io: an empty message on stdout says the session is open; a failure is only its message on the
    error channel, success nothing. base64.channel.k8s.io: text messages, the channel a digit, the data base64."""
    ok = await asyncio.wait_for(raw_exec(cluster, "channel.k8s.io", "echo hi"), 30)
    assert ok == [b"\x01", b"\x01hi\n"]
    failed = await asyncio.wait_for(raw_exec(cluster, "channel.k8s.io", "exit 4"), 30)
    assert failed[-1].startswith(b"\x03command terminated with non-zero exit code")
    encoded = await asyncio.wait_for(raw_exec(cluster, "base64.channel.k8s.io", "echo hi"), 30)
    assert encoded == ["1", "1" + base64.b64encode(b"hi\n").decode()]


# -- port-forward ---------------------------------------------------------------------------


def exchange(sock, sent: bytes) -> bytes:
    """Send `sent` and read until as many bytes are back (or the socket ends)."""
    sock.sendall(sent)
    got = b""
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        if select.select([sock], [], [], 1)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


def test_port_forward_carries_each_port_and_reports_one_where_nothing_listens(core):
    """Two echo ports and one closed: each port's bytes come back on its own socket, the closed one ends with the
    kubelet's message on its error channel; closing the sockets ends the session with no error on the others."""
    for attempt in range(2):
        pf = portforward(core.connect_get_namespaced_pod_portforward, "echo", "default", ports="1234,1235,1236")
        first, second = pf.socket(1234), pf.socket(1235)
        for sock in (first, second):
            sock.setblocking(True)
        big = os.urandom(3 << 20)  # more than a message and than the kubelet queues: both ways, in order
        assert exchange(first, b"to 1234 #%d" % attempt) == b"to 1234 #%d" % attempt
        assert exchange(second, big) == big
        closed = pf.socket(1236)
        closed.setblocking(True)
        assert closed.recv(1024) == b""
        assert "error forwarding port 1236 to pod echo" in pf.error(1236)
        assert "failed to connect" in pf.error(1236)
        for sock in (first, second, closed):
            sock.close()
        wait(lambda: not pf.connected, "the session closed once every socket is")
        assert pf.error(1234) is None and pf.error(1235) is None


def test_port_forward_under_an_http_client(core):
    """urllib over the forwarded socket (the e2e suite's trick): the server closes the connection after its answer,
    which ends the kubelet's session, and the client reads the whole answer first."""
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.0 200") and b"Directory listing" in answer
    wait(lambda: not pf.connected, "the session closed after the server's close")
    original = socket.create_connection
    socket.create_connection = lambda *a, **k: portforward(core.connect_get_namespaced_pod_portforward, "web",
                                                           "default", ports="8080").socket(8080)
    try:
        with urllib.request.urlopen("http://web/", timeout=30) as response:
            assert response.status == 200 and b"Directory listing" in response.read()
    finally:
        socket.create_connection = original


async def test_port_forward_in_base64_and_bad_requests(cluster, core):
    """v4.base64.channel.k8s.io frames the same channels as text; no ports, a port that is none, or a write to an
    error channel is a clear error; the pod serves on."""
    url = f"{cluster.master('m3')['api']}/api/v1/namespaces/default/pods/echo/portforward"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token}"}) as session:
        async with session.ws_connect(f"{url}?ports=1234", protocols=["v4.base64.channel.k8s.io"],
                                      ssl=cluster.tls()) as ws:
            port = base64.b64encode(struct.pack("<H", 1234)).decode()
            assert [await ws.receive_str(timeout=30) for _ in range(2)] == ["0" + port, "1" + port]
            await ws.send_str("0" + base64.b64encode(b"hello").decode())
            assert await ws.receive_str(timeout=30) == "0" + base64.b64encode(b"hello").decode()
        for query, says in (("", "query parameter ports is required"), ("?ports=80,http", "'http' is not a port")):
            upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                       "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                       "Sec-WebSocket-Protocol": "v4.channel.k8s.io"}
            async with session.get(url + query, headers=upgrade, ssl=cluster.tls()) as refused:
                assert refused.status == 400 and says in (await refused.json())["message"]
        async with session.ws_connect(f"{url}?ports=1234", protocols=["v4.channel.k8s.io"], ssl=cluster.tls()) as ws:
            await ws.receive_bytes(timeout=30)
            await ws.receive_bytes(timeout=30)
            await ws.send_bytes(b"\x01not for the error channel")
            closing = await ws.receive(timeout=30)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == aiohttp.WSCloseCode.PROTOCOL_ERROR
        assert "data channels" in closing.extra
    pf = await asyncio.to_thread(portforward, core.connect_get_namespaced_pod_portforward, "echo", "default",
                                 ports="1234")
    sock = pf.socket(1234)
    sock.setblocking(True)
    assert await asyncio.to_thread(exchange, sock, b"still here") == b"still here"
    sock.close()


def test_status_json_is_what_the_client_reads(core):
    """The error channel's Status, as returncode parses it, for a command that cannot start."""
    resp = stream(core.connect_get_namespaced_pod_exec, "shell", "default", command=["no-such-command"], stderr=True,
                  stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=30)
    status = json.loads(resp.read_channel(3))
    assert status["status"] == "Failure" and "no-such-command" in status["message"]
