"""Port-forward over WebSocket channels (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, or no subprotocol): the
protocol the official Python client's `portforward()` speaks, upstream's kubelet's older one beside kubectl's SPDY
(node/port_forward.py).

    GET /portForward/NAMESPACE/POD?ports=1234,1235        (the ports, comma-separated or repeated)
    port i of the list has two channels (node/wsstream.py's framing):
      2i    data    both ways: the client's bytes go into the connection, the pod's come back
      2i+1  error   kubelet -> client: why the connection could not be made, or broke ("error forwarding port ...")
    1. the kubelet writes each channel's first message, the port as 2 bytes little-endian (b"\\x00\\xd2\\x04" for
       1234 on channel 0), and connects to POD_IP:PORT for every port at once
    2. then data, both ways; a port whose connection fails says so on its error channel and is done (the others go on)
    3. when every port's connection has ended the kubelet closes the socket; when the client closes it, each
       connection gets its end of file after what the client sent (node/pod_connection.py)

Unlike SPDY, each port is one connection for the life of the socket, and a client cannot half-close it. A client
writes to data channels only: anything else (an error channel, a channel past the ports, a message that is no frame)
closes the socket with a protocol error that says so, where upstream drops it silently.
"""
from __future__ import annotations

import asyncio
import logging
import re
import struct
from typing import Any

from aiohttp import WSCloseCode

from node import wsstream
from node.channel_session import ChannelSession
from node.pod_connection import ForwardError, PodConnection, wind_down
from node.wsstream import ProtocolError

log = logging.getLogger("raftkube.kubelet")
PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io", wsstream.NONE)  # as upstream's kubelet


def parse_ports(query: Any) -> list[int]:
    """The `ports` of the request's query (each value a port or a comma-separated list, as the API server takes
    PodPortForwardOptions); ValueError, with the message for a 400, for one that is no port."""
    found = []
    for value in query.getall("ports", []):
        for word in value.split(","):
            if not re.fullmatch(r"[0-9]{1,5}", word.strip()) or not 0 < int(word) < 65536:
                raise ValueError(f"ports={value}: {word.strip()!r} is not a port number (1 to 65535)")
            found.append(int(word))
    return found


def check_ports(ports: list[int], protocol: wsstream.Protocol) -> None:
    """ValueError when the channel protocol cannot carry these ports: none asked, or more than it has channels for."""
    if not ports:
        raise ValueError("query parameter ports is required (ports=8080 or ports=8080,9090): over channels the ports "
                         "are named when the WebSocket opens")
    if 2 * len(ports) > protocol.channels:
        raise ValueError(f"{len(ports)} ports need {2 * len(ports)} channels; {protocol.name or 'channel.k8s.io'} "
                         f"has {protocol.channels}: at most {protocol.channels // 2} ports")


async def run(session: ChannelSession, ports: list[int], *, host: str, pod: str, uid: str) -> None:
    connections = [PodConnection(host, port, pod=pod, uid=uid) for port in ports]
    for i, port in enumerate(ports):
        for channel in (2 * i, 2 * i + 1):
            await session.send(channel, struct.pack("<H", port))
    for i, connection in enumerate(connections):
        connection.start(lambda chunk, channel=2 * i: session.send(channel, chunk),
                         lambda error, channel=2 * i + 1: _ended(session, channel, error))
    client = asyncio.create_task(_from_client(session, connections))
    forwarding = asyncio.gather(*(c.task for c in connections if c.task is not None), return_exceptions=True)
    try:
        await asyncio.wait([client, forwarding], return_when=asyncio.FIRST_COMPLETED)
        if client.done() and not client.cancelled() and isinstance(client.exception(), ProtocolError):
            log.info("port-forward to pod %s: %s", pod, client.exception())
            await session.close(WSCloseCode.PROTOCOL_ERROR, str(client.exception()))
        await session.close()  # every connection has ended (this also ends the client's reading)
    finally:
        client.cancel()  # a no-op unless this session is itself cancelled
        await asyncio.gather(client, return_exceptions=True)
        await wind_down(connections)


async def _from_client(session: ChannelSession, connections: list[PodConnection]) -> None:
    """The client's messages into their connections, until it closes the socket."""
    async for message in session.messages():
        port, error = divmod(message.channel, 2)
        if error or port >= len(connections):
            count = len(connections)
            raise ProtocolError(f"a client writes only to the data channels of its {count} ports (0, 2, ..., "
                                f"{2 * count - 2}), not to channel {message.channel}")
        await connections[port].put(message.data)


async def _ended(session: ChannelSession, channel: int, error: ForwardError | None) -> None:
    if error is not None:
        log.info("port-forward: %s", error)
        await session.send(channel, str(error).encode())
