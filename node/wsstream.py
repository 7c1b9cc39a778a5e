"""The channel subprotocols of Kubernetes' WebSockets (upstream's wsstream), pure: how one message carries a channel
number and that channel's data. exec and attach (node/channels.py) and port-forward (node/port_forward_channels.py)
give the channels their meaning; this module only frames them.

    channel.k8s.io, v4.channel.k8s.io, v5.channel.k8s.io   the channel as one byte, then the data as it is
                                                            b"\\x01total 8\\n"  (channel 1, "total 8\\n")
    base64.channel.k8s.io, v4.base64.channel.k8s.io         a text message: the channel as an ASCII digit, then the
                                                            data in base64     "1dG90YWwgOAo="
    "" (the client asks for no subprotocol)                 as channel.k8s.io

The server writes binary messages for the raw protocols and text ones for base64. A client may write either kind,
as upstream reads both alike: a text message's bytes are its UTF-8 (the Python client sends text to stdin this way).
The protocols differ beyond the framing (v4 puts a metav1.Status on exec's error channel, v5 adds the close channel):
a Protocol says which it is, node/channels.py acts on it.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

NONE = ""  # no subprotocol asked for: upstream serves channel.k8s.io


class ProtocolError(Exception):
    """A message the protocol does not allow: the session ends with this text."""


@dataclass(frozen=True)
class Message:
    channel: int
    data: bytes


@dataclass(frozen=True)
class Protocol:
    name: str
    base64: bool = False  # text messages, the channel a digit and the data base64
    status: bool = False  # v4 and on: exec's error channel carries a metav1.Status, not just a failure's message
    close: bool = False  # v5: a client may close a channel (255)

    @property
    def channels(self) -> int:
        """How many channels a message can name: a byte's 0 to 254 (255 is v5's close), or the ASCII characters from
        "0" (0) to DEL (79) as base64's digit."""
        return 80 if self.base64 else 255

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """One message: bytes to send as a binary message, or (base64) a str to send as a text one."""
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
        return bytes((channel,)) + data

    def decode(self, message: bytes | str) -> Message:
        """A client's message, binary or text; an empty one, or base64 that is not, is a ProtocolError."""
        raw = message.encode() if isinstance(message, str) else message
        if not raw:
            raise ProtocolError("an empty message: every message starts with its channel")
        if not self.base64:
            return Message(raw[0], raw[1:])
        channel = raw[0] - ord("0")
        if not 0 <= channel < self.channels:
            raise ProtocolError(f"{self.name} names the channel with a character from '0' (channel 0), not {raw[:1]!r}")
        try:
            return Message(channel, base64.b64decode(raw[1:], validate=True))
        except binascii.Error:
            raise ProtocolError(f"{self.name} carries base64 after the channel's digit, not {raw[1:40]!r}") from None


V5 = Protocol("v5.channel.k8s.io", status=True, close=True)
V4 = Protocol("v4.channel.k8s.io", status=True)
V4_BASE64 = Protocol("v4.base64.channel.k8s.io", base64=True, status=True)
CHANNEL = Protocol("channel.k8s.io")
BASE64 = Protocol("base64.channel.k8s.io", base64=True)
PROTOCOLS = {p.name: p for p in (V5, V4, V4_BASE64, CHANNEL, BASE64)} | {NONE: CHANNEL}
